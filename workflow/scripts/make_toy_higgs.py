"""Job script of rule make_toy_higgs: write the toy HIGGS file."""

from flowsim.data.toy import write_toy_csv
from flowsim.logs import job_logging

with job_logging(snakemake.log[0]):
    write_toy_csv(
        snakemake.output[0],
        n_events=snakemake.params.n_events,
        seed=snakemake.params.seed,
        signal_fraction=snakemake.params.signal_fraction,
    )
