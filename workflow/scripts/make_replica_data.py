"""Job script of rule make_replica_data: a coverage replica's own toy training set."""

from flowsim.logs import job_logging
from flowsim.stages.data import make_replica_data

with job_logging(snakemake.log[0]):
    make_replica_data(
        replica=snakemake.wildcards.replica,
        train_out=snakemake.output.train,
        val_out=snakemake.output.val,
        n_train=snakemake.params.n_train,
        n_val=snakemake.params.n_val,
        train_like=snakemake.input.train,
        val_like=snakemake.input.val,
        seed=snakemake.params.seed,
    )
