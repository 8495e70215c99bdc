"""Job script of rule train_flow: train one named flow run."""

from flowsim.logs import job_logging
from flowsim.runs import RunSpec
from flowsim.stages import outputs_of
from flowsim.stages.flows import TrainFlowOutputs, train_flow

with job_logging(snakemake.log[0]):
    train_flow(
        RunSpec.from_training_params(snakemake.wildcards.run, snakemake.params.spec),
        outputs_of(TrainFlowOutputs, snakemake.output),
        train_events=snakemake.input.train,
        val_events=snakemake.input.val,
        scaler=snakemake.input.scaler,
        checkpoint=snakemake.params.checkpoint,
        signal_train=snakemake.input.get("signal_train"),
        signal_val=snakemake.input.get("signal_val"),
        threads=snakemake.threads,
    )
