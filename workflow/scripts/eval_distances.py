"""Job script of rule eval_distances: per-feature distances and pair copulas against MC, and plots."""

from flowsim.evaluation import eval_distances_job
from flowsim.logs import job_logging

with job_logging(snakemake.log[0]):
    eval_distances_job(
        test_a=snakemake.input.test_a,
        test_b=snakemake.input.test_b,
        generated=snakemake.input.generated,
        features=snakemake.params.features,
        n_bins=snakemake.params.n_bins,
        n_resamples=snakemake.params.n_resamples,
        seed=snakemake.params.seed,
        table_out=snakemake.output.table,
        summary_plot=snakemake.output.summary,
        linear_plot=snakemake.output.linear,
        log_plot=snakemake.output.log,
        corner_plot=snakemake.output.corner,
        copula_table_out=snakemake.output.copula_table,
        copula_plot=snakemake.output.copula,
        n_jobs=snakemake.threads,
    )
