"""Feature pairs: 2-D contours of MC and generated events for the most correlated pairs, and the
copula χ²/dof of every pair as one matrix (paper Sec. 4.2)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from flowsim.arrays import event_matrix, feature_names
from flowsim.metrics.copula import PairRow
from flowsim.metrics.distances import reference_binning
from flowsim.metrics.histograms import CorrelatedPair, hdr_levels, select_pairs
from flowsim.plots.labels import feature_label
from flowsim.plots.style import GEN_COLOR, MC_EDGE, closing, hep_style, save_figure

__all__ = ["CONTOUR_FRACTIONS", "plot_copula_pairs", "plot_corner"]


def _smooth(h: np.ndarray) -> np.ndarray:
    """One pass of the [1, 2, 1]/4 kernel along both axes: tames bin-to-bin noise in contours."""
    p = np.pad(h, 1)
    h = (p[:-2, 1:-1] + 2 * p[1:-1, 1:-1] + p[2:, 1:-1]) / 4
    p = np.pad(h, 1)
    return (p[1:-1, :-2] + 2 * p[1:-1, 1:-1] + p[1:-1, 2:]) / 4


#: 2-D regions of a Gaussian within 1σ, 2σ, 3σ: 1 − exp(−k²/2).
CONTOUR_FRACTIONS: tuple[float, ...] = tuple(1 - math.exp(-k * k / 2) for k in (1, 2, 3))


def _subsample(x: np.ndarray, max_points: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_points is None or x.shape[0] <= max_points:
        return x
    return x[rng.choice(x.shape[0], int(max_points), replace=False)]


def plot_corner(
    mc: np.ndarray,
    generated: np.ndarray,
    features: Sequence[str],
    path: str | os.PathLike[str],
    *,
    n_pairs: int = 6,
    max_points: int | None = 500_000,
    n_bins: int = 40,
    method: Literal["spearman", "pearson"] = "spearman",
    seed: int = 0,
    mc_label: str = "MC (test_a)",
    gen_label: str = "generated",
) -> list[CorrelatedPair]:
    """2-D contours of MC and generated events for the most correlated feature pairs.

    Pairs are ranked by |Spearman rank correlation| of MC (``method="pearson"`` for Pearson),
    the strongest first; the panel title gives the MC coefficient. Each panel histograms both
    samples on the same ``n_bins`` × ``n_bins`` grid spanning the 0.1%–99.9% MC quantiles of
    each axis, smooths lightly ([1, 2, 1] kernel), and draws the contours enclosing 39%, 86%
    and 99% of each sample's events (the 1σ, 2σ, 3σ regions of a 2-D Gaussian): MC in grey,
    generated in blue. Matching contours mean the flow reproduces the correlation; a shifted
    or distorted outer contour locates a mismodelled tail.

    Arguments:
        mc: MC events, shape (N, F).
        generated: generated events, shape (M, F).
        features: the F column names.
        path: PNG to write.
        n_pairs: number of pairs, defaults to 6 (at most F(F−1)/2).
        max_points: random subsample of each sample (seeded), defaults to 500 000; None: all.
        n_bins: grid bins per axis, defaults to 40.
        method: ``"spearman"`` or ``"pearson"``.
        seed: seed of the subsample.
        mc_label, gen_label: legend entries.

    Returns:
        the pairs drawn.
    """
    features = feature_names(features)
    if len(features) < 2:
        raise ValueError("a corner plot needs at least 2 features")
    mc = event_matrix(mc, "mc", features)
    generated = event_matrix(generated, "generated", features)
    if mc.shape[0] < 2:
        raise ValueError("mc needs at least 2 events for correlations")
    rng = np.random.default_rng(seed)
    mc_s, gen_s = _subsample(mc, max_points, rng), _subsample(generated, max_points, rng)
    pairs = select_pairs(mc_s, n_pairs, method=method)
    ncols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / ncols)
    symbol = r"\rho_S" if method == "spearman" else r"\rho"
    with hep_style(), plt.rc_context({"font.size": 14}):
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 5.0 * nrows), squeeze=False)
        with closing(fig):
            for ax, p in zip(axes.flat, pairs):
                ex = reference_binning(mc_s[:, p.i], n_bins, quantile_range=(0.001, 0.999))
                ey = reference_binning(mc_s[:, p.j], n_bins, quantile_range=(0.001, 0.999))
                cx, cy = 0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1])
                for data, color, ls in ((mc_s, MC_EDGE, "-"), (gen_s, GEN_COLOR, "--")):
                    h, _, _ = np.histogram2d(data[:, p.i], data[:, p.j], bins=(ex, ey))
                    h = _smooth(h)
                    # Fractions of all events, the ones outside the grid included.
                    levels = hdr_levels(h, CONTOUR_FRACTIONS, total=data.shape[0])
                    if levels.size:
                        ax.contour(cx, cy, h.T, levels=levels, colors=color, linestyles=ls,
                                   linewidths=1.4)
                ax.set_xlabel(feature_label(features[p.i]))
                ax.set_ylabel(feature_label(features[p.j]))
                ax.set_title(f"MC ${symbol} = {p.rho:+.2f}$", fontsize=14)
            for ax in axes.flat[len(pairs):]:
                ax.set_visible(False)
            handles = [Line2D([], [], color=MC_EDGE, ls="-", label=mc_label),
                       Line2D([], [], color=GEN_COLOR, ls="--", label=gen_label)]
            fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
                       frameon=False, fontsize=14,
                       title="contours: 39%, 86%, 99% of events "
                             r"(2-D 1$\sigma$, 2$\sigma$, 3$\sigma$)",
                       title_fontsize=13)
            fig.tight_layout()
            save_figure(fig, path)
    return pairs


def plot_copula_pairs(
    rows: Sequence[PairRow],
    features: Sequence[str],
    path: str | os.PathLike[str],
    *,
    n_marked: int = 3,
    gen_label: str = "generated vs MC test_a",
    baseline_label: str = "MC test_b vs MC test_a",
) -> None:
    """Every feature pair's copula χ²/dof (:mod:`flowsim.metrics.copula`) as one matrix: the
    generated sample below the diagonal, the MC baseline above it, on one colour scale from 0
    to at least 2 (1 is what two samples of one distribution average). The ``n_marked`` worst
    pairs carry their value."""
    features = feature_names(features)
    index = {name: k for k, name in enumerate(features)}
    unknown = sorted({name for r in rows for name in r[:2]} - index.keys())
    if unknown:
        raise ValueError(f"pairs name features {unknown} that are not among {features}")
    matrix = np.full((len(features), len(features)), np.nan)
    cells = [sorted((index[r.feature_1], index[r.feature_2])) for r in rows]  # (lo, hi) per row
    for (lo, hi), r in zip(cells, rows):
        matrix[hi, lo] = r.chi2 / r.dof  # below the diagonal: generated
        matrix[lo, hi] = r.baseline / r.dof  # above: MC vs MC
    vmax = max(2.0, float(np.nanmax(matrix))) if rows else 2.0
    labels = [feature_label(f, unit=False) for f in features]
    size = 4.0 + 0.45 * len(features)
    with hep_style(), plt.rc_context({"font.size": 14}):
        fig, ax = plt.subplots(figsize=(size + 1.5, size))
        with closing(fig):
            image = ax.imshow(matrix, cmap="magma_r", vmin=0.0, vmax=vmax, interpolation="nearest")
            for lo, hi in cells[:n_marked]:
                value = matrix[hi, lo]
                ax.text(lo, hi, f"{value:.1f}", ha="center", va="center", fontsize=9,
                        color="white" if value > 0.6 * vmax else "black")
            ax.set_xticks(range(len(features)), labels, rotation=90, fontsize=11)
            ax.set_yticks(range(len(features)), labels, fontsize=11)
            ax.tick_params(which="minor", length=0)
            ax.set_title(f"below the diagonal: {gen_label}\nabove: {baseline_label}", fontsize=13)
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04,
                         label=r"copula $\chi^2$ / dof (8 $\times$ 8 rank cells)")
            save_figure(fig, path)
