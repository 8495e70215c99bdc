"""Job script of rule fit_scaler: fit the feature scaling on the background training split."""

from flowsim.data.scaling import fit_scaler_on_file
from flowsim.logs import job_logging

with job_logging(snakemake.log[0]):
    fit_scaler_on_file(
        snakemake.input.train,
        snakemake.output[0],
        features=snakemake.params.features,
        method=snakemake.params.method,
        odd=snakemake.params.odd,
    )
