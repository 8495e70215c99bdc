"""Job script of rule sample_flow: generate events from one trained flow run."""

from flowsim.flows.jobs import sample_flow_job
from flowsim.logs import job_logging
from flowsim.training import configure_torch

with job_logging(snakemake.log[0]):
    configure_torch(snakemake.threads)
    sample_flow_job(
        run=snakemake.wildcards.run,
        model_path=snakemake.input.model,
        scaler_path=snakemake.input.scaler,
        reference_events=snakemake.input.reference,
        n_generated=snakemake.params.n_generated,
        out=snakemake.output.events,
        timing_out=snakemake.output.timing,
        chunk_size=snakemake.params.chunk_size,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        max_nonfinite_fraction=snakemake.params.max_nonfinite_fraction,
    )
