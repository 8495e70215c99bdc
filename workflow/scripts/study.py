"""Job script of rule study: collect a study's runs into tables and plots."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.summary import StudyOutputs, study
from flowsim.studies import Study

with job_logging(snakemake.log[0]):
    study(
        Study.from_params(snakemake.wildcards.study, snakemake.params.scan, snakemake.params.points),
        snakemake.params.files,
        outputs_of(StudyOutputs, snakemake.output),
    )
