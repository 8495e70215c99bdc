"""Job script of rule summary: one row per flow run in results/summary/runs.tsv."""

from flowsim.logs import job_logging
from flowsim.stages.summary import summary

with job_logging(snakemake.log[0]):
    summary(snakemake.params.files, snakemake.output[0])
