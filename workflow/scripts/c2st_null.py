"""Job script of rule c2st_null: the two-sample test on MC test_a vs MC test_b."""

from flowsim.evaluation import c2st_null_job
from flowsim.logs import job_logging
from flowsim.training import configure_torch

with job_logging(snakemake.log[0]):
    configure_torch(snakemake.threads)
    c2st_null_job(
        test_a=snakemake.input.test_a,
        test_b=snakemake.input.test_b,
        scaler=snakemake.input.scaler,
        section=dict(snakemake.params.section),
        table_out=snakemake.output.table,
        scores_out=snakemake.output.scores,
    )
