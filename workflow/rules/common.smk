# Configuration checks, paths and input functions shared by every stage.

import os

from snakemake.utils import validate

from flowsim.config import ConfigError, check_config
from flowsim.runs import training_settings


validate(config, schema="../schemas/config.schema.yaml")
try:
    check_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# The flowsim package must be importable inside conda jobs too, where Snakemake blocks
# PYTHONPATH: the post-deploy scripts of envs/ install it from here.
os.environ.setdefault("FLOWSIM_ROOT", workflow.basedir)

SPLITS = ["train", "val", "test_a", "test_b"]
CLASSES = ["bkg", "sig"]
SPLIT_FILES = {
    f"{cls}_{split}": f"results/data/{cls}_{split}.root" for cls in CLASSES for split in SPLITS
}
HIGGS_DOWNLOAD = "resources/higgs/HIGGS.csv.gz"
RUNS = list(config["flows"])


wildcard_constraints:
    run="|".join(RUNS) if RUNS else "(?!)",


def run_uses_gpu(run):
    """1 when the run is set to train on CUDA (a GPU must be requested), else 0."""
    return int(training_settings(config, run)["device"].startswith("cuda"))


def higgs_csv():
    """The HIGGS-layout file the splits are made from: generated, downloaded, or the user's."""
    if config["data"]["source"] == "path":
        return config["data"]["path"]
    return HIGGS_DOWNLOAD


def final_outputs():
    """Everything `snakemake` builds by default."""
    return [
        *SPLIT_FILES.values(),
        "results/data/manifest.json",
        "results/data/scaler.npz",
        *expand("results/flows/{run}/generated.root", run=RUNS),
        *(["results/summary/runs.tsv"] if RUNS else []),
    ]
