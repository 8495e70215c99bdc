"""The summary stage (``workflow/rules/summary.smk``): one row per flow run, from training to the
analysis (rule :func:`summary`); one row per study point and the study plots (rule :func:`study`).

Columns: the run and its model, the validation NLL and best epoch, the C2ST AUC with its error
and the MC-vs-MC null, the mean per-feature distances with their MC baselines, the mean copula χ²/dof
over feature pairs with its MC baseline (:mod:`flowsim.metrics.copula`), the sampling speed
and the fraction of generated events left out for a non-finite value,
and from the luminosity scans the largest ML pull of the fitted signal strength and the largest
shift of the ML expected limit (see :func:`flowsim.analysis.results.largest_deviations`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowsim import io
from flowsim.analysis.config import SCORE
from flowsim.analysis.results import PointResult, largest_deviations
from flowsim.metrics.copula import mean_chi2_per_dof, read_copula_pairs_tsv
from flowsim.metrics.distances import METRICS
from flowsim.model_files import read_model_file
from flowsim.stages import PathLike
from flowsim.studies import (
    STUDY_SUMMARY_COLUMNS,
    Study,
    plot_positions,
    summarise_points,
    value_label,
)

__all__ = [
    "STUDY_POINT_COLUMNS",
    "SUMMARY_COLUMNS",
    "StudyOutputs",
    "StudyTables",
    "run_row",
    "study",
    "study_tables",
    "summary",
    "summary_table",
    "write_study",
]

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = (
    "run", "model", "val_nll", "best_epoch", "c2st_auc", "c2st_auc_err", "c2st_auc_null",
    "c2st_auc_null_err",
    *[f"{m}_{kind}" for m in METRICS for kind in ("mean", "baseline")],
    "copula_chi2_dof_mean", "copula_chi2_dof_baseline",
    "us_per_event", "nonfinite_fraction", "max_mu_pull", "max_mu_pull_at", "max_ul_shift",
    "max_ul_shift_at", "G_score", "G_score_error", "max_spurious", "max_spurious_at",
)  # fmt: skip
#: Columns of a study's points table: the study's coordinates, then the run's figures.
STUDY_POINT_COLUMNS = (
    "study", "run", "base", "model", "scan", "value", "x", "seed", "n_train", "val_nll",
    "best_epoch", "epochs_run", "train_seconds", "c2st_auc", "c2st_auc_err", "c2st_auc_null",
    "c2st_auc_null_err", *[f"{m}_{kind}" for m in METRICS for kind in ("mean", "baseline")],
    "copula_chi2_dof_mean", "copula_chi2_dof_baseline", "us_per_event", "nonfinite_fraction", "G_score",
    "G_score_error",
)  # fmt: skip


def _analysis_columns(scans: Sequence[PathLike]) -> dict[str, Any]:
    """Largest ML pull of μ̂ and largest ML limit shift (MC band σ) over a run's scans."""
    pulls, shifts = [], []
    for path in scans:
        label = Path(path).stem.removeprefix("lumi_scan_")
        points = [PointResult.from_row(row) for row in io.read_tsv(path)]
        pull, shift = largest_deviations(points, label)
        pulls.append(pull)
        shifts.append(shift)
    pull = max((d for d in pulls if d.where), key=lambda d: d.value, default=None)
    shift = max((d for d in shifts if d.where), key=lambda d: abs(d.value), default=None)
    nan = float("nan")
    return {
        "max_mu_pull": pull.value if pull else nan, "max_mu_pull_at": pull.where if pull else "",
        "max_ul_shift": shift.value if shift else nan,
        "max_ul_shift_at": shift.where if shift else "",
    }  # fmt: skip


def _worth_columns(files: Mapping[str, PathLike]) -> dict[str, Any]:
    """The amplification G of the score template after the cut (with its error), and the
    largest spurious signal |μ̂|/σ_μ of the ML background over the observables, signal fractions
    and luminosities, with where it occurs (NaN and "" without the worth tables)."""
    nan = float("nan")
    row: dict[str, Any] = {"G_score": nan, "G_score_error": nan, "max_spurious": nan, "max_spurious_at": ""}
    if files.get("amplification"):
        score = [r for r in io.read_tsv(files["amplification"]) if r["template"] == SCORE]
        if score:
            row["G_score"], row["G_score_error"] = float(score[0]["G"]), float(score[0]["G_error"])
    if files.get("spurious"):
        points = [
            r for r in io.read_tsv(files["spurious"])
            if r["background"] == "ml" and math.isfinite(float(r["significance"]))
        ]  # fmt: skip
        if points:
            worst = max(points, key=lambda r: abs(float(r["significance"])))
            row["max_spurious"] = float(worst["significance"])
            row["max_spurious_at"] = (
                f"{worst['observable']} alpha={worst['alpha']} L={float(worst['lumi_fb']):.3g}/fb"
            )
    return row


def run_row(run: str, files: Mapping[str, PathLike]) -> dict[str, Any]:
    """A run's training, C2ST, distance and sampling figures (every summary column but the
    analysis ones), plus ``n_train``, ``epochs_run`` and ``train_seconds``.

    ``files``: the run's ``model``, ``history``, ``c2st``, ``distances``, ``copula_pairs`` and
    ``sampling``.
    """
    info = read_model_file(files["model"])
    history = io.read_tsv(files["history"])
    c2st = {row["metric"]: row for row in io.read_tsv(files["c2st"])}
    distances = {(r["feature"], r["metric"]): r for r in io.read_tsv(files["distances"])}
    timing = io.read_tsv(files["sampling"])[0]
    row: dict[str, Any] = {
        "run": run,
        "model": info["model"],
        "val_nll": info["metadata"]["val_nll"],
        "best_epoch": info["metadata"]["best_epoch"],
        "epochs_run": info["metadata"]["epochs_run"],
        # models written before training-size studies existed do not record it
        "n_train": info["metadata"].get("n_train", float("nan")),
        "train_seconds": sum(float(epoch["seconds"]) for epoch in history),
        "c2st_auc": float(c2st["auc"]["value"]),
        "c2st_auc_err": float(c2st["auc"]["error"]),
        "c2st_auc_null": float(c2st["auc_null"]["value"]),
        "c2st_auc_null_err": float(c2st["auc_null"]["error"]),
        "us_per_event": float(timing["us_per_event"]),
        "nonfinite_fraction": int(timing["n_nonfinite"]) / max(int(timing["n_requested"]), 1),
    }
    for metric in METRICS:
        mean = distances[("mean", metric)]
        row[f"{metric}_mean"] = float(mean["value"])
        row[f"{metric}_baseline"] = float(mean["baseline"])
    pairs = read_copula_pairs_tsv(files["copula_pairs"])
    row["copula_chi2_dof_mean"], row["copula_chi2_dof_baseline"] = mean_chi2_per_dof(pairs)
    return row


def summary_table(runs: Mapping[str, Mapping[str, PathLike]]) -> list[dict[str, Any]]:
    """One row per run: validation NLL, C2ST AUC ± error and null, mean distances, mean copula
    χ²/dof, sampling speed, and the analysis: the largest |μ̂ − 1|/σ of the ML background and
    the largest shift of its expected limit from the MC reference, in units of the MC ±1σ band (see
    :func:`flowsim.analysis.results.largest_deviations`), each with where it occurs.

    Arguments:
        runs: A run name to its files: those of :func:`run_row`, ``scans`` (the run's
            luminosity-scan TSVs; may be empty), and optionally ``amplification`` and
            ``spurious`` (the worth stage's tables).
    """
    table = []
    for run, files in runs.items():
        row = run_row(run, files)
        row.update(_analysis_columns(files.get("scans", [])))
        row.update(_worth_columns(files))
        table.append(row)
    return table


def summary(runs: Mapping[str, Mapping[str, PathLike]], out: PathLike) -> list[dict[str, Any]]:
    """Rule ``summary``: :func:`summary_table` of ``runs`` into ``out`` (``results/summary/runs.tsv``)."""
    table = summary_table(runs)
    io.write_tsv(out, table, SUMMARY_COLUMNS)
    return table


@dataclass(frozen=True)
class StudyOutputs:
    """The outputs of rule ``study``."""

    points: PathLike
    summary: PathLike
    curves: PathLike
    val_nll: PathLike
    c2st: PathLike
    copula: PathLike
    amplification: PathLike


@dataclass(frozen=True)
class StudyTables:
    """A study's rows: one per point (run), and mean ± std over seeds per (base, value); with
    each point's validation history for the curves."""

    study: Study
    points: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    histories: dict[str, list[dict[str, str]]]


def study_tables(study: Study, runs: Mapping[str, Mapping[str, PathLike]]) -> StudyTables:
    """Collect a study from its runs' files (``runs``: each point's run to its files, as for
    :func:`run_row`, and its ``amplification`` table)."""
    rows = {point.run: run_row(point.run, runs[point.run]) for point in study.points}
    for run, row in rows.items():
        worth = _worth_columns({"amplification": runs[run].get("amplification")})
        row.update({key: worth[key] for key in ("G_score", "G_score_error")})
    x = plot_positions(study, {run: row["n_train"] for run, row in rows.items()})
    points = []
    for point in study.points:
        points.append({
            "study": study.name, "base": point.base, "scan": study.scan,
            "value": value_label(point.value), "x": x[point.run], "seed": point.seed,
            **rows[point.run],
        })  # fmt: skip
        log.info(
            "study %s: %s val NLL %.4f, C2ST AUC %.4f ± %.4f", study.name, point.run,
            points[-1]["val_nll"], points[-1]["c2st_auc"], points[-1]["c2st_auc_err"],
        )  # fmt: skip
    histories = {point.run: io.read_tsv(runs[point.run]["history"]) for point in study.points}
    return StudyTables(study, points, summarise_points(points), histories)


def write_study(tables: StudyTables, outputs: StudyOutputs) -> None:
    """The points and summary tables, and the plots: validation loss per epoch of every point,
    and the final validation NLL, the C2ST AUC and the mean copula χ²/dof against the scanned
    value with the spread over seeds as error bars."""
    from flowsim.plots.studies import plot_study_curves, plot_study_metric

    summary_rows = tables.summary
    plot_study_curves(tables.study, tables.histories, outputs.curves)
    plot_study_metric(summary_rows, "val_nll", outputs.val_nll, ylabel="best validation NLL [nats/event]")
    plot_study_metric(summary_rows, "c2st_auc", outputs.c2st, ylabel="C2ST AUC (generated vs MC)")
    plot_study_metric(summary_rows, "copula_chi2_dof_mean", outputs.copula, ylabel=r"copula $\chi^2$/dof (pair mean)")
    plot_study_metric(
        summary_rows, "G_score", outputs.amplification, ylabel="amplification $G$ of the score template"
    )
    io.write_tsv(outputs.points, tables.points, STUDY_POINT_COLUMNS)
    io.write_tsv(outputs.summary, summary_rows, STUDY_SUMMARY_COLUMNS)


def study(study: Study, runs: Mapping[str, Mapping[str, PathLike]], outputs: StudyOutputs) -> list[dict[str, Any]]:
    """Rule ``study``: :func:`study_tables`, then :func:`write_study`."""
    tables = study_tables(study, runs)
    write_study(tables, outputs)
    return tables.points
