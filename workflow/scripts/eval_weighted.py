"""Job script of rule eval_weighted: tree C2ST and KS distances, unweighted and weighted."""

from flowsim.evaluation import eval_weighted_job
from flowsim.logs import job_logging

with job_logging(snakemake.log[0]):
    eval_weighted_job(
        test_a=snakemake.input.test_a,
        generated=snakemake.input.generated,
        weights=snakemake.input.weights,
        features=snakemake.params.features,
        seed=snakemake.params.seed,
        table_out=snakemake.output.table,
        plot_out=snakemake.output.features,
    )
