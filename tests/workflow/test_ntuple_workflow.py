"""Your own analysis through Snakemake: ROOT ntuples with jagged jets and signed MC weights
(``data.source: root``), converted from toy HIGGS events by the package's command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

from flowsim import io
from flowsim.data.scaling import load_scaler
from flowsim.data.toy import write_toy_csv
from flowsim.stages.worth import refuse_weighted_mc
from tests.workflow.runner import ROOT, TINY_CONFIG, snakemake
from tests.workflow.test_reruns import _jobs

FEATURES = [
    "lepton_pt",
    "lepton_eta",
    "met",
    {"name": "jet1_pt", "expression": "Jet_pt[:, 0]", "unit": "a.u."},
    {"name": "jet2_pt", "expression": "Jet_pt[:, 1]"},
    {"name": "jet3_pt", "expression": "at(Jet_pt, 2)", "fill": 0.0},
    {"name": "n_jets", "expression": "ak.num(Jet_pt)"},
    "m_jj",
    "m_bb",
    "m_wwbb",
]
PRESELECTION = "ak.num(Jet_pt) >= 2"
TARGETS = [
    "results/analysis/tiny_maf/lumi_scan_score_alpha0.05.tsv",
    "results/eval/tiny_maf/distances.tsv",
    "results/eval/tiny_maf/c2st.tsv",
]


@pytest.fixture(scope="session")
def ntuple_run(tmp_path_factory):
    """The default targets of a tiny weighted-ntuple configuration, built once."""
    workdir = tmp_path_factory.mktemp("ntuple-workflow")
    write_toy_csv(workdir / "toy.csv", n_events=6000, seed=7, signal_fraction=0.5)
    subprocess.run(
        [sys.executable, "-m", "flowsim.data.ntuple", str(workdir / "toy.csv"), str(workdir / "nt"),
         "--jet-pt-min", "0.6", "--negative-fraction", "0.1", "--seed", "3"],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["data"] = {
        "source": "root",
        "root": {
            "background": {"files": [str(workdir / "nt/back*.root")], "tree": "Events", "weight": "weight"},
            "signal": {"files": [str(workdir / "nt/signal.root")], "tree": "Events"},
            "preselection": PRESELECTION,
        },
    }
    config["features"] = FEATURES
    config["symmetry"] = {"flip_signs": ["lepton_eta"]}
    config["flows"] = {"tiny_maf": {"model": "maf", "params": {"blocks": 2, "hidden": 16, "residual_blocks": 1}}}
    config["analysis"]["alphas"] = [0.05]
    config["analysis"]["observables"] = {"score": None}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    # the stages that weigh MC: training, evaluation, and the fit of MC templates
    snakemake(workdir, *TARGETS, "--configfile", str(workdir / "config.yaml"))
    return workdir


def test_splits_hold_the_features_and_the_background_weights(ntuple_run):
    manifest = io.read_json(ntuple_run / "results/data/manifest.json")
    names = [f if isinstance(f, str) else f["name"] for f in FEATURES]
    assert manifest["source"] == "root" and manifest["preselection"] == PRESELECTION
    for cls in ("bkg", "sig"):
        steps = manifest["steps"][cls]
        assert steps["entries"] == 3000 and 0 < steps["preselected"] < 3000
        assert manifest["counts"][cls]["used"] == steps["preselected"]
        events = io.read_events(ntuple_run / f"results/data/{cls}_train.root")
        assert list(events)[: len(names) + 1] == ["label", *names]
        assert ("weight" in events) == (cls == "bkg")
        assert np.all(events["n_jets"] >= 2) and np.all((events["jet3_pt"] == 0) == (events["n_jets"] < 3))
    weights = manifest["steps"]["bkg"]["weights"]
    assert 0 < weights["negative"] < 0.2 * weights["events"] and weights["effective_events"] < weights["events"]


def test_weighted_training_is_logged_with_its_effective_size(ntuple_run):
    log = (ntuple_run / "results/logs/train_flow/tiny_maf.log").read_text()
    assert "effective sample size" in log


def test_the_scaler_is_fitted_on_the_weighted_training_split(ntuple_run):
    scaler = load_scaler(ntuple_run / "results/data/scaler.npz")
    train = ntuple_run / "results/data/bkg_train.root"
    x, w = io.read_matrix(train, scaler.features), io.read_weights(train)
    j = list(scaler.features).index("m_bb")
    z = scaler.transform(x)[:, j]
    # the weighted median of the scaled feature is 0, as the weighted CDF's is ½
    order = np.argsort(z)
    cdf = np.cumsum(w[order]) / w.sum()
    assert abs(z[order][np.searchsorted(cdf, 0.5)]) < 0.05


def test_the_workflow_plans_no_worth_stage_and_refuses_it_when_asked(ntuple_run):
    assert all((ntuple_run / target).exists() for target in TARGETS)
    planned = snakemake(ntuple_run, "--configfile", str(ntuple_run / "config.yaml"), "-n")
    jobs = _jobs(planned.stdout + planned.stderr)
    assert jobs["summary"] == 1 and jobs["plot_selection"] == 1
    assert not {"amplification", "spurious_signal", "make_truth"} & set(jobs)
    assert not {"train_flow", "sample_flow", "split_ntuples", "fit_scaler"} & set(jobs)  # nothing reruns
    # asked for explicitly, the worth stage refuses weighted MC, naming the file
    scores = ntuple_run / "results/analysis/scores/mc/bkg_test_a.root"
    with pytest.raises(ValueError, match=r"bkg_test_a.root: weighted MC \(a 'weight' branch\); the worth stage"):
        refuse_weighted_mc([(ntuple_run / "results/data/sig_test_a.root", scores)],
                           [(ntuple_run / "results/data/bkg_test_a.root", scores)])  # fmt: skip
