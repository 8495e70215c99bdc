"""Job script of rule fill_signal_templates: a label-conditioned run's signal templates, from its
flow at label 1, no event file."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.flows import FillTemplatesOutputs, fill_signal_templates

with job_logging(snakemake.log[0]):
    fill_signal_templates(
        outputs_of(FillTemplatesOutputs, snakemake.output),
        run=snakemake.wildcards.run,
        model=snakemake.input.model,
        scaler=snakemake.input.scaler,
        classifier=snakemake.input.classifier,
        classifier_scaler=snakemake.input.classifier_scaler,
        reference=snakemake.input.reference,
        n_events=snakemake.params.n_events,
        section=dict(snakemake.params.section),
        chunk_size=snakemake.params.chunk_size,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        max_nonfinite_fraction=snakemake.params.max_nonfinite_fraction,
        threads=snakemake.threads,
    )
