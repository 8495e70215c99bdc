"""Job script of rule lumi_scan: fits, CLs and limits against luminosity, MC vs ML background."""

from flowsim.analysis.jobs import lumi_scan_job
from flowsim.logs import job_logging

with job_logging(snakemake.log[0]):
    lumi_scan_job(
        run=snakemake.wildcards.run,
        observable=snakemake.wildcards.obs,
        alpha=float(snakemake.wildcards.alpha),
        section=dict(snakemake.params.section),
        signal=snakemake.params.signal,
        data_background=snakemake.params.data_background,
        mc_prediction=snakemake.params.mc_prediction,
        ml_prediction=snakemake.params.ml_prediction,
        table_out=snakemake.output.table,
        workspaces_out=snakemake.output.workspaces,
        mu_plot=snakemake.output.mu,
        pvalue_plot=snakemake.output.pvalues,
        limit_plot=snakemake.output.limits,
    )
