"""Tests of flowsim.plots.studies: curves per point, metrics vs the scan, for every kind of axis."""

from __future__ import annotations

import pytest

from flowsim.plots.studies import plot_study_curves, plot_study_metric
from flowsim.studies import Study, StudyPoint, plot_positions, summarise_points, value_label


def _study(scan: str, values: list, bases=("glow", "rqs"), seeds=(1, 2)) -> Study:
    points = [
        StudyPoint(f"{base}-{value_label(v)}-s{s}", base, v, s) for base in bases for v in values for s in seeds
    ]
    return Study("test", scan, tuple(points))


def _points(study: Study, rng) -> list[dict]:
    x = plot_positions(study, {p.run: 1000 if p.value is None else p.value for p in study.points})
    rows = []
    for p in study.points:
        nll = 20.0 + rng.normal(0, 0.05)
        rows.append({
            "study": study.name, "base": p.base, "model": p.base, "scan": study.scan,
            "value": value_label(p.value), "x": x[p.run], "seed": p.seed, "n_train": 100,
            "val_nll": nll, "c2st_auc": 0.52 + rng.normal(0, 0.005), "hellinger_mean": 0.1,
            "copula_chi2_dof_mean": 1.2 + rng.normal(0, 0.02), "train_seconds": 5.0,
            "c2st_auc_null": 0.501, "copula_chi2_dof_baseline": 1.01, "G_score": 2.0 + rng.normal(0, 0.2),
        })  # fmt: skip
    return rows


@pytest.mark.parametrize(
    "scan, values",
    [("params.blocks", [2, 4, 8]), ("train_events", [100, 300, None]), ("params.permutation", ["reverse", "random"])],
)
def test_study_plots_for_numeric_size_and_word_scans(tmp_path, rng, check_png, scan, values):
    study = _study(scan, values)
    history = [{"epoch": str(e), "val_loss": str(21.0 - 0.1 * e)} for e in range(1, 6)]
    plot_study_curves(study, {p.run: history for p in study.points}, tmp_path / "curves.png")
    check_png(tmp_path / "curves.png")
    summary = summarise_points(_points(study, rng))
    plot_study_metric(summary, "val_nll", tmp_path / "nll.png", ylabel="NLL")
    plot_study_metric(summary, "c2st_auc", tmp_path / "auc.png", ylabel="AUC")
    plot_study_metric(summary, "copula_chi2_dof_mean", tmp_path / "copula.png", ylabel="chi2/dof")
    for name in ("nll", "auc", "copula"):
        check_png(tmp_path / f"{name}.png")


def test_a_single_seed_plots_without_error_bars(tmp_path, rng, check_png):
    study = _study("params.bins", [4, 8], bases=("rqs",), seeds=(1,))
    summary = summarise_points(_points(study, rng))
    plot_study_metric(summary, "c2st_auc", tmp_path / "auc.png", ylabel="AUC")
    check_png(tmp_path / "auc.png")
