"""Studies in the workflow: a tiny training-size scan (2 values x 2 seeds) run for real on a copy
of the finished tiny workflow, and the DAG of the paper's studies as a dry run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from flowsim import io
from flowsim.stages.summary import STUDY_POINT_COLUMNS
from tests.workflow.runner import ROOT, TINY_CONFIG, snakemake
from tests.workflow.test_reruns import _jobs

STUDY = {"runs": ["tiny_maf"], "scan": "train_events", "values": [400, None], "seeds": [1, 2]}
RUNS = ["size-tiny_maf-400-s1", "size-tiny_maf-400-s2", "size-tiny_maf-all-s1", "size-tiny_maf-all-s2"]
PER_RUN = {"train_flow", "sample_flow", "eval_distances", "c2st", "fill_templates", "amplification"}


def study_config(tmp_path: Path, study: dict) -> Path:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["studies"] = {"size": study}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def study_run(tiny_run, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the tiny run with study ``size`` built; the output of its Snakemake run."""
    workdir = tmp_path_factory.mktemp("study") / "work"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = study_config(workdir.parent, STUDY)
    result = snakemake(workdir, "results/studies/size/summary.tsv", "--configfile", str(config))
    return workdir, result.stdout + result.stderr


def test_the_study_trains_only_its_points(study_run):
    _, output = study_run
    jobs = _jobs(output)
    assert jobs == {**{rule: len(RUNS) for rule in PER_RUN}, "study": 1}


def test_points_table_has_one_row_per_run_with_its_own_results(study_run):
    workdir, _ = study_run
    rows = io.read_tsv(workdir / "results/studies/size/points.tsv")
    assert list(rows[0]) == list(STUDY_POINT_COLUMNS)
    assert [row["run"] for row in rows] == RUNS
    assert [row["value"] for row in rows] == ["400", "400", "all", "all"]
    assert [row["seed"] for row in rows] == ["1", "2", "1", "2"]
    n_all = io.root_entries(workdir / "results/data/bkg_train.root")
    assert [int(row["n_train"]) for row in rows] == [400, 400, n_all, n_all]
    for row in rows:
        model = torch.load(workdir / f"results/flows/{row['run']}/model.pt", weights_only=True)
        assert float(row["val_nll"]) == pytest.approx(model["metadata"]["val_nll"])
        assert model["metadata"]["training"]["seed"] == int(row["seed"])
        c2st = {r["metric"]: r for r in io.read_tsv(workdir / f"results/eval/{row['run']}/c2st.tsv")}
        assert float(row["c2st_auc"]) == pytest.approx(float(c2st["auc"]["value"]))
        pairs = io.read_tsv(workdir / f"results/eval/{row['run']}/copula_pairs.tsv")
        expected = np.mean([float(p["chi2"]) / float(p["dof"]) for p in pairs])
        assert float(row["copula_chi2_dof_mean"]) == pytest.approx(expected)
        table = io.read_tsv(workdir / f"results/worth/{row['run']}/amplification.tsv")
        (amplification,) = [r for r in table if r["template"] == "score"]
        assert int(amplification["n_train"]) == int(row["n_train"])
        assert float(row["G_score"]) == float(amplification["G"])
    # other seeds, other models
    assert rows[0]["val_nll"] != rows[1]["val_nll"] and rows[2]["val_nll"] != rows[3]["val_nll"]


def test_summary_averages_the_seeds_of_each_value(study_run):
    workdir, _ = study_run
    points = io.read_tsv(workdir / "results/studies/size/points.tsv")
    summary = io.read_tsv(workdir / "results/studies/size/summary.tsv")
    assert [(row["value"], row["n_seeds"]) for row in summary] == [("400", "2"), ("all", "2")]
    for row, pair in zip(summary, (points[:2], points[2:])):
        nll = [float(p["val_nll"]) for p in pair]
        assert float(row["val_nll_mean"]) == pytest.approx(np.mean(nll))
        assert float(row["val_nll_std"]) == pytest.approx(np.std(nll, ddof=1))


def test_study_plots_are_written(study_run):
    workdir, _ = study_run
    for name in ("val_loss_curves", "val_nll", "c2st_auc", "copula_chi2_dof", "amplification"):
        assert (workdir / f"results/studies/size/{name}.png").stat().st_size > 10_000


def test_another_seed_trains_only_the_new_points(study_run, tmp_path):
    workdir, _ = study_run
    config = study_config(tmp_path, {**STUDY, "seeds": [1, 2, 3]})
    result = snakemake(workdir, "results/studies/size/summary.tsv", "--configfile", str(config), "-n")
    jobs = _jobs(result.stdout + result.stderr)
    assert jobs == {**{rule: 2 for rule in PER_RUN}, "study": 1}


def test_the_papers_studies_build_their_dag(tmp_path):
    # config/studies.yaml over the default config: 6 runs plus 15 + 15 + 12 + 5 x 5 x 3 points
    configs = [str(ROOT / "config" / name) for name in ("config.yaml", "studies.yaml")]
    result = snakemake(tmp_path, "--configfile", *configs, "-n")
    jobs = _jobs(result.stdout + result.stderr)
    assert jobs["train_flow"] == 6 + 3 + 117  # the runs, maf's ensemble members, the study points
    assert jobs["c2st"] == 6 + 117
    assert jobs["study"] == 4
