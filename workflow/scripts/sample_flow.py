"""Job script of rule sample_flow: generate events from one trained flow run."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.flows import SampleFlowOutputs, sample_flow

with job_logging(snakemake.log[0]):
    sample_flow(
        outputs_of(SampleFlowOutputs, snakemake.output),
        run=snakemake.wildcards.run,
        model=snakemake.input.model,
        scaler=snakemake.input.scaler,
        reference=snakemake.input.reference,
        n_generated=snakemake.params.n_generated,
        chunk_size=snakemake.params.chunk_size,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        max_nonfinite_fraction=snakemake.params.max_nonfinite_fraction,
        threads=snakemake.threads,
    )
