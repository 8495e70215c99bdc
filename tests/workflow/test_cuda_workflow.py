"""The tiny workflow with every torch job on the GPU (skipped without CUDA).

Run on a GPU machine with ``pytest tests/workflow/test_cuda_workflow.py``: flows, their
samples, the C2ST and the signal classifier are trained and run on ``cuda``, the files they
write load on the CPU, and the GPU jobs ask Snakemake for ``gpu=1``.
"""

from __future__ import annotations

import pytest
import torch
import yaml

from flowsim import io
from flowsim.flows.persist import load_flow
from flowsim.model_files import read_model_file
from tests.workflow.runner import TINY_CONFIG, snakemake

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

RUNS = ("tiny_maf", "tiny_mademog")


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cuda-workflow")
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["training"]["device"] = "cuda"
    config["c2st"]["training"]["device"] = "cuda"
    config["analysis"]["classifier"]["training"]["device"] = "cuda"
    path = workdir / "cuda.yaml"
    path.write_text(yaml.safe_dump(config))
    targets = [f"results/flows/{run}/generated.root" for run in RUNS]
    targets += [f"results/eval/{run}/c2st.tsv" for run in RUNS]
    targets += ["results/analysis/classifier/model.pt"]
    result = snakemake(workdir, *targets, "--configfile", str(path), "--resources", "gpu=1")
    return workdir, result


def test_flows_train_and_sample_on_the_gpu(cuda_run):
    workdir, _ = cuda_run
    for run in RUNS:
        folder = workdir / "results/flows" / run
        flow, info = load_flow(folder / "model.pt")  # a GPU-trained file loads on the CPU
        assert info["metadata"]["training"]["device"] == "cuda"
        assert not any(p.is_cuda for p in flow.parameters())
        timing = io.read_tsv(folder / "sampling.tsv")[0]
        assert timing["device"].startswith("cuda")
        assert int(timing["n_written"]) == io.root_entries(folder / "generated.root") > 0
        assert "device cuda" in (workdir / "results/logs/train_flow" / f"{run}.log").read_text()


def test_c2st_and_classifier_ran_on_the_gpu(cuda_run):
    workdir, _ = cuda_run
    for run in RUNS:
        rows = {r["metric"]: float(r["value"]) for r in io.read_tsv(workdir / "results/eval" / run / "c2st.tsv")}
        assert 0.0 <= rows["auc"] <= 1.0
    payload = read_model_file(workdir / "results/analysis/classifier/model.pt")
    assert payload["state_dict"]
