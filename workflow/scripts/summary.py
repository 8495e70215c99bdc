"""Job script of rule summary: one row per flow run in results/summary/runs.tsv."""

from flowsim.summary import summary_job
from flowsim.logs import job_logging

with job_logging(snakemake.log[0]):
    runs = {
        run: {
            "model": snakemake.input.models[i],
            "c2st": snakemake.input.c2st[i],
            "distances": snakemake.input.distances[i],
            "sampling": snakemake.input.sampling[i],
            "scans": snakemake.params.scans[run],
        }
        for i, run in enumerate(snakemake.params.runs)
    }
    summary_job(runs, snakemake.output[0])
