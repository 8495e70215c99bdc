"""Job script of rule amplification: how many MC events each of a run's templates is worth."""

from flowsim.logs import job_logging
from flowsim.stages.worth import amplification

with job_logging(snakemake.log[0]):
    amplification(
        snakemake.output.table,
        run=snakemake.wildcards.run,
        ml_templates=list(snakemake.input.ml_templates),
        train=snakemake.input.train,
        train_events=snakemake.params.train_events,
        truth=[tuple(snakemake.params.truth)],
        mc_reference=[tuple(snakemake.params.mc_reference)],
        section=dict(snakemake.params.section),
        n_bootstrap=snakemake.params.n_bootstrap,
        seed=snakemake.params.seed,
    )
