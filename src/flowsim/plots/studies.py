"""Plots of a study (paper Figs. 2, 5 and 6): training curves per point, metrics vs the scan.

* :func:`plot_study_curves`: validation NLL per epoch of every point, one panel per base run,
  one colour per scanned value, one line per seed;
* :func:`plot_study_metric`: a metric's mean over seeds against the scanned value, the sample
  standard deviation over seeds as error bars, one series per base run; for the C2ST AUC and
  the copula χ²/dof the MC-vs-MC null is drawn as a dashed line, and what a perfect generator
  scores in expectation (0.5, 1) as a dotted one.

Training sizes are drawn on a log axis at the number of events used; values that are not
numbers are drawn in config order with their labels as ticks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from flowsim.plots.style import hep_style, save_figure
from flowsim.studies import TRAIN_EVENTS, Study, value_label

__all__ = ["REFERENCE_LINES", "plot_study_curves", "plot_study_metric"]

#: metric -> (its expectation for a perfect generator, the summary column of its MC-vs-MC null)
REFERENCE_LINES = {
    "c2st_auc": (0.5, "c2st_auc_null"),
    "copula_chi2_dof_mean": (1.0, "copula_chi2_dof_baseline"),
}


def scan_label(scan: str) -> str:
    """Axis label of a scanned setting, e.g. ``params.blocks`` -> ``blocks``."""
    if scan == TRAIN_EVENTS:
        return "background training events"
    return scan.partition(".")[2].replace("_", " ")


def plot_study_curves(
    study: Study, histories: Mapping[str, Sequence[Mapping[str, str]]], path: str | os.PathLike[str]
) -> None:
    """Validation NLL against epoch for every point of ``study`` (``histories`` by run)."""
    bases = list(dict.fromkeys(point.base for point in study.points))
    labels = list(dict.fromkeys(value_label(point.value) for point in study.points))
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(labels)))
    n_seeds = len({point.seed for point in study.points})
    columns = min(len(bases), 3)
    rows = math.ceil(len(bases) / columns)
    with hep_style():
        fig, axes = plt.subplots(rows, columns, figsize=(7 * columns, 5.5 * rows), squeeze=False)
        for ax in axes.flat[len(bases) :]:
            ax.set_visible(False)
        for ax, base in zip(axes.flat, bases):
            drawn: set[str] = set()
            for point in (p for p in study.points if p.base == base):
                label = value_label(point.value)
                history = histories[point.run]
                ax.plot(
                    [int(row["epoch"]) for row in history],
                    [float(row["val_loss"]) for row in history],
                    color=colours[labels.index(label)],
                    lw=1.2,
                    alpha=0.8,
                    label=None if label in drawn else f"{scan_label(study.scan)} = {label}",
                )
                drawn.add(label)
            ax.set_title(base, fontsize=15)
            ax.set_xlabel("epoch")
            ax.set_ylabel("validation NLL [nats/event]")
            ax.legend(fontsize=11, title=f"{n_seeds} seed(s) each", title_fontsize=11)
        fig.suptitle(f"study {study.name}: validation loss per epoch", fontsize=17)
        save_figure(fig, path)


def plot_study_metric(
    summary: Sequence[Mapping[str, Any]],
    metric: str,
    path: str | os.PathLike[str],
    *,
    ylabel: str,
) -> None:
    """``metric``'s mean ± std over seeds against the scanned value, one series per base run.

    ``summary``: rows of :func:`flowsim.studies.summarise_points` (``x``, ``value``,
    ``{metric}_mean``, ``{metric}_std``). The metrics of :data:`REFERENCE_LINES` also get the
    value of a perfect generator (dotted) and the MC-vs-MC baseline of the study (dashed).
    """
    scan = summary[0]["scan"]
    numeric = scan == TRAIN_EVENTS or _all_numbers(row["value"] for row in summary)
    bases = list(dict.fromkeys(row["base"] for row in summary))
    with hep_style():
        fig, ax = plt.subplots(figsize=(8, 6))
        for k, base in enumerate(bases):
            rows = sorted((r for r in summary if r["base"] == base), key=lambda r: float(r["x"]))
            x = np.array([float(r["x"]) for r in rows])
            mean = np.array([float(r[f"{metric}_mean"]) for r in rows])
            std = np.nan_to_num(np.array([float(r[f"{metric}_std"]) for r in rows]))
            # a small offset per series keeps overlapping error bars apart on a categorical axis
            shift = 0.0 if numeric else 0.08 * (k - (len(bases) - 1) / 2)
            ax.errorbar(x + shift, mean, yerr=std, fmt="o-", ms=5, capsize=3, label=base)
        if metric in REFERENCE_LINES:
            ideal, column = REFERENCE_LINES[metric]
            null = float(summary[0][column])
            ax.axhline(ideal, color="black", lw=1, ls=":")
            ax.axhline(null, color="grey", lw=1.5, ls="--", label=f"MC vs MC null ({null:.3f})")
        if metric == "G_score":
            ax.axhline(1.0, color="grey", lw=1.5, ls="--", label="worth its training set ($G = 1$)")
        if scan == TRAIN_EVENTS:
            ax.set_xscale("log")
        if not numeric:
            ticks = sorted({(float(r["x"]), r["value"]) for r in summary})
            ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks])
        ax.set_xlabel(scan_label(scan))
        ax.set_ylabel(ylabel)
        n_seeds = max(int(r["n_seeds"]) for r in summary)
        ax.set_title(f"study {summary[0]['study']}: mean ± std over {n_seeds} seed(s)", fontsize=14)
        ax.legend(fontsize=12)
        save_figure(fig, path)


def _all_numbers(values) -> bool:
    """True when every label parses as a number (the summary stores labels as strings)."""
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True
