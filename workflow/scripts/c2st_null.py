"""Job script of rule c2st_null: the two-sample test on MC test_a vs MC test_b."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.evaluate import C2STNullOutputs, c2st_null

with job_logging(snakemake.log[0]):
    c2st_null(
        outputs_of(C2STNullOutputs, snakemake.output),
        test_a=snakemake.input.test_a,
        test_b=snakemake.input.test_b,
        scaler=snakemake.input.scaler,
        section=dict(snakemake.params.section),
        threads=snakemake.threads,
    )
