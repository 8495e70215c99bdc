"""Job script of rule split_ntuples: read the user's ROOT ntuples, write per-class splits."""

from flowsim.logs import job_logging
from flowsim.stages.data import split_ntuples

with job_logging(snakemake.log[0]):
    split_ntuples(
        dict(snakemake.output.items()),
        root=snakemake.params.root,
        features=snakemake.params.features,
        seed=snakemake.params.seed,
        ml_fraction=snakemake.params.ml_fraction,
        train_fraction=snakemake.params.train_fraction,
        test_a_fraction=snakemake.params.test_a_fraction,
        max_events=snakemake.params.max_events,
    )
