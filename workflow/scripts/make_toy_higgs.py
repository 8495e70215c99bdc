"""Job script of rule make_toy_higgs: write the toy HIGGS file."""

from flowsim.logs import job_logging
from flowsim.stages.data import make_toy_higgs

with job_logging(snakemake.log[0]):
    make_toy_higgs(
        snakemake.output[0],
        n_events=snakemake.params.n_events,
        seed=snakemake.params.seed,
        signal_fraction=snakemake.params.signal_fraction,
    )
