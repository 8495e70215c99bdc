"""Job script of rule spurious_signal: the signal a run's background model fits to background-only truth."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.worth import WorthPlotOutputs, spurious_signal

with job_logging(snakemake.log[0]):
    spurious_signal(
        outputs_of(WorthPlotOutputs, snakemake.output),
        run=snakemake.wildcards.run,
        section=dict(snakemake.params.section),
        signal=snakemake.params.signal,
        truth=snakemake.params.truth,
        mc_prediction=snakemake.params.mc_prediction,
        ml_templates=list(snakemake.input.ml_templates),
    )
