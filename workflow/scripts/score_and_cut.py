"""Job script of rule score_and_cut: one sample's classifier scores and its efficiency at the cut."""

from flowsim.analysis.signal_classifier import score_and_cut_job
from flowsim.logs import job_logging
from flowsim.training import configure_torch

with job_logging(snakemake.log[0]):
    configure_torch(snakemake.threads)
    score_and_cut_job(
        model=snakemake.input.model,
        scaler=snakemake.input.scaler,
        events=snakemake.input.events,
        cut=float(snakemake.params.cut),
        scores_out=snakemake.output.scores,
        counts_out=snakemake.output.counts,
        chunk_size=int(snakemake.params.chunk_size),
        device=snakemake.params.device,
    )
