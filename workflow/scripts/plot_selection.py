"""Job script of rule plot_selection: classifier scores and features after the cut, MC vs ML."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.analysis import SelectionOutputs, plot_selection

with job_logging(snakemake.log[0]):
    plot_selection(
        outputs_of(SelectionOutputs, snakemake.output),
        run=snakemake.wildcards.run,
        signal=snakemake.params.signal,
        mc_background=snakemake.params.mc_background,
        ml_background=snakemake.params.ml_background,
        features=list(snakemake.params.features),
        units=snakemake.params.units,
        cut=float(snakemake.params.cut),
        section=dict(snakemake.params.section),
        mc_prediction=snakemake.params.mc_prediction,
        ml_templates=list(snakemake.input.ml_templates),
    )
