# flowsim: normalizing-flow surrogate Monte Carlo for the final stage of an LHC analysis.
# Stages live in workflow/rules/<stage>.smk, logic in the flowsim package (src/flowsim/),
# thin job scripts in workflow/scripts/. Configuration: config/config.yaml, validated against
# workflow/schemas/config.schema.yaml before anything runs.

from snakemake.utils import min_version

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/flows.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/summary.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
