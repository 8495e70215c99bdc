"""Job script of rule train_classifier: the signal-vs-background classifier on the ML set."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.classifier import ClassifierOutputs, train_classifier

with job_logging(snakemake.log[0]):
    train_classifier(
        outputs_of(ClassifierOutputs, snakemake.output),
        signal_train=snakemake.input.signal_train,
        background_train=snakemake.input.background_train,
        signal_val=snakemake.input.signal_val,
        background_val=snakemake.input.background_val,
        signal_test=list(snakemake.input.signal_test),
        background_test=list(snakemake.input.background_test),
        features=list(snakemake.params.features),
        scaling_method=snakemake.params.scaling_method,
        section=dict(snakemake.params.section),
        threads=snakemake.threads,
    )
