"""Job script of rule coverage: the coverage of the ML-background fit over the replicas."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.worth import WorthPlotOutputs, coverage

with job_logging(snakemake.log[0]):
    coverage(
        outputs_of(WorthPlotOutputs, snakemake.output),
        section=dict(snakemake.params.section),
        signal=snakemake.params.signal,
        truth=snakemake.params.truth,
        replica_mc={name: [tuple(pair) for pair in files] for name, files in snakemake.params.replica_mc.items()},
        replicas=dict(snakemake.params.replicas),
        lumi_fb=snakemake.params.lumi_fb,
        shapesys_rel=snakemake.params.shapesys_rel,
        seed=snakemake.params.seed,
    )
