"""Job script of rule train_classifier: the signal-vs-background classifier on the ML set."""

from flowsim.analysis.signal_classifier import train_classifier_job
from flowsim.logs import job_logging
from flowsim.training import configure_torch

with job_logging(snakemake.log[0]):
    configure_torch(snakemake.threads)
    train_classifier_job(
        signal_train=snakemake.input.signal_train,
        background_train=snakemake.input.background_train,
        signal_val=snakemake.input.signal_val,
        background_val=snakemake.input.background_val,
        signal_test=list(snakemake.input.signal_test),
        background_test=list(snakemake.input.background_test),
        features=list(snakemake.params.features),
        scaling_method=snakemake.params.scaling_method,
        section=dict(snakemake.params.section),
        model_out=snakemake.output.model,
        scaler_out=snakemake.output.scaler,
        history_out=snakemake.output.history,
        metrics_out=snakemake.output.metrics,
        loss_plot=snakemake.output.loss,
        roc_plot=snakemake.output.roc,
    )
