"""A label-conditioned run through Snakemake: trained on background and signal, its templates
filled at both labels, and the luminosity scan fitting the flow's signal as the ``ml_signal``
prediction. It reuses the tiny run's splits, signal classifier and MC score files."""

from __future__ import annotations

import shutil

import pytest
import yaml

from flowsim import io
from flowsim.analysis.template_files import read_templates
from flowsim.flows.conditional import FixedContext
from flowsim.flows.persist import load_flow
from tests.workflow.runner import TINY_CONFIG, snakemake

RUN = "tiny_label"
SCAN = f"results/analysis/{RUN}/lumi_scan_score_alpha0.05.tsv"


@pytest.fixture(scope="module")
def label_run(tiny_run, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("label-workflow")
    for folder in ("results/data", "results/analysis/classifier", "results/analysis/scores/mc"):
        shutil.copytree(tiny_run / folder, workdir / folder)  # mtimes kept: nothing of it reruns
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["flows"] = {
        RUN: {
            "model": "maf",
            "params": {"blocks": 2, "hidden": 16, "residual_blocks": 1},
            "condition": {"given": "label", "signal_templates": True},
        }
    }
    path = workdir / "label.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, SCAN, "--configfile", str(path))
    return workdir, result.stdout + result.stderr


def test_the_run_trains_on_both_classes_and_scans_with_the_flows_signal(label_run):
    workdir, output = label_run
    for rule in ("train_flow", "fill_templates", "fill_signal_templates", "lumi_scan"):
        assert f"rule {rule}:" in output, rule
    assert "rule train_classifier:" not in output and "rule split_higgs:" not in output
    log = (workdir / f"results/logs/train_flow/{RUN}.log").read_text()
    n_signal = io.root_entries(workdir / "results/data/sig_train.root")
    assert f"plus {n_signal} signal training" in log and "of the background at label 0" in log
    flow, info = load_flow(workdir / f"results/flows/{RUN}/model.pt", label="signal")
    assert info["condition"] == {"given": "label"} and isinstance(flow.flow, FixedContext)
    background = read_templates(workdir / f"results/templates/{RUN}/templates.root")["score"]
    signal = read_templates(workdir / f"results/templates/{RUN}/signal_templates.root")["score"]
    # the classifier keeps more of the flow's signal than of its background
    assert signal.efficiency.sum() > background.efficiency.sum()
    rows = io.read_tsv(workdir / SCAN)
    assert {r["background"] for r in rows} == {"mc", "ml", "ml_signal"}
    ml = [r for r in rows if r["background"] == "ml"]
    ml_signal = [r for r in rows if r["background"] == "ml_signal"]
    # the same background prediction, another fitted signal: other fits (the tiny flow's μ̂ may sit
    # at its bound 0 in both, so compare the errors and p-values too)
    assert len(ml_signal) == len(ml)
    assert any(a[k] != b[k] for a, b in zip(ml, ml_signal) for k in ("mu_hat", "mu_err", "p_sb"))
