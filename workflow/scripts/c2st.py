"""Job script of rule c2st: the two-sample test on MC test_a vs one run's generated events."""

from flowsim.evaluation import c2st_job
from flowsim.logs import job_logging
from flowsim.training import configure_torch

with job_logging(snakemake.log[0]):
    configure_torch(snakemake.threads)
    c2st_job(
        test_a=snakemake.input.test_a,
        generated=snakemake.input.generated,
        scaler=snakemake.input.scaler,
        null_table=snakemake.input.null_table,
        null_scores=snakemake.input.null_scores,
        section=dict(snakemake.params.section),
        run=snakemake.wildcards.run,
        table_out=snakemake.output.table,
        history_out=snakemake.output.history,
        history_plot=snakemake.output.loss,
        roc_plot=snakemake.output.roc,
        scores_plot=snakemake.output.scores,
        ratio_plot=snakemake.output.ratio,
        tails_plot=snakemake.output.tails,
    )
