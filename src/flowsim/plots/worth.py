"""Plots of the worth stage: spurious signal and coverage against the integrated luminosity."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from flowsim.plots.analysis import SURROGATE_COLOR
from flowsim.plots.style import GEN_COLOR, MC_EDGE, hep_style, save_figure

__all__ = ["plot_coverage", "plot_spurious_signal"]

#: How each background model is drawn: colour, line style, legend name.
_BACKGROUNDS = {
    "ml": (GEN_COLOR, "-", "ML background"),
    "ml_surrogate": (SURROGATE_COLOR, ":", "ML, with surrogate uncertainty"),
    "mc": (MC_EDGE, "--", "MC reference (test_b)"),
    "mc_train": (MC_EDGE, "--", "MC, the replica's training set"),
}
#: The bar LHC analyses set a background model's spurious signal: |mu_spur| < 0.2 sigma_mu.
SPURIOUS_BAR = 0.2


def _groups(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, list[Mapping[str, Any]]]]:
    """Rows by (observable, alpha), then by background, in luminosity order."""
    out: dict[tuple[str, str], dict[str, list[Mapping[str, Any]]]] = {}
    for row in rows:
        key = (str(row["observable"]), str(row["alpha"]))
        out.setdefault(key, {}).setdefault(str(row["background"]), []).append(row)
    for by in out.values():
        for points in by.values():
            points.sort(key=lambda r: float(r["lumi_fb"]))
    return out


def _column(points: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    return np.array([float(p[name]) for p in points])


#: Markers of the signal fractions in the spurious-signal plot (they coincide where no bound cuts a fit).
_ALPHA_MARKERS = ("o", "x", "s", "^")


def plot_spurious_signal(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, run: str) -> None:
    r"""μ̂_spur/σ_μ (top) and the spurious signal events μ̂·S (bottom) against L, one column per
    observable, each background model a line.

    The signal fraction α only rescales μ (the model is :math:`\mu\alpha S' + \gamma B`), so both
    numbers are the same for every α; its points are overlaid with their own markers, which part
    only where a fit meets a bound of μ."""
    groups = _groups(rows)
    observables = list(dict.fromkeys(observable for observable, _ in groups))
    alphas = list(dict.fromkeys(alpha for _, alpha in groups))
    with hep_style():
        fig, axes = plt.subplots(2, len(observables), figsize=(6 * len(observables), 8), sharex=True, squeeze=False)
        handles: dict[str, Any] = {}  # the band, then the backgrounds
        markers: dict[str, Any] = {}  # the signal fractions
        for col, observable in enumerate(observables):
            top, bottom = axes[0, col], axes[1, col]
            handles[r"$|\hat\mu| < 0.2\,\sigma_\mu$"] = top.axhspan(-SPURIOUS_BAR, SPURIOUS_BAR, color="0.85", zorder=0)
            top.axhline(0.0, color="k", lw=0.8)
            bottom.axhline(0.0, color="k", lw=0.8)
            for k, alpha in enumerate(alphas):
                marker = _ALPHA_MARKERS[k % len(_ALPHA_MARKERS)]
                markers[rf"$\alpha = {alpha}$"] = plt.Line2D([], [], color="k", marker=marker, ls="none", mfc="none")
                for label, (color, style, name) in _BACKGROUNDS.items():
                    points = groups.get((observable, alpha), {}).get(label)
                    if not points:
                        continue
                    lumi = _column(points, "lumi_fb")
                    (handles[name],) = top.plot(lumi, _column(points, "significance"), style, color=color,
                                                marker=marker, ms=4, mfc="none")  # fmt: skip
                    bottom.plot(lumi, _column(points, "n_signal"), style, color=color, marker=marker, ms=4, mfc="none")
            top.set_title(observable, fontsize="medium")
            top.set_xscale("log")
            bottom.set_xlabel(r"integrated luminosity $L$ [fb$^{-1}$]")
        axes[0, 0].set_ylabel(r"spurious signal $\hat\mu/\sigma_\mu$")
        axes[1, 0].set_ylabel(r"spurious signal events $\hat\mu\,S$")
        handles.update(markers)
        fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=3, fontsize="x-small",
                   bbox_to_anchor=(0.5, 0.0), frameon=False)  # fmt: skip
        fig.suptitle(f"{run}: S+B fit to background-only truth", fontsize="medium")
        save_figure(fig, path)


def plot_coverage(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, level: float = 0.68) -> None:
    """Coverage of the 68% interval on μ with its binomial error against L, one panel per
    observable (rows) and signal fraction (columns), each background model a series side by
    side; the band is 68 ± 5%."""
    groups = _groups(rows)
    observables = list(dict.fromkeys(observable for observable, _ in groups))
    alphas = list(dict.fromkeys(alpha for _, alpha in groups))
    with hep_style():
        fig, axes = plt.subplots(
            len(observables), len(alphas), figsize=(6 * len(alphas), 4.5 * len(observables)), sharex=True,
            sharey=True, squeeze=False,
        )  # fmt: skip
        handles: dict[str, Any] = {}
        for (observable, alpha), by in groups.items():
            ax = axes[observables.index(observable), alphas.index(alpha)]
            handles[f"{level:.0%} ± 5%"] = ax.axhspan(level - 0.05, level + 0.05, color="0.85", zorder=0)
            ax.axhline(level, color="k", lw=0.8)
            present = [label for label in _BACKGROUNDS if by.get(label)]
            for k, label in enumerate(present):
                color, _, name = _BACKGROUNDS[label]
                shift = 1.0 + 0.06 * (k - (len(present) - 1) / 2)  # side by side at each luminosity
                points = by[label]
                handles[name] = ax.errorbar(
                    _column(points, "lumi_fb") * shift, _column(points, "coverage"),
                    yerr=_column(points, "coverage_error"), fmt="o", ms=4, color=color,
                )  # fmt: skip
            ax.set_title(rf"{observable}, $\alpha = {alpha}$", fontsize="medium")
            ax.set_xscale("log")
            ax.set_ylim(-0.05, 1.05)
        for ax in axes[-1]:
            ax.set_xlabel(r"integrated luminosity $L$ [fb$^{-1}$]")
        fig.supylabel("coverage", fontsize="medium")
        n = int(float(rows[0]["n_replicas"])) if rows else 0
        fig.suptitle(rf"coverage of the 68% interval on $\mu$ (true $\mu$ = 1), {n} replicas", fontsize="medium")
        fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=2, fontsize="x-small",
                   bbox_to_anchor=(0.5, 0.0), frameon=False)  # fmt: skip
        save_figure(fig, path)
