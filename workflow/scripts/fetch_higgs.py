"""Job script of rule fetch_higgs: download HIGGS.csv.gz and verify its sha256."""

from flowsim.logs import job_logging
from flowsim.stages.data import fetch_higgs

with job_logging(snakemake.log[0]):
    fetch_higgs(snakemake.output[0], url=snakemake.params.url, sha256=snakemake.params.sha256)
