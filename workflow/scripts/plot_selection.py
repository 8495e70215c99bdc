"""Job script of rule plot_selection: classifier scores and features after the cut, MC vs ML."""

from flowsim.analysis.jobs import plot_selection_job
from flowsim.logs import job_logging

with job_logging(snakemake.log[0]):
    plot_selection_job(
        run=snakemake.wildcards.run,
        signal=snakemake.params.signal,
        mc_background=snakemake.params.mc_background,
        ml_background=snakemake.params.ml_background,
        features=list(snakemake.params.features),
        cut=float(snakemake.params.cut),
        scores_plot=snakemake.output.scores,
        kinematics_plot=snakemake.output.kinematics,
    )
