"""The summary table: one row per flow run, from training to the analysis.

Columns: the run and its model, the validation NLL and best epoch, the C2ST AUC with its error
and the MC-vs-MC null, the mean per-feature distances with their MC baselines, the sampling speed,
and from the luminosity scans the largest ML pull of the fitted signal strength and the largest
shift of the ML expected limit (see :func:`flowsim.analysis.results.largest_deviations`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from flowsim import io
from flowsim.analysis.results import PointResult, largest_deviations
from flowsim.metrics.distances import METRICS

__all__ = ["SUMMARY_COLUMNS", "summary_job"]

PathLike = str | os.PathLike[str]

SUMMARY_COLUMNS = (
    "run", "model", "val_nll", "best_epoch", "c2st_auc", "c2st_auc_err", "c2st_auc_null",
    "c2st_auc_null_err",
    *[f"{m}_{kind}" for m in METRICS for kind in ("mean", "baseline")],
    "us_per_event", "max_mu_pull", "max_mu_pull_at", "max_ul_shift", "max_ul_shift_at",
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


def summary_job(runs: Mapping[str, Mapping[str, PathLike]], out: PathLike) -> list[dict[str, Any]]:
    """One row per run: validation NLL, C2ST AUC ± error and null, mean distances, sampling speed,
    and the analysis: the largest |μ̂ − 1|/σ of the ML background and the largest shift of its
    expected limit from the MC reference, in units of the MC ±1σ band (see
    :func:`flowsim.analysis.scan.largest_deviations`), each with where it occurs.

    ``runs`` maps a run name to its files: ``model``, ``c2st``, ``distances``, ``sampling`` and
    ``scans`` (the run's luminosity-scan TSVs; may be empty).
    """
    table = []
    for run, files in runs.items():
        info = torch.load(files["model"], map_location="cpu", weights_only=True)
        c2st = {row["metric"]: row for row in io.read_tsv(files["c2st"])}
        distances = {(r["feature"], r["metric"]): r for r in io.read_tsv(files["distances"])}
        timing = io.read_tsv(files["sampling"])[0]
        row: dict[str, Any] = {
            "run": run,
            "model": info["model"],
            "val_nll": info["metadata"]["val_nll"],
            "best_epoch": info["metadata"]["best_epoch"],
            "c2st_auc": float(c2st["auc"]["value"]),
            "c2st_auc_err": float(c2st["auc"]["error"]),
            "c2st_auc_null": float(c2st["auc_null"]["value"]),
            "c2st_auc_null_err": float(c2st["auc_null"]["error"]),
            "us_per_event": float(timing["us_per_event"]),
        }
        for metric in METRICS:
            mean = distances[("mean", metric)]
            row[f"{metric}_mean"] = float(mean["value"])
            row[f"{metric}_baseline"] = float(mean["baseline"])
        row.update(_analysis_columns(files.get("scans", [])))
        table.append(row)
    io.write_tsv(out, table, SUMMARY_COLUMNS)
    return table
