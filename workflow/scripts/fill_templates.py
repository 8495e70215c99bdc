"""Job script of rule fill_templates: one run's binned templates from generated events, no event file."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.flows import FillTemplatesOutputs, fill_templates

with job_logging(snakemake.log[0]):
    fill_templates(
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
        weight_draw=snakemake.params.weight_draw,
        marginal_bins=snakemake.params.marginal_bins,
        threads=snakemake.threads,
    )
