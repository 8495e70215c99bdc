"""Job script of rule train_flow: train one named flow run."""

from flowsim.flows.jobs import train_flow_job
from flowsim.logs import job_logging
from flowsim.runs import RunSpec
from flowsim.training import TrainConfig, configure_torch

with job_logging(snakemake.log[0]):
    configure_torch(snakemake.threads)
    train_flow_job(
        RunSpec(
            name=snakemake.wildcards.run,
            model=snakemake.params.model,
            params=dict(snakemake.params.flow_params),
            training=TrainConfig(**snakemake.params.training),
            n_generated=0,
            train_events=snakemake.params.train_events,
        ),
        train_events=snakemake.input.train,
        val_events=snakemake.input.val,
        scaler_path=snakemake.input.scaler,
        model_out=snakemake.output.model,
        history_out=snakemake.output.history,
        plot_out=snakemake.output.loss,
        checkpoint=snakemake.params.checkpoint,
    )
