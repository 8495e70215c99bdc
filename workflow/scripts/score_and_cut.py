"""Job script of rule score_and_cut: one sample's classifier scores and its efficiency at the cut."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.classifier import ScoreOutputs, score_and_cut

with job_logging(snakemake.log[0]):
    score_and_cut(
        outputs_of(ScoreOutputs, snakemake.output),
        model=snakemake.input.model,
        scaler=snakemake.input.scaler,
        events=snakemake.input.events,
        cut=float(snakemake.params.cut),
        chunk_size=int(snakemake.params.chunk_size),
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
