"""benchmarks/worth.py tabulates the worth stage's outputs: the numbers by hand from small tables."""

from __future__ import annotations

from flowsim import io
from flowsim.stages.worth import AMPLIFICATION_COLUMNS, COVERAGE_COLUMNS, SPURIOUS_COLUMNS
from tests.benchmark_scripts import load_benchmark


def _amplification(template: str, kind: str, g: float, limit: float) -> dict:
    n_train = 1000
    return {
        "template": template, "kind": kind, "n_cells": 5, "n_train": n_train, "n_generated": 6000, "n_members": 3,
        "n_truth": 10**6, "n_equiv": g * n_train, "n_equiv_low": 0.8 * g * n_train, "n_equiv_high": 1.25 * g * n_train,
        "n_equiv_limit": limit, "G": g, "G_low": 0.8 * g, "G_high": 1.25 * g, "G_error": 0.225 * g,
        "mc_events": 500, "mc_n_equiv": 450.0, "mc_ratio": 0.9,
    }  # fmt: skip


def _spurious(observable: str, lumi: float, background: str, significance: float, alpha: str = "0.01") -> dict:
    return {
        "observable": observable, "alpha": alpha, "lumi_fb": lumi, "background": background,
        "mu_hat": significance, "sigma_mu": 1.0, "significance": significance, "n_signal": 1.0, "status": "ok",
    }  # fmt: skip


def test_the_tables_show_the_numbers_of_the_worth_stage(tmp_path, capsys):
    io.write_tsv(tmp_path / "summary/runs.tsv", [{"run": "rqs"}], ["run"])
    amplification = [
        _amplification("score", "after_cut", 2.0, 3500.0),
        _amplification("m_bb", "after_cut", 0.5, 600.0),
        *(_amplification(f"marginal:f{k}", "marginal", g, 1.0) for k, g in enumerate((0.2, 0.4, 3.0))),
    ]
    io.write_tsv(tmp_path / "worth/rqs/amplification.tsv", amplification, AMPLIFICATION_COLUMNS)
    spurious = [_spurious("score", lumi, "ml", s) for lumi, s in ((100.0, -0.5), (10.0, 0.3), (1000.0, 0.4))]
    spurious += [_spurious("score", 10.0, "mc", 0.1), _spurious("score", 100.0, "mc", -0.2)]
    spurious += [_spurious("score", 10.0, "ml", 9.0, alpha="0.05")]  # another alpha: not read
    io.write_tsv(tmp_path / "worth/rqs/spurious.tsv", spurious, SPURIOUS_COLUMNS)
    coverage = [
        {"observable": "score", "alpha": "0.01", "lumi_fb": lumi, "background": "ml", "n_replicas": 20,
         "n_covered": c, "n_failed": 0, "coverage": c / 20, "coverage_error": (c / 20 * (1 - c / 20) / 20) ** 0.5}
        for lumi, c in ((1.0, 14), (10.0, 5))
    ]  # fmt: skip
    io.write_tsv(tmp_path / "worth/coverage.tsv", coverage, COVERAGE_COLUMNS)
    study = tmp_path / "study"
    points = [{"run": f"size-rqs-2500-s{seed}", "base": "rqs", "value": "2500", "seed": seed, "n_train": 2500,
               "G_score": g} for seed, g in ((1, 3.0), (2, 4.0))]  # fmt: skip
    io.write_tsv(study / "points.tsv", points, list(points[0]))
    for point in points:
        own = [{**_amplification("score", "after_cut", point["G_score"], 1.0), "G_high": float("inf")}]
        io.write_tsv(tmp_path / f"worth/{point['run']}/amplification.tsv", own, AMPLIFICATION_COLUMNS)

    assert load_benchmark("worth").main(["--results", str(tmp_path), "--study", str(study), "--markdown"]) == 0
    out = capsys.readouterr().out.splitlines()
    # G∞ = n_equiv_limit / n_train = 3.5; the median of the marginals' G 0.4
    assert "| rqs | 3 × 2,000 | 1000 | 2.00 [1.60, 2.50] | 3.50 | 0.50 [0.40, 0.62] | 0.40 | 0.90 |" in out
    assert "| rqs | score | +0.30 at 10 | -0.50 at 100 | -0.20 at 100 |" in out
    assert "| observable | α | background | replicas | 1/fb | 10/fb |" in out
    assert "| score | 0.01 | ml | 20 | 0.70 ± 0.10 | 0.25 ± 0.10 |" in out
    # the seeds' mean 3.5 and sample std 0.71 on each of their rows; an interval open upwards
    assert "| rqs | 2500 | 1 | 1000000 | 3.00 [2.40, inf] | - | 3.50 ± 0.71 |" in out
    assert "| rqs | 2500 | 2 | 1000000 | 4.00 [3.20, inf] | - | 3.50 ± 0.71 |" in out


def test_nothing_to_tabulate_says_so(tmp_path, capsys):
    assert load_benchmark("worth").main(["--results", str(tmp_path)]) == 1
    assert "run the workflow first" in capsys.readouterr().out
