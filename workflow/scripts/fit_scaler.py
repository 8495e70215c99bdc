"""Job script of rule fit_scaler: fit the feature scaling on the background training split."""

from flowsim.logs import job_logging
from flowsim.stages.data import fit_scaler

with job_logging(snakemake.log[0]):
    fit_scaler(
        snakemake.input.train,
        snakemake.output[0],
        features=snakemake.params.features,
        method=snakemake.params.method,
        odd=snakemake.params.odd,
    )
