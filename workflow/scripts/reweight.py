"""Job script of rule reweight: classifier weights w = D/(1-D) for a run's generated events."""

from flowsim.logs import job_logging
from flowsim.reweighting import reweight_job
from flowsim.training import configure_torch

with job_logging(snakemake.log[0]):
    configure_torch(snakemake.threads)
    reweight_job(
        model_path=snakemake.input.model,
        scaler_path=snakemake.input.scaler,
        reference_events=snakemake.input.reference,
        generated_events=snakemake.input.generated,
        section=dict(snakemake.params.section),
        weights_out=snakemake.output.weights,
        info_out=snakemake.output.info,
    )
