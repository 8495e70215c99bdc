"""The worth stage run by Snakemake on the tiny runs: truth, amplification, spurious signal, and a
two-replica coverage study on a copy of the finished tiny workflow."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from flowsim import io
from flowsim.stages.worth import AMPLIFICATION_COLUMNS, COVERAGE_COLUMNS, SPURIOUS_COLUMNS
from flowsim.worth import replica_seed
from tests.workflow.runner import TINY_CONFIG, snakemake
from tests.workflow.test_reruns import _jobs

RUNS = ("tiny_maf", "tiny_mademog")
FEATURES = 18
MARGINAL_BINS = 5  # tests/configs/tiny.yaml


def test_the_truth_is_an_independent_toy_background_sample_scored_like_the_mc(tiny_run):
    truth = tiny_run / "results/worth/truth/bkg_truth.root"
    assert io.root_entries(truth) == 20000  # worth.truth_events of the tiny config
    label = io.read_events(truth, ["label"])["label"]
    assert np.all(label == 0)
    scores = io.read_events(tiny_run / "results/analysis/scores/mc/bkg_truth.root", ["score"])["score"]
    assert len(scores) == 20000
    train = io.read_matrix(tiny_run / "results/data/bkg_train.root", ["m_bb", "m_jjj"])
    x = io.read_matrix(truth, ["m_bb", "m_jjj"])
    # the same density (means agree within a few standard errors), not the same events
    se = x.std(axis=0) * math.sqrt(1 / len(x) + 1 / len(train))
    assert np.all(np.abs(x.mean(axis=0) - train.mean(axis=0)) < 5 * se)
    # no event of the training split again (one float32 column alone may repeat by chance)
    assert not set(map(tuple, x.tolist())) & set(map(tuple, train.tolist()))


@pytest.mark.parametrize("run", RUNS)
def test_amplification_table_judges_every_template_and_checks_itself_on_mc(tiny_run, run):
    rows = io.read_tsv(tiny_run / f"results/worth/{run}/amplification.tsv")
    assert list(rows[0]) == list(AMPLIFICATION_COLUMNS)
    names = [r["template"] for r in rows]
    assert set(names[:2]) == {"score", "m_bb"} and len(names) == 2 + FEATURES
    assert all(n.startswith("marginal:") for n in names[2:])
    n_train = io.root_entries(tiny_run / "results/data/bkg_train.root")
    n_test_b = io.root_entries(tiny_run / "results/data/bkg_test_b.root")
    for row in rows:
        assert int(row["n_train"]) == n_train and int(row["mc_events"]) == n_test_b
        assert int(row["n_members"]) == 2 and int(row["n_truth"]) == 20000
        assert int(row["n_cells"]) == (8 if row["kind"] == "after_cut" else MARGINAL_BINS + 2)
        g, low, high = (float(row[k]) for k in ("G", "G_low", "G_high"))
        assert 0 < low <= high and (math.isinf(g) or low <= g <= high)
        assert float(row["n_equiv"]) == pytest.approx(g * n_train)
    # an MC sample is worth about its own size: the estimator's check, over the 20 templates
    ratios = [float(r["mc_ratio"]) for r in rows if math.isfinite(float(r["mc_ratio"]))]
    assert 0.5 < float(np.median(ratios)) < 2.0


@pytest.mark.parametrize("run", RUNS)
def test_spurious_signal_of_every_background_model_at_every_point(tiny_run, run):
    rows = io.read_tsv(tiny_run / f"results/worth/{run}/spurious.tsv")
    assert list(rows[0]) == list(SPURIOUS_COLUMNS)
    n_lumis, scans = 4, {(o, a) for o in ("score", "m_bb") for a in ("0.01", "0.05")}
    assert {(r["observable"], r["alpha"]) for r in rows} == scans
    assert len(rows) == len(scans) * 3 * n_lumis  # mc, ml and ml_surrogate (both runs have ensembles)
    for row in rows:
        # the tiny flows are poor: a spurious signal beyond the bounds of mu is flagged, not failed
        assert row["status"] == "ok" or row["status"].startswith("interval cut at mu=")
        assert row["status"] == "ok" or row["background"] != "mc"
        mu, sigma = float(row["mu_hat"]), float(row["sigma_mu"])
        assert sigma > 0 and float(row["significance"]) == pytest.approx(mu / sigma)
    assert (tiny_run / f"results/worth/{run}/spurious.png").stat().st_size > 0


def test_the_summary_carries_the_amplification_and_the_largest_spurious_signal(tiny_run):
    rows = {r["run"]: r for r in io.read_tsv(tiny_run / "results/summary/runs.tsv")}
    for run in RUNS:
        table = {r["template"]: r for r in io.read_tsv(tiny_run / f"results/worth/{run}/amplification.tsv")}
        assert float(rows[run]["G_score"]) == float(table["score"]["G"])
        spurious = [r for r in io.read_tsv(tiny_run / f"results/worth/{run}/spurious.tsv") if r["background"] == "ml"]
        worst = max(spurious, key=lambda r: abs(float(r["significance"])))
        assert float(rows[run]["max_spurious"]) == float(worst["significance"])
        assert rows[run]["max_spurious_at"].startswith(f"{worst['observable']} alpha={worst['alpha']}")


COVERAGE = {"run": "tiny_maf", "replicas": 2, "members": 2, "train_events": 1500, "val_events": 400,
            "lumi_fb": {"min": 10, "max": 100, "n": 2}}  # fmt: skip


@pytest.fixture(scope="module")
def coverage_run(tiny_run, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the tiny run with a two-replica coverage study built."""
    workdir = tmp_path_factory.mktemp("coverage") / "work"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["worth"]["coverage"] = COVERAGE
    path = workdir.parent / "coverage.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "results/worth/coverage.tsv", "--configfile", str(path))
    return workdir, result.stdout + result.stderr


def test_coverage_trains_each_replica_on_its_own_toy_set(coverage_run):
    workdir, output = coverage_run
    # score_and_cut: each replica's training set, its MC baseline
    assert _jobs(output) == {
        "make_replica_data": 2, "train_flow": 4, "fill_templates": 4, "score_and_cut": 2, "coverage": 1,
    }  # fmt: skip
    first, second = (
        io.read_matrix(workdir / f"results/worth/replicas/r00{r}/bkg_train.root", ["m_bb"]) for r in (1, 2)
    )
    assert len(first) == len(second) == 1500 and not np.array_equal(first, second)
    assert replica_seed(1, 1) != replica_seed(1, 2)
    for r in (1, 2):  # the MC baseline: the classifier's scores of the replica's own training set
        scores = io.read_events(workdir / f"results/analysis/scores/mc/coverage.r00{r}.train.root", ["score"])
        assert len(scores["score"]) == 1500
    log = (workdir / "results/logs/train_flow/coverage.r002.member1.log").read_text()
    assert "bootstrap replica of" in log


def test_coverage_table_has_a_fraction_per_model_and_luminosity(coverage_run):
    workdir, _ = coverage_run
    rows = io.read_tsv(workdir / "results/worth/coverage.tsv")
    assert list(rows[0]) == list(COVERAGE_COLUMNS)
    assert {r["background"] for r in rows} == {"mc_train", "ml", "ml_surrogate"}
    assert len(rows) == 2 * 2 * 3 * 2  # observables, alphas, models, luminosities
    for row in rows:
        n, covered, failed = int(row["n_replicas"]), int(row["n_covered"]), int(row["n_failed"])
        assert n == 2 and 0 <= covered <= n - failed
        if failed < n:
            assert float(row["coverage"]) == pytest.approx(covered / (n - failed))
    assert (workdir / "results/worth/coverage.png").stat().st_size > 0
