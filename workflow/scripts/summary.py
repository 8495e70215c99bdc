"""Job script of rule summary: one row per flow run in results/summary/runs.tsv."""

from flowsim.logs import job_logging
from flowsim.summary import summary_job

with job_logging(snakemake.log[0]):
    summary_job(snakemake.params.files, snakemake.output[0])
