"""Job script of rule split_higgs: validate the HIGGS file, write per-class splits."""

from flowsim.logs import job_logging
from flowsim.stages.data import split_higgs

with job_logging(snakemake.log[0]):
    split_higgs(
        snakemake.input.csv,
        dict(snakemake.output.items()),
        seed=snakemake.params.seed,
        ml_fraction=snakemake.params.ml_fraction,
        train_fraction=snakemake.params.train_fraction,
        test_a_fraction=snakemake.params.test_a_fraction,
        max_events=snakemake.params.max_events,
        max_rows=snakemake.params.max_rows,
        sha256=snakemake.params.sha256,
    )
