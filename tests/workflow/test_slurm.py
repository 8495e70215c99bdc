"""The tiny workflow through a real Slurm: every job via sbatch, GPU requests, failures, outputs.

Needs a running Slurm whose jobs can run here: ``tests/slurm/localhost-cluster.sh start`` brings up
a single-node cluster on this machine (``.ci/run`` does so in CI). Without one the tests are
skipped with the reason; with ``FLOWSIM_REQUIRE_SLURM=1`` (set by ``.ci/run`` once the cluster is
up) they fail instead, so CI never skips them silently.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from flowsim import io
from tests.higgs_files import make_rows, write_csv
from tests.workflow.runner import ROOT, TINY_CONFIG, snakemake

PROFILE = ROOT / "workflow" / "profiles" / "slurm"
LOCAL_RULES = {"all", "summary"}
# fast polling for a test; the profile keeps the polite defaults of a shared cluster
FAST = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--seconds-between-status-checks", "3")  # fmt: skip


def _slurm_problem() -> str | None:
    """Why Slurm cannot be used here, or None."""
    if shutil.which("sbatch") is None:
        return "no Slurm client (sbatch) on PATH; run tests/slurm/localhost-cluster.sh start"
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if done.returncode != 0 or not re.search(r"idle|mixed|allocated", done.stdout):
        return f"Slurm is not up (sinfo: {(done.stderr or done.stdout).strip()[:200]})"
    return None


PROBLEM = _slurm_problem()
if PROBLEM and os.environ.get("FLOWSIM_REQUIRE_SLURM") == "1":
    raise RuntimeError(f"FLOWSIM_REQUIRE_SLURM=1 but {PROBLEM}")
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")


def _slurm_job(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dict (finished jobs stay listed for MinJobAge)."""
    text = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w+)=(\S*)", text))


def _submitted(output: str) -> list[str]:
    return re.findall(r"has been submitted with SLURM jobid (\d+)", output)


def _run_on_slurm(workdir: Path, config: Path, *args: str, check: bool = True):
    env = {"FLOWSIM_CONFIG": str(config)}  # replaces the default config in the cluster jobs too
    return snakemake(
        workdir, "--profile", str(PROFILE), *FAST, *args, check=check, timeout=1500, env=env
    )


#: What the Slurm run builds: every stage from the toy file to a fit (each job through sbatch costs
#: seconds of queueing, so not every plot and table of the tiny workflow, which the local run checks)
TARGETS = [
    *(f"results/flows/{run}/history.tsv" for run in ("tiny_maf", "tiny_mademog")),
    *(f"results/analysis/{run}/lumi_scan_score_alpha0.01.tsv" for run in ("tiny_maf", "tiny_mademog")),
]


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory) -> tuple[Path, str]:
    """The tiny workflow's training and fits run through sbatch, train_flow asking for the (fake) GPU."""
    workdir = tmp_path_factory.mktemp("slurm-run")
    result = _run_on_slurm(workdir, TINY_CONFIG, *TARGETS, "--set-resources", "train_flow:gpu=1")
    return workdir, result.stdout + result.stderr


def test_every_job_but_the_local_ones_went_through_sbatch(slurm_run):
    _, output = slurm_run
    executed = re.findall(r"^\s*(?:local)?rule (\w+):", output, re.M)
    remote = [r for r in executed if r not in LOCAL_RULES]
    ids = _submitted(output)
    assert len(ids) == len(remote) >= 15
    jobs = [_slurm_job(i) for i in ids]
    assert all(job["JobState"] == "COMPLETED" for job in jobs)
    rules = sorted(job["Comment"].removeprefix("rule_").split("_wildcards")[0] for job in jobs)
    assert rules == sorted(remote)


def test_gpu_jobs_are_submitted_with_their_gpu_request(slurm_run):
    _, output = slurm_run
    jobs = [_slurm_job(i) for i in _submitted(output)]
    training = [job for job in jobs if job["Comment"].startswith("rule_train_flow")]
    # tiny_maf, its two bootstrap members and tiny_mademog (whose weight draws need no training)
    executed = re.findall(r"^\s*rule train_flow:", output, re.M)
    assert len(training) == len(executed) == 4
    assert all(job.get("TresPerJob") == "gres:gpu:1" for job in training)
    others = [job for job in jobs if not job["Comment"].startswith("rule_train_flow")]
    assert not any("gpu" in job.get("TresPerJob", "") for job in others)


def test_outputs_equal_those_of_a_local_run(slurm_run, tiny_run):
    workdir, _ = slurm_run
    for split in ("bkg_train", "sig_test_b"):
        local = io.read_events(tiny_run / f"results/data/{split}.root")
        remote = io.read_events(workdir / f"results/data/{split}.root")
        for branch in local:
            np.testing.assert_array_equal(remote[branch], local[branch])
    for run in ("tiny_maf", "tiny_mademog"):
        local = io.read_tsv(tiny_run / f"results/flows/{run}/history.tsv")
        remote = io.read_tsv(workdir / f"results/flows/{run}/history.tsv")
        assert [r["val_loss"] for r in remote] == [r["val_loss"] for r in local]
        scan = f"results/analysis/{run}/lumi_scan_score_alpha0.01.tsv"
        assert (workdir / scan).read_text() == (tiny_run / scan).read_text()


def test_a_failing_job_is_reported(tmp_path):
    rows = [",".join(f"{v:.18e}" for v in r) for r in make_rows(400, seed=4)]
    rows[9] = rows[9].replace(",", ",oops", 1)
    source = write_csv(tmp_path / "bad.csv.gz", rows)
    config = tmp_path / "config.yaml"
    tiny = yaml.safe_load(TINY_CONFIG.read_text())
    config.write_text(yaml.safe_dump({**tiny, "data": {"source": "path", "path": str(source)}}))
    result = _run_on_slurm(tmp_path / "work", config, "results/data/manifest.json", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    (job_id,) = _submitted(output)
    assert _slurm_job(job_id)["JobState"] == "FAILED"
    assert "Error in rule split_higgs" in output
    log = (tmp_path / "work/results/logs/split_higgs.log").read_text()
    assert "bad.csv.gz, line 10: non-numeric value 'oops" in log
