"""Job script of rule c2st: the two-sample test on MC test_a vs one run's generated events."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.evaluate import C2STOutputs, c2st

with job_logging(snakemake.log[0]):
    c2st(
        outputs_of(C2STOutputs, snakemake.output),
        run=snakemake.wildcards.run,
        test_a=snakemake.input.test_a,
        generated=snakemake.input.generated,
        scaler=snakemake.input.scaler,
        null_table=snakemake.input.null_table,
        null_scores=snakemake.input.null_scores,
        section=dict(snakemake.params.section),
        units=snakemake.params.units,
        threads=snakemake.threads,
    )
