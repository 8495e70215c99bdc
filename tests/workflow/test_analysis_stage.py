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
#: tests/configs/tiny.yaml: tiny_maf has an ensemble of two bootstrap members, tiny_mademog is a
#: Bayesian flow whose ensemble is two draws of its weights
TEMPLATE_RUNS = {
    "tiny_maf": ("tiny_maf.member1", "tiny_maf.member2"),
    "tiny_mademog": ("tiny_mademog.draw1", "tiny_mademog.draw2"),
}
BACKGROUNDS = {run: ("mc", "ml", "ml_surrogate") for run in RUNS}
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
        assert [r["background"] for r in rows] == [b for b in BACKGROUNDS[run] for _ in range(N_LUMIS)]
        lumis = [float(r["lumi_fb"]) for r in rows[:N_LUMIS]]
        np.testing.assert_allclose(lumis, np.geomspace(10, 1000, N_LUMIS))
        for row in rows:
            assert row["status"] == "ok", row
            band = [float(row[c]) for c in ("ul_exp_m2", "ul_exp_m1", "ul_exp", "ul_exp_p1", "ul_exp_p2")]
            assert band == sorted(band) and all(math.isfinite(v) and v > 0 for v in band)
            assert 0 <= float(row["cls"]) <= 1 and float(row["mu_err"]) > 0
        workspaces = sorted((out / f"workspaces/{obs}_alpha{alpha}").glob("*.json"))
        assert len(workspaces) == len(BACKGROUNDS[run]) * N_LUMIS
        for name in ("mu_hat", "pvalues", "limits"):
            assert (out / f"{name}_{obs}_alpha{alpha}.png").stat().st_size > 5_000
    for name in ("scores", "kinematics_after_cut", "templates"):
        assert (out / f"{name}.png").stat().st_size > 5_000


@pytest.mark.parametrize("background", ["ml", "ml_surrogate"])
def test_pyhf_command_line_reproduces_a_scan_point(tiny_run, background):
    """pyhf's own ``cls`` on a written workspace gives the CLs of the TSV."""
    out = tiny_run / "results/analysis/tiny_maf"
    rows = io.read_tsv(out / "lumi_scan_m_bb_alpha0.05.tsv")
    row = next(r for r in rows if r["background"] == background)  # the lowest luminosity
    path = out / f"workspaces/m_bb_alpha0.05/m_bb_alpha0.05_{background}_L{float(row['lumi_fb']):.6g}.json"
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


@pytest.mark.parametrize("run", [name for names in TEMPLATE_RUNS.values() for name in names])
def test_templates_are_filled_for_every_run_and_member(tiny_run, run):
    from flowsim.analysis.template_files import read_templates

    summary = io.read_json(tiny_run / f"results/templates/{run}/templates.json")
    n_test_a = io.root_entries(tiny_run / "results/data/bkg_test_a.root")
    assert summary["n_requested"] == 3 * n_test_a  # analysis.n_template_events: 3x
    assert summary["n_written"] + summary["n_nonfinite"] == summary["n_requested"]
    assert summary["events_per_second"] > 0 and 0 < summary["sampling_share"] <= 1
    templates = read_templates(tiny_run / f"results/templates/{run}/templates.root")
    assert (templates.n_generated, templates.n_selected) == (summary["n_requested"], summary["n_selected"])
    assert set(templates.templates) == {obs for obs, _ in SCANS}
    for obs in templates.templates:
        assert templates[obs].n_bins == 8 and templates[obs].n_total == summary["n_written"]


def test_ensemble_members_train_on_bootstrap_replicas(tiny_run):
    logs = [(tiny_run / f"results/logs/train_flow/{m}.log").read_text() for m in TEMPLATE_RUNS["tiny_maf"]]
    assert all("bootstrap replica of" in text for text in logs)
    assert "bootstrap replica" not in (tiny_run / "results/logs/train_flow/tiny_maf.log").read_text()
    members = TEMPLATE_RUNS["tiny_maf"]
    models = [torch.load(tiny_run / f"results/flows/{m}/model.pt", weights_only=True) for m in members]
    first, second = (m["state_dict"] for m in models)
    # other seeds, other replicas: other flows
    assert any(not torch.equal(first[k], second[k]) for k in first if first[k].is_floating_point())


def test_weight_draws_sample_one_training_with_other_weights(tiny_run):
    from flowsim.analysis.template_files import read_templates

    draws = TEMPLATE_RUNS["tiny_mademog"]
    assert not any((tiny_run / f"results/flows/{d}").exists() for d in draws)  # no training of their own
    logs = [(tiny_run / f"results/logs/fill_templates/{d}.log").read_text() for d in draws]
    assert all(f"weight draw {k}" in text for k, text in enumerate(logs, start=1))
    first, second = (read_templates(tiny_run / f"results/templates/{d}/templates.root")["m_bb"] for d in draws)
    assert first.n_total == second.n_total and not np.array_equal(first.counts, second.counts)
