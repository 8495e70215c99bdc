"""Job script of rule split_higgs: validate the HIGGS file, write per-class splits."""

from flowsim.data.splits import SplitFractions, write_splits
from flowsim.logs import job_logging

with job_logging(snakemake.log[0]):
    outputs = {name: path for name, path in snakemake.output.items() if name != "manifest"}
    write_splits(
        snakemake.input.csv,
        outputs,
        snakemake.output.manifest,
        seed=snakemake.params.seed,
        fractions=SplitFractions(
            ml=snakemake.params.ml_fraction,
            train=snakemake.params.train_fraction,
            test_a=snakemake.params.test_a_fraction,
        ),
        max_events=snakemake.params.max_events,
        max_rows=snakemake.params.max_rows,
        expected_sha256=snakemake.params.sha256,
    )
