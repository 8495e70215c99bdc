"""Job script of rule eval_weighted: tree C2ST and KS distances, unweighted and weighted."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.evaluate import WeightedOutputs, eval_weighted

with job_logging(snakemake.log[0]):
    eval_weighted(
        outputs_of(WeightedOutputs, snakemake.output),
        test_a=snakemake.input.test_a,
        generated=snakemake.input.generated,
        weights=snakemake.input.weights,
        features=snakemake.params.features,
        seed=snakemake.params.seed,
    )
