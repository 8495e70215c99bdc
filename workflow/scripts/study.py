"""Job script of rule study: collect a study's runs into tables and plots."""

from flowsim.logs import job_logging
from flowsim.studies import Study, StudyPoint
from flowsim.summary import study_job

with job_logging(snakemake.log[0]):
    study = Study(
        name=snakemake.wildcards.study,
        scan=snakemake.params.scan,
        points=tuple(StudyPoint(**point) for point in snakemake.params.points),
    )
    study_job(
        study,
        snakemake.params.files,
        points_out=snakemake.output.points,
        summary_out=snakemake.output.summary,
        curves_plot=snakemake.output.curves,
        val_nll_plot=snakemake.output.val_nll,
        c2st_plot=snakemake.output.c2st,
        copula_plot=snakemake.output.copula,
    )
