"""Job script of rule make_truth: the toy truth, background events of the toy generator."""

from flowsim.logs import job_logging
from flowsim.stages.data import make_truth

with job_logging(snakemake.log[0]):
    make_truth(snakemake.output[0], n_events=snakemake.params.n_events, seed=snakemake.params.seed)
