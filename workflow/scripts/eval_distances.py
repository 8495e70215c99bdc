"""Job script of rule eval_distances: per-feature distances and pair copulas against MC, and plots."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.evaluate import DistancesOutputs, eval_distances

with job_logging(snakemake.log[0]):
    eval_distances(
        outputs_of(DistancesOutputs, snakemake.output),
        test_a=snakemake.input.test_a,
        test_b=snakemake.input.test_b,
        generated=snakemake.input.generated,
        features=snakemake.params.features,
        n_bins=snakemake.params.n_bins,
        n_resamples=snakemake.params.n_resamples,
        seed=snakemake.params.seed,
        units=snakemake.params.units,
        n_jobs=snakemake.threads,
    )
