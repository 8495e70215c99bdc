"""The evaluation stage run by Snakemake on the tiny runs: tables, plots and the summary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowsim import io
from flowsim.metrics.copula import PAIR_TSV_COLUMNS
from flowsim.metrics.distances import METRICS
from flowsim.stages.evaluate import C2ST_ROWS
from flowsim.stages.summary import SUMMARY_COLUMNS

RUNS = ("tiny_maf", "tiny_mademog")
PLOTS = ("distances", "features_linear", "features_log", "corner", "copula_pairs", "c2st_roc",
         "c2st_scores", "c2st_loss", "density_ratio", "ratio_tails")  # fmt: skip


def test_distances_table_has_every_feature_metric_and_the_mean(tiny_run):
    for run in RUNS:
        rows = io.read_tsv(tiny_run / f"results/eval/{run}/distances.tsv")
        assert list(rows[0]) == ["feature", "metric", "value", "std", "baseline"]
        metrics = {(r["feature"], r["metric"]) for r in rows}
        assert {("mean", m) for m in METRICS} <= metrics
        assert len(rows) == 4 * 18 + 4
        assert all(float(r["value"]) >= 0 and float(r["baseline"]) >= 0 for r in rows)


def test_copula_pairs_table_has_every_pair_worst_first(tiny_run):
    for run in RUNS:
        rows = io.read_tsv(tiny_run / f"results/eval/{run}/copula_pairs.tsv")
        assert tuple(rows[0]) == PAIR_TSV_COLUMNS and len(rows) == 18 * 17 // 2
        chi2 = [float(r["chi2"]) for r in rows]
        assert chi2 == sorted(chi2, reverse=True) and {r["dof"] for r in rows} == {"49"}
        assert all(float(r["baseline"]) > 0 for r in rows)


def test_c2st_table_rows_and_null(tiny_run):
    null = {r["metric"]: r for r in io.read_tsv(tiny_run / "results/eval/c2st_null.tsv")}
    for run in RUNS:
        rows = io.read_tsv(tiny_run / f"results/eval/{run}/c2st.tsv")
        assert [r["metric"] for r in rows] == list(C2ST_ROWS)
        table = {r["metric"]: r for r in rows}
        assert 0 <= float(table["auc"]["value"]) <= 1 and float(table["auc"]["error"]) > 0
        assert table["auc_null"]["value"] == null["auc"]["value"]
        assert int(float(table["n_test"]["value"])) > 0


def test_every_plot_is_written(tiny_run):
    for run in RUNS:
        for name in PLOTS:
            assert (tiny_run / f"results/eval/{run}/{name}.png").stat().st_size > 5_000, name


def test_summary_has_one_row_per_run(tiny_run):
    rows = io.read_tsv(tiny_run / "results/summary/runs.tsv")
    assert list(rows[0]) == list(SUMMARY_COLUMNS)
    assert [r["run"] for r in rows] == list(RUNS)
    for row in rows:
        assert math.isfinite(float(row["val_nll"])) and float(row["us_per_event"]) > 0
        pairs = io.read_tsv(tiny_run / f"results/eval/{row['run']}/copula_pairs.tsv")
        for column, kind in (("copula_chi2_dof_mean", "chi2"), ("copula_chi2_dof_baseline", "baseline")):
            expected = np.mean([float(p[kind]) / float(p["dof"]) for p in pairs])
            assert float(row[column]) == pytest.approx(expected), column
