"""Job script of rule reweight: classifier weights w = D/(1-D) for a run's generated events."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.evaluate import ReweightOutputs, reweight

with job_logging(snakemake.log[0]):
    reweight(
        outputs_of(ReweightOutputs, snakemake.output),
        model=snakemake.input.model,
        scaler=snakemake.input.scaler,
        reference=snakemake.input.reference,
        generated=snakemake.input.generated,
        section=dict(snakemake.params.section),
        threads=snakemake.threads,
    )
