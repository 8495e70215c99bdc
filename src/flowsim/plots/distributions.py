"""Generated vs MC distributions: histograms with ratio panels, a feature grid and the per-feature
distance summary (paper Sec. 4.1–4.2, Figs. 7 and 9); the feature pairs are in :mod:`.pairs`.

Every histogram follows the conventions of :mod:`flowsim.metrics.histograms`: binning from the
MC reference, densities normalised to **all** events of a sample (the numbers outside the binning
are printed on every plot), ratios generated/MC with NaN where MC is empty; in the ratio panel a
bin with generated events but no MC events is drawn as an up arrow (the ratio is unbounded).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.gridspec import GridSpec, GridSpecFromSubplotSpec
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from flowsim.arrays import event_matrix, event_weights, feature_names, finite_sample
from flowsim.metrics.distances import METRICS, DistanceRow
from flowsim.metrics.histograms import HistComparison, compare_histograms, feature_edges, tail_edges
from flowsim.plots.labels import feature_label
from flowsim.plots.style import (
    DENSITY_LABEL,
    GEN_COLOR,
    MC_COLOR,
    MC_EDGE,
    TAIL_COLOR,
    closing,
    hep_style,
    save_figure,
)  # fmt: skip

__all__ = [
    "RATIO_RANGE",
    "draw_ratio_points",
    "plot_all_features",
    "plot_distance_summary",
    "plot_feature_comparison",
    "plot_feature_grid",
]

#: Default y-range of ratio panels.
RATIO_RANGE: tuple[float, float] = (0.5, 1.5)

# The feature grid lays out its margins in inches instead of cropping the PNG afterwards: the
# crop (bbox_inches="tight") draws the 36-axes figure twice. Size of one feature's cell, the
# margins for the outer tick labels and axis titles, and the gap between the legend on top and
# the first row of panels.
GRID_CELL: tuple[float, float] = (3.4, 3.3)
GRID_LEFT, GRID_RIGHT, GRID_BOTTOM, GRID_LEGEND_GAP = 0.75, 0.2, 0.55, 0.3

# ---------------------------------------------------------------------------------------------
# drawing helpers


def draw_ratio_points(
    ax: Axes,
    centres: np.ndarray,
    ratio: np.ndarray,
    error: np.ndarray,
    *,
    ylim: tuple[float, float],
    color: str,
    unbounded: np.ndarray | None = None,
    xerr: np.ndarray | None = None,
    label: str | None = None,
) -> int:
    """Ratio markers with error bars inside ``ylim``; arrows at the frame for points outside.

    Up (down) triangles at the top (bottom) edge mark ratios above (below) the range, and
    ``unbounded`` bins (numerator > 0 over an empty denominator) are drawn as up arrows too.
    NaN ratios (both empty) are not drawn. Returns the number of arrows.
    """
    lo, hi = ylim
    ratio = np.asarray(ratio, dtype=np.float64)
    unb = np.zeros(ratio.shape, bool) if unbounded is None else np.asarray(unbounded, bool)
    inside = np.isfinite(ratio) & (ratio >= lo) & (ratio <= hi)
    above = (np.isfinite(ratio) & (ratio > hi)) | unb
    below = np.isfinite(ratio) & (ratio < lo)
    ax.errorbar(centres[inside], ratio[inside], yerr=np.nan_to_num(error[inside]),
                xerr=None if xerr is None else xerr[inside], fmt="o", ms=3, lw=1,
                color=color, label=label)
    pad = 0.06 * (hi - lo) if ax.get_yscale() == "linear" else 0.0
    top = hi - pad if pad else hi / 1.15
    bottom = lo + pad if pad else lo * 1.15
    ax.plot(centres[above], np.full(above.sum(), top), "^", ms=5, color=color, ls="none")
    ax.plot(centres[below], np.full(below.sum(), bottom), "v", ms=5, color=color, ls="none")
    return int(above.sum() + below.sum())


def _flow_text(comp: HistComparison) -> str:
    """Under/overflow counts of both samples, for the plot."""
    m, g = comp.mc, comp.gen
    return f"under/overflow: MC {m.underflow}/{m.overflow}, gen. {g.underflow}/{g.overflow}"


def _legend_handles(mc_label: str, gen_label: str, tail: bool = True) -> list:
    handles = [
        Patch(facecolor=MC_COLOR, edgecolor=MC_EDGE, alpha=0.6, label=mc_label),
        Patch(facecolor="none", edgecolor=MC_EDGE, hatch="////", lw=0, label="MC stat. unc."),
        Line2D([], [], color=GEN_COLOR, marker="|", lw=1.5, label=gen_label + " (stat. unc.)"),
    ]
    if tail:
        handles.append(Line2D([], [], color=TAIL_COLOR, ls="--", lw=1.2,
                              label=r"'3$\sigma$' tail: outer $10^{-3}$ of MC"))
    return handles


def _draw_comparison(
    ax: Axes,
    rax: Axes,
    comp: HistComparison,
    tails: tuple[float, float],
    *,
    log: bool,
    xlabel: str,
    ratio_range: tuple[float, float],
    text_size: float,
) -> None:
    """Top panel: MC filled + hatched stat band, generated step + error bars, tail markers.
    Bottom panel: gen/MC points (generated errors) and the MC relative error band around 1."""
    e = comp.edges
    c = 0.5 * (e[1:] + e[:-1])
    m, g = comp.mc, comp.gen
    ax.stairs(m.density, e, fill=True, color=MC_COLOR, alpha=0.6, lw=0)
    ax.stairs(m.density, e, color=MC_EDGE, lw=0.8)
    ax.stairs(m.density + m.error, e, baseline=np.clip(m.density - m.error, 0, None), fill=True,
              facecolor="none", edgecolor=MC_EDGE, hatch="////", lw=0)
    ax.stairs(g.density, e, color=GEN_COLOR, lw=1.5)
    ax.errorbar(c, g.density, yerr=g.error, fmt="none", ecolor=GEN_COLOR, lw=1)
    for a in (ax, rax):
        for t, side in zip(tails, ((e[0], tails[0]), (tails[1], e[-1]))):
            a.axvline(t, color=TAIL_COLOR, ls="--", lw=1.2)
            if side[1] > side[0]:
                a.axvspan(*side, color=TAIL_COLOR, alpha=0.07, lw=0)
        a.set_xlim(e[0], e[-1])
    if log:
        ax.set_yscale("log")
        pos = np.concatenate((m.density[m.density > 0], g.density[g.density > 0]))
        if pos.size:
            ax.set_ylim(pos.min() / 3, pos.max() * 30)  # headroom for the legend
    else:
        ax.set_ylim(0, 1.3 * max(np.max(m.density + m.error), np.max(g.density + g.error)))
    ax.set_ylabel(DENSITY_LABEL)
    ax.tick_params(labelbottom=False)
    ax.text(0.02, 0.97, _flow_text(comp), transform=ax.transAxes, fontsize=text_size,
            va="top", ha="left")

    # The MC part of the error as a band around 1, the generated part on the points: together
    # they are the propagated statistical error of both samples.
    rel_mc = np.where(m.density > 0, m.error / np.where(m.density > 0, m.density, 1.0), 0.0)
    rax.stairs(1 + rel_mc, e, baseline=1 - rel_mc, fill=True, color=MC_COLOR, alpha=0.5, lw=0)
    rax.axhline(1.0, color="black", lw=1)
    unbounded = (m.density == 0) & (g.density > 0)
    draw_ratio_points(rax, c, comp.ratio.ratio, comp.ratio.error_num, ylim=ratio_range,
                      color=GEN_COLOR, unbounded=unbounded)
    rax.set_ylim(*ratio_range)
    rax.set_ylabel("gen./MC")
    rax.set_xlabel(xlabel)


def _comparison_axes(fig: plt.Figure, spec) -> tuple[Axes, Axes]:
    inner = GridSpecFromSubplotSpec(2, 1, subplot_spec=spec, height_ratios=[3, 1], hspace=0.06)
    ax = fig.add_subplot(inner[0])
    return ax, fig.add_subplot(inner[1], sharex=ax)


# ---------------------------------------------------------------------------------------------
# 1-D comparisons


def plot_feature_comparison(
    mc: np.ndarray,
    generated: np.ndarray,
    feature: str,
    path: str | os.PathLike[str],
    *,
    bins: int | np.ndarray | None = None,
    log: bool = False,
    mc_label: str = "MC (test_a)",
    gen_label: str = "generated",
    weights: np.ndarray | None = None,
    ratio_range: tuple[float, float] = RATIO_RANGE,
) -> HistComparison:
    """Generated vs MC histogram of one feature with a ratio panel (paper Figs. 7 and 8).

    Top: normalised densities (see the module docstring), MC as a grey filled histogram with a
    hatched band of its statistical error, generated as a blue line with error bars (Poisson,
    or sqrt(Σw²) for weighted events). Bottom: the ratio generated/MC with the generated
    statistical error on the points and the MC relative error as a grey band around 1; points
    beyond the y-range are arrows at the frame. Red dashed lines and light shading mark the
    "3σ tail", outside the 0.05% and 99.95% MC quantiles, where the MC training sample holds
    only 10⁻³ of its events and deviations are expected. The numbers of events outside the
    binning are printed at the top left.

    Arguments:
        mc: MC values, shape (N,).
        generated: generated values, shape (M,).
        feature: branch name, for the axis label (``feature_label``).
        path: PNG to write.
        bins: number of bins or explicit edges, defaults to None (``feature_edges``).
        log: logarithmic y-axis on the top panel, defaults to False.
        mc_label, gen_label: legend entries.
        weights: per generated event, shape (M,), defaults to None (unit weights).
        ratio_range: y-range of the ratio panel, defaults to (0.5, 1.5).

    Returns:
        the HistComparison drawn.
    """
    mc = finite_sample(mc, "mc")
    comp = compare_histograms(mc, generated, feature_edges(mc, bins), weights=weights)
    tails = tail_edges(mc)
    with hep_style(), plt.rc_context({"font.size": 18}):
        fig = plt.figure(figsize=(9, 9))
        with closing(fig):
            gs = GridSpec(1, 1, figure=fig)
            ax, rax = _comparison_axes(fig, gs[0])
            _draw_comparison(ax, rax, comp, tails, log=log, xlabel=feature_label(feature),
                             ratio_range=ratio_range, text_size=12)
            ax.legend(handles=_legend_handles(mc_label, gen_label), loc="upper right",
                      fontsize=13, bbox_to_anchor=(1.0, 0.92))
            save_figure(fig, path)
    return comp


def _top_legend(fig: plt.Figure, handles: list) -> float:
    """Put the legend at the top centre of ``fig`` in one row of all ``handles`` or, where that
    is wider than the figure, in two columns or one. Returns its height in inches; it stays
    at the top when the figure is resized."""
    renderer = fig.canvas.get_renderer()
    for ncol in (len(handles), 2, 1):
        legend = fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.0),
                            ncol=ncol, fontsize=13, frameon=False, bbox_transform=fig.transFigure)
        box = legend.get_window_extent(renderer)
        if box.width <= fig.bbox.width:
            break
        legend.remove()
    return box.height / fig.dpi


def plot_feature_grid(
    mc: np.ndarray,
    generated: np.ndarray,
    features: Sequence[str],
    path: str | os.PathLike[str],
    *,
    log: bool = False,
    bins: int | None = None,
    ncols: int = 4,
    mc_label: str = "MC (test_a)",
    gen_label: str = "generated",
    weights: np.ndarray | None = None,
    mc_weights: np.ndarray | None = None,
    ratio_range: tuple[float, float] = RATIO_RANGE,
) -> list[HistComparison]:
    """All features in one figure, each panel as in ``plot_feature_comparison`` (for the report).

    A grid of ``ncols`` columns (18 features: 5 × 4), every cell a normalised MC (grey) vs
    generated (blue) histogram over a small gen/MC ratio panel (y-range ``ratio_range``,
    arrows for points beyond it), the "3σ tail" boundaries as red dashed lines, and the
    numbers of events outside the binning printed in each cell. One legend on top.

    Arguments:
        mc: MC events, shape (N, F).
        generated: generated events, shape (M, F).
        features: the F column names.
        path: PNG to write.
        log: logarithmic y-axes, defaults to False.
        bins: bins per feature, defaults to None (``DEFAULT_N_BINS``).
        ncols: grid columns, defaults to 4.
        mc_label, gen_label: legend entries.
        weights: per generated event, shape (M,), defaults to None.
        mc_weights: per MC event (weighted MC), shape (N,), defaults to None.
        ratio_range: y-range of the ratio panels.

    Returns:
        the F HistComparisons, in feature order.
    """
    features = feature_names(features)
    mc = event_matrix(mc, "mc", features)
    generated = event_matrix(generated, "generated", features)
    weights = event_weights(weights, generated.shape[0])
    if int(ncols) != ncols or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    comps = [compare_histograms(mc[:, j], generated[:, j], feature_edges(mc[:, j], bins),
                                weights=weights, mc_weights=mc_weights) for j in range(len(features))]
    ncols = min(int(ncols), len(features))
    nrows = math.ceil(len(features) / ncols)
    width = GRID_CELL[0] * ncols + GRID_LEFT + GRID_RIGHT
    with hep_style(), plt.rc_context({"font.size": 11, "xtick.labelsize": 9,
                                      "ytick.labelsize": 9}):
        fig = plt.figure(figsize=(width, GRID_CELL[1] * nrows))
        with closing(fig):
            top = _top_legend(fig, _legend_handles(mc_label, gen_label)) + GRID_LEGEND_GAP
            height = GRID_CELL[1] * nrows + GRID_BOTTOM + top
            fig.set_size_inches(width, height)
            gs = GridSpec(nrows, ncols, figure=fig, hspace=0.32, wspace=0.32,
                          left=GRID_LEFT / width, right=1 - GRID_RIGHT / width,
                          bottom=GRID_BOTTOM / height, top=1 - top / height)
            for j, (name, comp) in enumerate(zip(features, comps)):
                ax, rax = _comparison_axes(fig, gs[j // ncols, j % ncols])
                _draw_comparison(ax, rax, comp, tail_edges(mc[:, j]), log=log,
                                 xlabel=feature_label(name), ratio_range=ratio_range,
                                 text_size=7)
                ax.yaxis.label.set_size(9)
                rax.yaxis.label.set_size(9)
            save_figure(fig, path, tight=False)
    return comps


def plot_all_features(
    mc: np.ndarray,
    generated: np.ndarray,
    features: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    log: bool = False,
    **kwargs,
) -> list[Path]:
    """One ``plot_feature_comparison`` PNG per feature: ``out_dir/<feature>.png``
    (``<feature>_log.png`` with ``log=True``). Extra keywords go to ``plot_feature_comparison``.

    Returns:
        the written paths, in feature order.
    """
    features = feature_names(features)
    mc = event_matrix(mc, "mc", features)
    generated = event_matrix(generated, "generated", features)
    out = Path(out_dir)
    paths = []
    for j, name in enumerate(features):
        p = out / f"{name}{'_log' if log else ''}.png"
        plot_feature_comparison(mc[:, j], generated[:, j], name, p, log=log, **kwargs)
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------------------------
# distance summary

METRIC_LABELS: dict[str, str] = {
    "chi2": r"$\chi^2$ distance",
    "kl": "KL divergence",
    "hellinger": "Hellinger distance",
    "wasserstein": r"Wasserstein $W_1$",
}


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def plot_distance_summary(
    rows: Sequence[DistanceRow],
    path: str | os.PathLike[str],
    *,
    gen_label: str = "generated vs MC",
    baseline_label: str = "MC vs MC (test_a vs test_b)",
) -> None:
    """Per-feature distances of generated vs MC against the MC–MC baseline (paper Fig. 9).

    One panel per metric (χ², KL, Hellinger, Wasserstein-1; others present follow). Per feature:
    the generated-vs-MC value as a blue point with its resampling std as error bar (none when
    the std is NaN, a single draw), and the baseline (two independent MC halves, same sample
    size) as an open black diamond; a generated point well above its diamond marks a feature
    the flow mismodels beyond statistical fluctuations. The averages over features (the
    ``"mean"`` rows) are horizontal lines, solid blue for generated and dashed black for the
    baseline, with their values in the panel's text box. The y-axis is logarithmic when all
    values are positive and span more than a factor 20.

    Arguments:
        rows: ``DistanceRow``s (feature, metric, value, std, baseline), as ``distance_table``
            or ``read_distances_tsv`` return them.
        path: PNG to write.
        gen_label, baseline_label: legend entries.
    """
    rows = [DistanceRow(*r) for r in rows]
    if not rows:
        raise ValueError("rows is empty: no distances to plot")
    features = list(dict.fromkeys(r.feature for r in rows if r.feature != "mean"))
    if not features:
        raise ValueError("rows hold only 'mean' rows; per-feature rows are needed")
    present = list(dict.fromkeys(r.metric for r in rows))
    metrics = [m for m in METRICS if m in present] + [m for m in present if m not in METRICS]
    table = {(r.feature, r.metric): r for r in rows}
    if len(table) != len(rows):
        raise ValueError("rows repeat a (feature, metric) pair")
    x = np.arange(len(features))
    with hep_style(), plt.rc_context({"font.size": 14}):
        fig, axes = plt.subplots(len(metrics), 1, sharex=True,
                                 figsize=(max(8.0, 0.6 * len(features) + 3), 3.2 * len(metrics)),
                                 squeeze=False, gridspec_kw={"hspace": 0.08})
        with closing(fig):
            for ax, metric in zip(axes[:, 0], metrics):
                sel = [table.get((f, metric)) for f in features]
                val = np.array([r.value if r else np.nan for r in sel])
                std = np.array([r.std if r else np.nan for r in sel])
                base = np.array([r.baseline if r else np.nan for r in sel])
                ax.errorbar(x, val, yerr=np.nan_to_num(std), fmt="o", ms=5, color=GEN_COLOR,
                            label=gen_label)
                ax.plot(x, base, "D", ms=6, mfc="none", mec="black", ls="none",
                        label=baseline_label)
                mean = table.get(("mean", metric))
                if mean is not None:
                    ax.axhline(mean.value, color=GEN_COLOR, lw=1.2)
                    ax.axhline(mean.baseline, color="black", lw=1.2, ls="--")
                    ax.text(0.01, 0.95, f"mean: gen. {_fmt(mean.value)} ± {_fmt(mean.std)}, "
                            f"MC–MC {_fmt(mean.baseline)}", transform=ax.transAxes, va="top",
                            fontsize=11, bbox=dict(fc="white", ec="0.7", alpha=0.9))
                allv = np.concatenate((val, base))
                allv = allv[np.isfinite(allv)]
                if allv.size and (allv > 0).all() and allv.max() / allv.min() > 20:
                    ax.set_yscale("log")
                    ax.set_ylim(allv.min() / 3, allv.max() * 8)  # room for the text box
                elif allv.size:
                    ax.set_ylim(min(0.0, allv.min()), 1.35 * allv.max() if allv.max() > 0 else 1)
                ax.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=13)
                ax.tick_params(axis="x", which="minor", bottom=False, top=False)
            handles, labels = axes[0, 0].get_legend_handles_labels()
            order = sorted(range(len(labels)), key=lambda k: labels[k] != gen_label)
            axes[0, 0].legend([handles[k] for k in order], [labels[k] for k in order],
                              loc="lower center", bbox_to_anchor=(0.5, 1.02), ncol=2,
                              fontsize=12, frameon=False)
            last = axes[-1, 0]
            last.set_xticks(x)
            last.set_xticklabels([feature_label(f, unit=False) for f in features], rotation=60,
                                 ha="right", fontsize=12)
            last.set_xlim(-0.6, len(features) - 0.4)
            save_figure(fig, path)
