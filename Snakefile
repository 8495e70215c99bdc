# flowsim: normalizing-flow surrogate Monte Carlo for the final stage of an LHC analysis.
# Stages live in workflow/rules/<stage>.smk, logic in the flowsim package (src/flowsim/),
# thin job scripts in workflow/scripts/. Configuration: config/config.yaml, validated against
# workflow/schemas/config.schema.yaml before anything runs.

from snakemake.utils import min_version

min_version("9.0")


# FLOWSIM_CONFIG names another base configuration to use instead of config/config.yaml. It is the
# way to replace (not merge into) the default on a cluster: Snakemake 9.27 does not pass
# --replace-workflow-config on to cluster jobs, but the environment travels with them.
configfile: os.environ.get("FLOWSIM_CONFIG") or os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/flows.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/worth.smk"
include: "workflow/rules/summary.smk"


# Trivial jobs run where Snakemake runs, never on a cluster node.
localrules:
    all,
    summary,
    study,


rule all:
    input:
        final_outputs(),
    default_target: True
