"""Generated vs MC distributions: histograms with ratio panels, a feature grid, 2-D contours of the
most correlated pairs and the per-feature distance summary (paper Sec. 4.1–4.2, Figs. 7–9).

Conventions shared by every histogram here:

* Binning is fixed from the **MC reference** and reused for the generated sample. The default is
  ``DEFAULT_N_BINS`` equal-width bins between the ``DEFAULT_QUANTILE_RANGE`` = (10⁻⁴, 1 − 10⁻⁴)
  quantiles of MC: wider than the "3σ tail" markers at the 0.05% and 99.95% MC quantiles, so the
  tails the markers point at are visible, yet robust against single extreme events.
* Normalisation counts **all** events of a sample, including those outside the binning:

      density_i = W_i / (W Δ_i),   error_i = sqrt(Σ_{k ∈ i} w_k²) / (W Δ_i),

  with W_i the (weighted) content of bin i, W the total over all events and Δ_i the bin width
  (unit weights: W_i = N_i and the error is the Poisson sqrt(N_i)). A sample that puts more
  events beyond the binning than MC therefore shows up as a deficit inside it rather than
  being renormalised away, and the numbers outside the binning (under/overflow) are printed
  on every plot; nothing is silently dropped. The error of the normalisation W is neglected.
* Ratios are generated/MC per bin. An empty MC bin gives NaN (never inf); in the ratio panel a
  bin with generated events but no MC events is drawn as an up arrow (the ratio is unbounded).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.gridspec import GridSpec, GridSpecFromSubplotSpec
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from flowsim.arrays import finite_sample
from flowsim.data.higgs import FEATURE_COLUMNS
from flowsim.metrics.copula import PairRow
from flowsim.metrics.distances import METRICS, DistanceRow, reference_binning
from flowsim.plots.style import hep_style, save_figure

__all__ = [
    "DEFAULT_N_BINS",
    "DEFAULT_QUANTILE_RANGE",
    "FEATURE_LABELS",
    "TAIL_FRACTION",
    "CorrelatedPair",
    "HistComparison",
    "NormalisedHist",
    "RatioWithErrors",
    "compare_histograms",
    "correlation_matrix",
    "draw_ratio_points",
    "feature_edges",
    "feature_label",
    "hdr_levels",
    "normalised_hist",
    "plot_all_features",
    "plot_copula_pairs",
    "plot_corner",
    "plot_distance_summary",
    "plot_feature_comparison",
    "plot_feature_grid",
    "ratio_with_errors",
    "select_pairs",
    "tail_edges",
]

#: Regular bins of a feature histogram.
DEFAULT_N_BINS = 60
#: MC quantiles spanned by the default binning (wider than the tail markers).
DEFAULT_QUANTILE_RANGE: tuple[float, float] = (1e-4, 1.0 - 1e-4)
#: MC fraction outside the "3σ tail" markers: half of it on each side (paper Fig. 8).
TAIL_FRACTION = 1e-3
#: Default y-range of ratio panels.
RATIO_RANGE: tuple[float, float] = (0.5, 1.5)

# Colours of mplhep's ROOT cycle: MC in grey as in the paper's Fig. 7, generated in blue, the
# tail markers in red as in Fig. 8.
MC_COLOR = "#9c9ca1"
MC_EDGE = "#5f5f63"
GEN_COLOR = "#5790fc"
TAIL_COLOR = "#e42536"
ALT_COLOR = "#f89c20"

DENSITY_LABEL = r"$1/N\;\mathrm{d}N/\mathrm{d}x$"

# The feature grid lays out its margins in inches instead of cropping the PNG afterwards: the
# crop (bbox_inches="tight") draws the 36-axes figure twice. Size of one feature's cell, the
# margins for the outer tick labels and axis titles, and the gap between the legend on top and
# the first row of panels.
GRID_CELL: tuple[float, float] = (3.4, 3.3)
GRID_LEFT, GRID_RIGHT, GRID_BOTTOM, GRID_LEGEND_GAP = 0.75, 0.2, 0.55, 0.3

# ---------------------------------------------------------------------------------------------
# labels


def _build_labels() -> dict[str, str]:
    """LaTeX axis labels of the 28 HIGGS features, file units included."""
    unit = " [a.u.]"  # momenta and masses are divided by their mean in the file
    objects = {"lepton": "lepton", **{f"jet{k}": f"jet {k}" for k in range(1, 5)}}
    labels: dict[str, str] = {}
    for key, obj in objects.items():
        labels[f"{key}_pt"] = f"{obj} $p_T$" + unit
        labels[f"{key}_eta"] = f"{obj} $\\eta$"
        labels[f"{key}_phi"] = f"{obj} $\\phi$"
        labels[f"{key}_btag"] = f"{obj} b-tag"
    del labels["lepton_btag"]
    labels["met"] = r"$E_T^{\mathrm{miss}}$" + unit
    labels["met_phi"] = r"$\phi(E_T^{\mathrm{miss}})$"
    masses = {
        "m_jj": r"$m_{jj}$", "m_jjj": r"$m_{jjj}$", "m_lv": r"$m_{\ell\nu}$",
        "m_jlv": r"$m_{j\ell\nu}$", "m_bb": r"$m_{b\bar{b}}$", "m_wbb": r"$m_{Wb\bar{b}}$",
        "m_wwbb": r"$m_{WWb\bar{b}}$",
    }  # fmt: skip
    labels.update({k: v + unit for k, v in masses.items()})
    return {name: labels[name] for name in FEATURE_COLUMNS}  # file order


#: Axis label of every HIGGS branch (file order), e.g. ``"m_bb" -> "$m_{b\bar{b}}$ [a.u.]"``.
FEATURE_LABELS: dict[str, str] = _build_labels()


def feature_label(name: str, *, unit: bool = True) -> str:
    """LaTeX label of a HIGGS feature; ``unit=False`` drops the " [a.u.]" suffix.

    Momenta and masses are in file units (divided by their mean), hence "[a.u.]"; η, φ and the
    b-tag are dimensionless. Unknown names are returned unchanged, so the plots also work for
    other features.
    """
    label = FEATURE_LABELS.get(name, name)
    return label.removesuffix(" [a.u.]") if not unit else label


# ---------------------------------------------------------------------------------------------
# input checks


def _as_matrix(x: np.ndarray, name: str, features: Sequence[str]) -> np.ndarray:
    """``x`` as a finite (N, F) float64 array matching ``features``, or a ValueError."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (events, features), got shape {a.shape}")
    if a.shape[1] != len(features):
        raise ValueError(f"{name} has {a.shape[1]} columns but {len(features)} features were "
                         f"given: {list(features)}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty (no events)")
    finite = np.isfinite(a).all(axis=0)
    if not finite.all():
        bad = [features[j] for j in np.flatnonzero(~finite)]
        raise ValueError(f"{name} has non-finite values (NaN or inf) in {bad}")
    return a


def _check_features(features: Sequence[str]) -> list[str]:
    names = [str(f) for f in features]
    if not names:
        raise ValueError("features is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"feature names are not unique: {names}")
    return names


def _as_weights(weights: np.ndarray | None, n: int, name: str = "weights") -> np.ndarray | None:
    """Per-event weights of a sample of ``n`` events (None: unit weights)."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one per generated event; got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"{name} has non-finite values")
    if not w.sum() > 0:
        raise ValueError(f"{name} must have a positive sum, got {w.sum()!r}")
    return w


def _as_edges(edges: np.ndarray) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.isfinite(e).all() or (np.diff(e) <= 0).any():
        raise ValueError("bin edges must be a finite, strictly increasing 1-D array of >= 2 values")
    return e


# ---------------------------------------------------------------------------------------------
# the numbers behind the plots


class NormalisedHist(NamedTuple):
    """A histogram normalised to unit integral over **all** events (see the module docstring).

    Attributes:
        density: W_i / (W Δ_i), shape (B,).
        error: sqrt(Σ_{k ∈ i} w_k²) / (W Δ_i), shape (B,); Poisson sqrt(N_i)/(N Δ_i) for unit
            weights.
        underflow: number of events below the first edge.
        overflow: number of events above the last edge (the last bin is closed).
        total: W, the sum of weights of all events (N for unit weights).
    """

    density: np.ndarray
    error: np.ndarray
    underflow: int
    overflow: int
    total: float


class RatioWithErrors(NamedTuple):
    """num/den per bin with propagated errors; NaN where den = 0.

    Attributes:
        ratio: ρ_i = num_i / den_i.
        error: sqrt(error_num² + error_den²), both samples propagated.
        error_num: σ(num_i) / den_i, the numerator's part.
        error_den: ρ_i σ(den_i) / den_i, the denominator's part.
    """

    ratio: np.ndarray
    error: np.ndarray
    error_num: np.ndarray
    error_den: np.ndarray


class HistComparison(NamedTuple):
    """MC and generated histograms of one feature on the MC binning, and their ratio gen/MC."""

    edges: np.ndarray
    mc: NormalisedHist
    gen: NormalisedHist
    ratio: RatioWithErrors


def normalised_hist(
    x: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None
) -> NormalisedHist:
    """Density histogram of ``x`` normalised to all its events, with statistical errors.

    Arguments:
        x: values, shape (N,).
        edges: bin edges, shape (B + 1,), strictly increasing.
        weights: per-event weights, shape (N,), defaults to None (unit weights).
    """
    x = finite_sample(x, "x")
    e = _as_edges(edges)
    w = _as_weights(weights, x.size)
    ones = np.ones_like(x) if w is None else w
    content, _ = np.histogram(x, bins=e, weights=ones)
    sumw2, _ = np.histogram(x, bins=e, weights=ones**2)
    total = float(ones.sum())
    norm = total * np.diff(e)
    return NormalisedHist(
        density=content / norm,
        error=np.sqrt(sumw2) / norm,
        underflow=int(np.count_nonzero(x < e[0])),
        overflow=int(np.count_nonzero(x > e[-1])),
        total=total,
    )


def ratio_with_errors(
    num: np.ndarray, num_err: np.ndarray, den: np.ndarray, den_err: np.ndarray
) -> RatioWithErrors:
    """ρ = num/den with independent errors propagated to first order.

    σ_ρ² = (σ_num/den)² + (ρ σ_den/den)², which stays finite where num = 0. Bins with den = 0
    give NaN for the ratio and all errors (never inf).
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (num, num_err, den, den_err)]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"num, num_err, den, den_err must have equal shapes, got "
                         f"{[a.shape for a in arrays]}")
    num, num_err, den, den_err = arrays
    ok = den != 0
    safe = np.where(ok, den, 1.0)  # avoids division warnings; masked below
    ratio = np.where(ok, num / safe, np.nan)
    err_num = np.where(ok, num_err / safe, np.nan)
    err_den = np.where(ok, np.abs(ratio) * den_err / safe, np.nan)
    return RatioWithErrors(ratio, np.hypot(err_num, err_den), err_num, err_den)


def compare_histograms(
    mc: np.ndarray,
    generated: np.ndarray,
    edges: np.ndarray,
    *,
    weights: np.ndarray | None = None,
) -> HistComparison:
    """MC and generated normalised histograms on ``edges`` and the ratio generated/MC.

    Arguments:
        mc: MC values of one feature, shape (N,).
        generated: generated values, shape (M,).
        edges: common bin edges, shape (B + 1,).
        weights: per generated event, shape (M,), defaults to None (unit weights).
    """
    mc = finite_sample(mc, "mc")
    generated = finite_sample(generated, "generated")
    w = _as_weights(weights, generated.size)
    e = _as_edges(edges)
    h_mc = normalised_hist(mc, e)
    h_gen = normalised_hist(generated, e, w)
    return HistComparison(e, h_mc, h_gen,
                          ratio_with_errors(h_gen.density, h_gen.error, h_mc.density, h_mc.error))


def tail_edges(mc: np.ndarray, fraction: float = TAIL_FRACTION) -> tuple[float, float]:
    """The "3σ tail" boundaries: MC quantiles ``fraction/2`` and ``1 − fraction/2``.

    The default 10⁻³ gives the 0.05% and 99.95% quantiles; outside them lies the outer 10⁻³ of
    the MC events (about a two-sided 3σ Gaussian tail), where the flow saw few training events.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    lo, hi = np.quantile(finite_sample(mc, "mc"), [fraction / 2, 1.0 - fraction / 2])
    return float(lo), float(hi)


def feature_edges(mc: np.ndarray, bins: int | np.ndarray | None = None) -> np.ndarray:
    """Bin edges of a feature: explicit ``bins`` edges, or ``bins`` (default ``DEFAULT_N_BINS``)
    uniform bins between the ``DEFAULT_QUANTILE_RANGE`` quantiles of MC."""
    if bins is None or np.ndim(bins) == 0:
        n = DEFAULT_N_BINS if bins is None else bins
        return reference_binning(finite_sample(mc, "mc"), n, quantile_range=DEFAULT_QUANTILE_RANGE)
    return _as_edges(bins)


# ---------------------------------------------------------------------------------------------
# drawing helpers


@contextlib.contextmanager
def _closing(fig: plt.Figure) -> Iterator[plt.Figure]:
    """Close ``fig`` however the block ends (``save_figure`` closes it on success too)."""
    try:
        yield fig
    finally:
        plt.close(fig)


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
        with _closing(fig):
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
        ratio_range: y-range of the ratio panels.

    Returns:
        the F HistComparisons, in feature order.
    """
    features = _check_features(features)
    mc = _as_matrix(mc, "mc", features)
    generated = _as_matrix(generated, "generated", features)
    weights = _as_weights(weights, generated.shape[0])
    if int(ncols) != ncols or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    comps = [compare_histograms(mc[:, j], generated[:, j], feature_edges(mc[:, j], bins),
                                weights=weights) for j in range(len(features))]
    ncols = min(int(ncols), len(features))
    nrows = math.ceil(len(features) / ncols)
    width = GRID_CELL[0] * ncols + GRID_LEFT + GRID_RIGHT
    with hep_style(), plt.rc_context({"font.size": 11, "xtick.labelsize": 9,
                                      "ytick.labelsize": 9}):
        fig = plt.figure(figsize=(width, GRID_CELL[1] * nrows))
        with _closing(fig):
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
    features = _check_features(features)
    mc = _as_matrix(mc, "mc", features)
    generated = _as_matrix(generated, "generated", features)
    out = Path(out_dir)
    paths = []
    for j, name in enumerate(features):
        p = out / f"{name}{'_log' if log else ''}.png"
        plot_feature_comparison(mc[:, j], generated[:, j], name, p, log=log, **kwargs)
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------------------------
# 2-D: the most correlated pairs


class CorrelatedPair(NamedTuple):
    """Columns i < j and their MC correlation coefficient rho."""

    i: int
    j: int
    rho: float


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..N of a 1-D array, ties sharing their average rank."""
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    start = np.cumsum(counts) - counts  # values below each distinct value
    return (start + (counts + 1) / 2.0)[inverse]


def correlation_matrix(
    x: np.ndarray, *, method: Literal["spearman", "pearson"] = "spearman"
) -> np.ndarray:
    """F × F correlation matrix of the columns of ``x`` (N, F); constant columns give 0.

    ``"spearman"``: Pearson correlation of the average ranks, insensitive to the long tails of
    momenta and masses (a handful of extreme events can dominate a Pearson coefficient).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be 2-D with at least 2 events, got shape {x.shape}")
    if method == "spearman":
        x = np.column_stack([_average_ranks(x[:, j]) for j in range(x.shape[1])])
    elif method != "pearson":
        raise ValueError(f"unknown method {method!r}; expected 'spearman' or 'pearson'")
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.atleast_2d(np.corrcoef(x, rowvar=False))
    return np.nan_to_num(c, nan=0.0)


def select_pairs(
    mc: np.ndarray, n_pairs: int, *, method: Literal["spearman", "pearson"] = "spearman"
) -> list[CorrelatedPair]:
    """The ``n_pairs`` column pairs with the largest |correlation| in MC, strongest first.

    At most F(F−1)/2 pairs are returned. Ties keep the (i, j) order.
    """
    if int(n_pairs) != n_pairs or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    c = correlation_matrix(mc, method=method)
    i, j = np.triu_indices(c.shape[0], k=1)
    order = np.argsort(-np.abs(c[i, j]), kind="stable")[: int(n_pairs)]
    return [CorrelatedPair(int(i[k]), int(j[k]), float(c[i[k], j[k]])) for k in order]


def hdr_levels(hist: np.ndarray, fractions: Sequence[float], total: float | None = None
               ) -> np.ndarray:
    """Heights of a histogram bounding its highest-density regions.

    For each fraction f the level is the smallest bin height h such that the bins with height
    >= h hold at least f · ``total`` (default: the histogram sum). Fractions that cannot be
    reached are left out. Returns the distinct levels in increasing order (for ``contour``).
    """
    h = np.sort(np.asarray(hist, dtype=np.float64).ravel())[::-1]
    total = float(h.sum()) if total is None else float(total)
    if not total > 0:
        return np.array([])
    cum = np.cumsum(h) / total
    levels = []
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"fractions must be in (0, 1], got {f!r}")
        k = int(np.searchsorted(cum, f - 1e-12))  # first bin where the content reaches f
        if k < h.size and h[k] > 0:
            levels.append(h[k])
    return np.unique(levels)


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
    features = _check_features(features)
    if len(features) < 2:
        raise ValueError("a corner plot needs at least 2 features")
    mc = _as_matrix(mc, "mc", features)
    generated = _as_matrix(generated, "generated", features)
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
        with _closing(fig):
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
    features = _check_features(features)
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
        with _closing(fig):
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
        with _closing(fig):
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
