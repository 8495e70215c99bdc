"""Job script of rule lumi_scan: fits, CLs and limits against luminosity, MC vs ML background."""

from flowsim.logs import job_logging
from flowsim.stages import outputs_of
from flowsim.stages.analysis import LumiScanOutputs, lumi_scan

with job_logging(snakemake.log[0]):
    lumi_scan(
        outputs_of(LumiScanOutputs, snakemake.output),
        run=snakemake.wildcards.run,
        observable=snakemake.wildcards.obs,
        alpha=float(snakemake.wildcards.alpha),
        section=dict(snakemake.params.section),
        signal=snakemake.params.signal,
        data_background=snakemake.params.data_background,
        mc_prediction=snakemake.params.mc_prediction,
        ml_templates=list(snakemake.input.ml_templates),
        ml_signal_templates=list(snakemake.input.ml_signal_templates),
    )
