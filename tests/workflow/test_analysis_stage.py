"""The analysis stage run by Snakemake on the tiny runs: classifier, score files, scans, summary."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from flowsim import io
from flowsim.analysis.results import TSV_COLUMNS
from flowsim.analysis.selection import SCORE_BRANCH
from flowsim.stages.summary import SUMMARY_COLUMNS

RUNS = ("tiny_maf", "tiny_mademog")
MC_SCORED = ("sig_test_a", "sig_test_b", "bkg_test_a", "bkg_test_b")
SCANS = [(obs, alpha) for obs in ("score", "m_bb") for alpha in ("0.01", "0.05")]
N_LUMIS = 4  # tests/configs/tiny.yaml
CUT = 0.51


def test_classifier_model_metrics_and_plots(tiny_run):
    out = tiny_run / "results/analysis/classifier"
    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["model"] == "mlp_classifier" and len(payload["features"]) == 18
    metrics = {r["metric"]: float(r["value"]) for r in io.read_tsv(out / "metrics.tsv")}
    assert 0.5 < metrics["auc"] <= 1.0
    n_test = io.root_entries(tiny_run / "results/data/sig_test_a.root") + io.root_entries(
        tiny_run / "results/data/sig_test_b.root"
    )
    assert metrics["n_test_signal"] == n_test and 0.5 <= metrics["balanced_accuracy"] <= 1.0
    for name in ("loss", "roc"):
        assert (out / f"{name}.png").stat().st_size > 5_000


@pytest.mark.parametrize(
    "source,sample", [("mc", s) for s in MC_SCORED] + [("generated", r) for r in RUNS]
)
def test_score_files_are_friend_trees_of_their_samples(tiny_run, source, sample):
    events = (
        tiny_run / f"results/data/{sample}.root"
        if source == "mc"
        else tiny_run / f"results/flows/{sample}/generated.root"
    )
    scores = io.read_events(tiny_run / f"results/analysis/scores/{source}/{sample}.root")
    assert list(scores) == [SCORE_BRANCH]
    assert len(scores[SCORE_BRANCH]) == io.root_entries(events)
    assert np.all((scores[SCORE_BRANCH] >= 0) & (scores[SCORE_BRANCH] <= 1))
    counts = io.read_json(tiny_run / f"results/analysis/scores/{source}/{sample}.json")
    assert counts["n_total"] == io.root_entries(events) and counts["cut"] == CUT
    assert counts["n_selected"] == int(np.count_nonzero(scores[SCORE_BRANCH] > CUT))


def test_root_reads_the_score_tree_as_a_friend(tiny_run):
    ROOT = pytest.importorskip("ROOT", reason="CERN's ROOT (the 'root' test extra) is not installed")
    events = tiny_run / "results/data/bkg_test_a.root"
    scores = tiny_run / "results/analysis/scores/mc/bkg_test_a.root"
    tree_file = ROOT.TFile.Open(str(events))
    tree = tree_file.Get("events")
    tree.AddFriend("s=events", str(scores))
    selected = tree.GetEntries(f"s.score > {CUT}")
    assert selected == io.read_json(scores.with_suffix(".json"))["n_selected"] > 0
    tree_file.Close()


@pytest.mark.parametrize("run", RUNS)
def test_scan_tables_workspaces_and_plots(tiny_run, run):
    out = tiny_run / f"results/analysis/{run}"
    for obs, alpha in SCANS:
        rows = io.read_tsv(out / f"lumi_scan_{obs}_alpha{alpha}.tsv")
        assert list(rows[0]) == list(TSV_COLUMNS)
        assert [r["background"] for r in rows] == ["mc"] * N_LUMIS + ["ml"] * N_LUMIS
        lumis = [float(r["lumi_fb"]) for r in rows[:N_LUMIS]]
        np.testing.assert_allclose(lumis, np.geomspace(10, 1000, N_LUMIS))
        for row in rows:
            assert row["status"] == "ok", row
            band = [float(row[c]) for c in ("ul_exp_m2", "ul_exp_m1", "ul_exp", "ul_exp_p1", "ul_exp_p2")]
            assert band == sorted(band) and all(math.isfinite(v) and v > 0 for v in band)
            assert 0 <= float(row["cls"]) <= 1 and float(row["mu_err"]) > 0
        workspaces = sorted((out / f"workspaces/{obs}_alpha{alpha}").glob("*.json"))
        assert len(workspaces) == 2 * N_LUMIS
        for name in ("mu_hat", "pvalues", "limits"):
            assert (out / f"{name}_{obs}_alpha{alpha}.png").stat().st_size > 5_000
    for name in ("scores", "kinematics_after_cut"):
        assert (out / f"{name}.png").stat().st_size > 5_000


def test_pyhf_command_line_reproduces_a_scan_point(tiny_run):
    """pyhf's own ``cls`` on a written workspace gives the CLs and expected band of the TSV."""
    out = tiny_run / "results/analysis/tiny_maf"
    row = io.read_tsv(out / "lumi_scan_m_bb_alpha0.05.tsv")[N_LUMIS]  # ML, lowest luminosity
    path = out / f"workspaces/m_bb_alpha0.05/m_bb_alpha0.05_ml_L{float(row['lumi_fb']):.6g}.json"
    code = "import sys; from pyhf.cli import cli; sys.exit(cli())"
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, "cls", "--test-poi", "1.0", str(path)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    theirs = json.loads(done.stdout)
    assert theirs["CLs_obs"] == pytest.approx(float(row["cls"]), rel=0.01, abs=1e-4)


def test_summary_reports_the_analysis_per_run(tiny_run):
    rows = io.read_tsv(tiny_run / "results/summary/runs.tsv")
    assert list(rows[0]) == list(SUMMARY_COLUMNS)
    for row in rows:
        assert float(row["max_mu_pull"]) >= 0 and math.isfinite(float(row["max_ul_shift"]))
        assert row["max_mu_pull_at"].split()[0] in {f"{o}_alpha{a}" for o, a in SCANS}
        assert row["max_ul_shift_at"].endswith(tuple(f"L={lumi:.4g}" for lumi in np.geomspace(10, 1000, N_LUMIS)))
