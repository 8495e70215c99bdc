"""Job script of rule fetch_higgs: download HIGGS.csv.gz and verify its sha256."""

from flowsim.data.fetch import download
from flowsim.logs import job_logging

with job_logging(snakemake.log[0]):
    download(snakemake.params.url, snakemake.output[0], sha256=snakemake.params.sha256)
