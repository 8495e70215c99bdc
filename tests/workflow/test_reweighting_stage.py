"""The optional reweighting rules on a copy of the finished tiny run: a weight friend tree per
sample, and the weighted evaluation next to the unweighted one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from flowsim import io
from flowsim.stages.evaluate import WEIGHTED_COLUMNS
from tests.workflow.runner import TINY_CONFIG, snakemake
from tests.workflow.test_reruns import _jobs

RUN = "tiny_maf"
SECTION = {
    "enabled": True, "classifier": "mlp", "max_weight": 3.0, "hidden": 16, "residual_blocks": 1,
    "training": {"batch_size": 256, "max_epochs": 3, "patience": 2, "device": "cpu"},
}  # fmt: skip


def config_with_reweighting(tmp_path: Path, section: dict = SECTION) -> Path:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["reweighting"] = section
    path = tmp_path / "reweighting.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # run order, hence the summary, unchanged
    return path


def reweighting_copy(tiny_run: Path, root: Path, target: str, section: dict = SECTION) -> Path:
    """A copy of the finished tiny run under ``root`` with ``target`` made by the reweighting
    rules under ``section``."""
    workdir = root / "work"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    snakemake(workdir, target, "--configfile", str(config_with_reweighting(root, section)))
    return workdir


@pytest.fixture(scope="module")
def reweighted(tiny_run, tmp_path_factory) -> Path:
    return reweighting_copy(tiny_run, tmp_path_factory.mktemp("reweighting"), f"results/eval/{RUN}/weighted.tsv")


def test_enabling_reweighting_adds_only_its_own_jobs(tiny_run, tmp_path):
    result = snakemake(tiny_run, "--configfile", str(config_with_reweighting(tmp_path)), "-n")
    jobs = _jobs(result.stdout + result.stderr)
    assert jobs == {"reweight": 2, "eval_weighted": 2, "all": 1}


def test_weights_are_a_friend_tree_of_the_sample(reweighted):
    generated = reweighted / f"results/flows/{RUN}/generated.root"
    weights = io.read_matrix(reweighted / f"results/flows/{RUN}/weights.root", ["weight"])[:, 0]
    assert len(weights) == io.root_entries(generated)
    assert np.isfinite(weights).all() and (weights > 0).all() and weights.max() <= SECTION["max_weight"]
    info = io.read_json(reweighted / f"results/flows/{RUN}/weights.json")
    assert info["n_events"] == len(weights)
    assert info["n_clipped"] == np.count_nonzero(weights == np.float32(SECTION["max_weight"]))
    assert info["n_reference"] == io.root_entries(reweighted / "results/data/bkg_val.root")
    assert info["mean_weight"] == pytest.approx(weights.mean(), rel=1e-5)


def test_weighted_table_shows_both_samples(reweighted):
    rows = {row["metric"]: row for row in io.read_tsv(reweighted / f"results/eval/{RUN}/weighted.tsv")}
    assert list(next(iter(rows.values()))) == list(WEIGHTED_COLUMNS)
    assert set(rows) == {"tree_c2st_auc", "tree_c2st_auc_err", "max_ks", "mean_ks", "events"}
    weights = io.read_matrix(reweighted / f"results/flows/{RUN}/weights.root", ["weight"])[:, 0].astype(float)
    assert float(rows["events"]["unweighted"]) == len(weights)
    assert float(rows["events"]["weighted"]) == pytest.approx(weights.sum() ** 2 / (weights**2).sum(), rel=1e-6)
    for metric in ("tree_c2st_auc", "max_ks"):
        assert 0.0 <= float(rows[metric]["weighted"]) <= 1.0
    assert (reweighted / f"results/eval/{RUN}/features_weighted.png").stat().st_size > 10_000


def test_the_default_tree_classifier_weights_the_sample(tiny_run, tmp_path):
    section = {"enabled": True, "tree": {"max_iter": 50}}
    workdir = reweighting_copy(tiny_run, tmp_path, f"results/flows/{RUN}/weights.root", section)
    weights = io.read_matrix(workdir / f"results/flows/{RUN}/weights.root", ["weight"])[:, 0]
    assert len(weights) == io.root_entries(workdir / f"results/flows/{RUN}/generated.root")
    assert np.isfinite(weights).all() and (weights > 0).all() and weights.std() > 0
    assert "gradient-boosted trees" in (workdir / f"results/logs/reweight/{RUN}.log").read_text()
