"""Plots of the classifier two-sample test (paper Sec. 4.3, Figs. 11–13): ROC curves, classifier
scores, the density ratio r(x) = D/(1 − D) and the features of the events in its tails.

Convention (as in ``flowsim.metrics.roc``): the classifier output D(x) ≈ p(generated | x),
generated events are the positives (label 1), MC events the negatives (label 0), and with equal
class sizes r(x) = D/(1 − D) estimates p_gen(x)/p_MC(x). Where the flow over-populates phase
space r > 1, where it under-populates r < 1; a perfect flow gives D = ½ and r = 1 everywhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.gridspec import GridSpec
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from flowsim.arrays import event_matrix, feature_names, finite_sample
from flowsim.metrics.distances import reference_binning
from flowsim.metrics.histograms import RatioTails, normalised_hist, ratio_tail_masks, ratio_with_errors
from flowsim.metrics.roc import RocCurve
from flowsim.plots.distributions import draw_ratio_points
from flowsim.plots.labels import feature_label
from flowsim.plots.style import (
    ALT_COLOR,
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
    "format_pm",
    "plot_density_ratio",
    "plot_ratio_tails",
    "plot_roc",
    "plot_score_distributions",
    "thin_curve",
]

_PLAIN = FuncFormatter(lambda v, _: f"{v:g}")


def _plain_log_labels(axis, lo: float, hi: float) -> None:
    """Plain numbers on a log axis (0.5, 1, 2 rather than 10⁰, 2×10⁰).

    An axis spanning a decade or two would otherwise carry one label at most, so some minor
    ticks are labelled too: all of them below 0.7 decades, those at 2 and 5 × 10ᵏ up to 2.5.
    """
    decades = math.log10(hi / lo)
    keep = set(range(1, 10)) if decades < 0.7 else {2, 5} if decades < 2.5 else set()

    def minor(v: float, _pos: int) -> str:
        if v <= 0:
            return ""
        mantissa = round(v / 10 ** math.floor(math.log10(v) + 1e-9))
        return f"{v:g}" if mantissa in keep else ""

    axis.set_major_formatter(_PLAIN)
    axis.set_minor_formatter(FuncFormatter(minor))


#: Most points of a drawn ROC curve (the full curve has one per distinct score).
MAX_CURVE_POINTS = 4000


def format_pm(value: float, error: float) -> str:
    """``value ± error`` with the error at two significant digits, e.g. 0.5123 ± 0.0011."""
    if not (np.isfinite(error) and error > 0):
        return f"{value:.4f}"
    digits = min(8, max(0, 1 - int(math.floor(math.log10(error)))))
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def thin_curve(fpr: np.ndarray, tpr: np.ndarray, max_points: int = MAX_CURVE_POINTS
               ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of a ROC curve, evenly spaced in index, ends kept.

    Consecutive ROC points differ by one threshold, so an even subsample of a monotone curve
    keeps its shape at plotting resolution while rendering millions of events fast.
    """
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    if fpr.size <= max_points:
        return fpr, tpr
    idx = np.unique(np.linspace(0, fpr.size - 1, max_points).round().astype(int))
    return fpr[idx], tpr[idx]


def _check_curve(curve: RocCurve, name: str) -> RocCurve:
    fpr, tpr = np.asarray(curve.fpr, dtype=np.float64), np.asarray(curve.tpr, dtype=np.float64)
    if fpr.ndim != 1 or fpr.shape != tpr.shape or fpr.size < 2:
        raise ValueError(f"{name}: fpr and tpr must be 1-D of equal length >= 2, got shapes "
                         f"{fpr.shape} and {tpr.shape}")
    for arr, what in ((fpr, "fpr"), (tpr, "tpr")):
        if not (np.isfinite(arr).all() and (arr >= 0).all() and (arr <= 1).all()):
            raise ValueError(f"{name}: {what} must lie in [0, 1]")
    return RocCurve(fpr, tpr, np.asarray(curve.thresholds))


def plot_roc(
    curve_gen: RocCurve,
    path: str | os.PathLike[str],
    *,
    auc: float,
    auc_err: float,
    curve_null: RocCurve | None = None,
    auc_null: float | None = None,
    auc_null_err: float | None = None,
    gen_label: str = "generated vs MC",
    null_label: str = "MC vs MC (null)",
    positive: str = "generated",
    negative: str = "MC",
) -> None:
    """ROC curves of the C2ST classifier (paper Fig. 11) with the difference TPR − FPR below.

    Top: true-positive rate (generated events called generated) against false-positive rate
    (MC events called generated) for the generated-vs-MC test, and optionally the MC-vs-MC null
    test, with the diagonal of a classifier that cannot tell the samples apart (AUC = ½).
    AUC ± its uncertainty (e.g. DeLong) are in the legend. Because a good flow keeps the curve
    close to the diagonal, the lower panel magnifies TPR − FPR; the null curve shows how far
    from zero statistical fluctuations alone reach.

    Arguments:
        curve_gen: ROC of generated (positive) vs MC (negative).
        path: PNG to write.
        auc, auc_err: its AUC and uncertainty.
        curve_null: ROC of the MC-vs-MC test, defaults to None (not drawn).
        auc_null, auc_null_err: its AUC and uncertainty; required with ``curve_null``.
        gen_label, null_label: legend entries.
        positive, negative: names of the classes in the axis labels, default "generated"
            and "MC".
    """
    curve_gen = _check_curve(curve_gen, "curve_gen")
    if curve_null is not None:
        curve_null = _check_curve(curve_null, "curve_null")
        if auc_null is None:
            raise ValueError("auc_null is required when curve_null is given")
    elif auc_null is not None:
        raise ValueError("auc_null given without curve_null")
    curves = [(curve_gen, GEN_COLOR, "-", f"{gen_label}: AUC = {format_pm(auc, auc_err)}")]
    if curve_null is not None:
        err = np.nan if auc_null_err is None else auc_null_err
        curves.append((curve_null, MC_EDGE, "--",
                       f"{null_label}: AUC = {format_pm(auc_null, err)}"))
    with hep_style(), plt.rc_context({"font.size": 18}):
        fig, (ax, dax) = plt.subplots(2, 1, sharex=True, figsize=(8.5, 9.5),
                                      gridspec_kw={"height_ratios": [3, 1.2], "hspace": 0.06})
        with closing(fig):
            ax.plot([0, 1], [0, 1], color="black", lw=1, ls=":", label="random (AUC = 0.5)")
            dax.axhline(0, color="black", lw=1, ls=":")
            for curve, color, ls, label in curves:
                f, t = thin_curve(curve.fpr, curve.tpr)
                ax.plot(f, t, color=color, ls=ls, lw=2, label=label)
                dax.plot(f, t - f, color=color, ls=ls, lw=1.5)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.0)
            ax.set_ylabel(f"true-positive rate ({positive})")
            ax.legend(loc="lower right", fontsize=13)
            dax.set_ylabel("TPR − FPR", fontsize=15)
            dax.set_xlabel(f"false-positive rate ({negative})")
            lim = max(np.max(np.abs(c.tpr - c.fpr)) for c, *_ in curves)
            dax.set_ylim(-1.3 * lim - 1e-3, 1.3 * lim + 1e-3)
            save_figure(fig, path)


def _positive_sample(x: np.ndarray, name: str) -> np.ndarray:
    a = finite_sample(x, name)
    n_bad = int(np.count_nonzero(a <= 0))
    if n_bad:
        raise ValueError(f"{name} has {n_bad} non-positive value(s); density ratios are > 0")
    return a


def _log_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """``n_bins`` log-uniform bins spanning all ``values`` (> 0)."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo * (1 + 1e-9):  # a single value: one decade around it
        lo, hi = lo / math.sqrt(10), hi * math.sqrt(10)
    return np.geomspace(lo, hi * (1 + 1e-12), int(n_bins) + 1)  # last edge includes the max


def plot_density_ratio(
    r_mc: np.ndarray,
    r_gen: np.ndarray,
    path: str | os.PathLike[str],
    *,
    n_bins: int = 60,
    mc_label: str = "MC",
    gen_label: str = "generated",
) -> None:
    """Distributions of the density ratio r(x) = D/(1 − D) for MC and generated events
    (paper Fig. 12).

    Fractions of events per log-uniform bin of r spanning all values (none outside), with
    Poisson error bars, on a log y-axis; the dotted line marks r = 1. Identical samples give
    identical distributions peaked at r = 1. Generated events at r ≫ 1 sit where the flow
    over-populates phase space, MC events at r ≪ 1 where it under-populates. As a calibration
    check the legend gives ⟨r⟩ over MC and ⟨1/r⟩ over generated events, both 1 in expectation
    for a calibrated classifier (E_MC[p_gen/p_MC] = 1).

    Arguments:
        r_mc: r of the MC events, shape (N,), > 0.
        r_gen: r of the generated events, shape (M,), > 0.
        path: PNG to write.
        n_bins: number of log-uniform bins, defaults to 60.
        mc_label, gen_label: legend entries.
    """
    r_mc = _positive_sample(r_mc, "r_mc")
    r_gen = _positive_sample(r_gen, "r_gen")
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    edges = _log_edges(np.concatenate((r_mc, r_gen)), n_bins)
    c = np.sqrt(edges[1:] * edges[:-1])  # geometric bin centres
    with hep_style(), plt.rc_context({"font.size": 18}):
        fig, ax = plt.subplots(figsize=(9, 7.5))
        with closing(fig):
            for r, color, label, fill in ((r_mc, MC_COLOR, mc_label, True),
                                          (r_gen, GEN_COLOR, gen_label, False)):
                counts, _ = np.histogram(r, bins=edges)
                frac, err = counts / r.size, np.sqrt(counts) / r.size
                if fill:
                    ax.stairs(frac, edges, fill=True, color=color, alpha=0.6, label=label)
                else:
                    ax.stairs(frac, edges, color=color, lw=1.8, label=label)
                ax.errorbar(c, frac, yerr=err, fmt="none", ecolor=MC_EDGE if fill else color,
                            lw=1)
            ax.axvline(1.0, color="black", ls=":", lw=1.2, label="r = 1")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(edges[0], edges[-1])
            _plain_log_labels(ax.xaxis, edges[0], edges[-1])
            ax.set_xlabel(r"$r(x) = D/(1-D)$")
            ax.set_ylabel("fraction of events / bin")
            title = (rf"$\langle r\rangle_\mathrm{{MC}}$ = {np.mean(r_mc):.3f}, "
                     rf"$\langle 1/r\rangle_\mathrm{{gen}}$ = {np.mean(1 / r_gen):.3f} "
                     "(both 1 if calibrated)")
            ax.legend(loc="upper right", fontsize=13, title=title, title_fontsize=11)
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, hi * 20)  # room for the legend
            save_figure(fig, path)


def plot_ratio_tails(
    mc: np.ndarray,
    generated: np.ndarray,
    r_gen: np.ndarray,
    features: Sequence[str],
    path: str | os.PathLike[str],
    *,
    quantile: float = 0.01,
    n_bins: int = 40,
    ncols: int = 4,
    mc_label: str = "MC (all)",
) -> RatioTails:
    """Features of the generated events in the tails of r(x), against all MC (paper Fig. 13).

    One panel per feature: the normalised distribution of all MC events (grey, filled), of the
    generated events with the lowest ``quantile`` of r (orange; regions the flow
    under-populates) and of those with the highest ``quantile`` (red; regions it over-populates).
    Where a tail distribution departs from the MC shape the classifier found the flow's failure
    modes, typically in the tails of the features. Binning per feature: ``n_bins`` uniform bins
    between the 0.01% and 99.99% MC quantiles; values beyond are counted in the first/last bin,
    so every event is shown.

    Arguments:
        mc: MC events, shape (N, F).
        generated: generated events, shape (M, F).
        r_gen: r(x) of the generated events, shape (M,).
        features: the F column names.
        path: PNG to write.
        quantile: fraction of generated events in each tail, defaults to 0.01.
        n_bins: bins per feature, defaults to 40.
        ncols: grid columns, defaults to 4.
        mc_label: legend entry of MC.

    Returns:
        the tail masks and cuts used.
    """
    features = feature_names(features)
    mc = event_matrix(mc, "mc", features)
    generated = event_matrix(generated, "generated", features)
    r_gen = _positive_sample(r_gen, "r_gen")
    if r_gen.size != generated.shape[0]:
        raise ValueError(f"r_gen has {r_gen.size} values but generated has "
                         f"{generated.shape[0]} events")
    tails = ratio_tail_masks(r_gen, quantile)
    ncols = min(int(ncols), len(features))
    nrows = math.ceil(len(features) / ncols)
    pct = f"{100 * quantile:g}%"
    with hep_style(), plt.rc_context({"font.size": 11, "xtick.labelsize": 9,
                                      "ytick.labelsize": 9}):
        fig = plt.figure(figsize=(4.2 * ncols, 3.4 * nrows))
        with closing(fig):
            gs = GridSpec(nrows, ncols, figure=fig, hspace=0.45, wspace=0.32)
            for j, name in enumerate(features):
                ax = fig.add_subplot(gs[j // ncols, j % ncols])
                edges = reference_binning(mc[:, j], n_bins, quantile_range=(1e-4, 1 - 1e-4))
                for x, style in (
                    (mc[:, j], dict(fill=True, color=MC_COLOR, alpha=0.6)),
                    (generated[tails.low, j], dict(color=ALT_COLOR, lw=1.5)),
                    (generated[tails.high, j], dict(color=TAIL_COLOR, lw=1.5)),
                ):
                    # Clip into the edge bins so nothing beyond the binning is lost.
                    h = normalised_hist(np.clip(x, edges[0], edges[-1]), edges)
                    ax.stairs(h.density, edges, **style)
                ax.set_xlim(edges[0], edges[-1])
                ax.set_xlabel(feature_label(name))
                ax.set_ylabel(DENSITY_LABEL, fontsize=9)
            handles = [
                Patch(facecolor=MC_COLOR, alpha=0.6, label=mc_label),
                Line2D([], [], color=ALT_COLOR, lw=1.5,
                       label=f"generated, lowest {pct} of r (r ≤ {tails.low_cut:.3g})"),
                Line2D([], [], color=TAIL_COLOR, lw=1.5,
                       label=f"generated, highest {pct} of r (r ≥ {tails.high_cut:.3g})"),
            ]
            fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.91), ncol=3,
                       fontsize=13, frameon=False,
                       title="under/overflow in the first/last bin", title_fontsize=10)
            save_figure(fig, path)
    return tails


def _probabilities(d: np.ndarray, name: str) -> np.ndarray:
    a = finite_sample(d, name)
    n_out = int(np.count_nonzero((a < 0) | (a > 1)))
    if n_out:
        raise ValueError(f"{name} has {n_out} value(s) outside [0, 1]; pass probabilities")
    return a


def plot_score_distributions(
    d_mc: np.ndarray,
    d_gen: np.ndarray,
    path: str | os.PathLike[str],
    *,
    n_bins: int = 50,
    mc_label: str = "MC",
    gen_label: str = "generated",
) -> None:
    """Classifier output D for MC and generated events, with a calibration ratio panel.

    Top: normalised distributions of D over uniform bins spanning all scores (a confused
    classifier piles up near D = ½, so the range follows the data rather than [0, 1]), MC grey
    filled, generated blue with Poisson error bars; dotted line at D = ½. Bottom (log scale):
    the ratio generated/MC per bin with the propagated errors of both samples, and the dashed
    curve D/(1 − D) that a calibrated classifier trained on equal class sizes must follow
    (Bayes: p_gen(D)/p_MC(D) = D/(1 − D)); points off the curve mean the r(x) = D/(1 − D)
    estimate is biased there. Arrows mark points beyond the panel.

    Arguments:
        d_mc: classifier outputs for MC events, shape (N,), in [0, 1].
        d_gen: classifier outputs for generated events, shape (M,), in [0, 1].
        path: PNG to write.
        n_bins: number of bins, defaults to 50.
        mc_label, gen_label: legend entries.
    """
    d_mc = _probabilities(d_mc, "d_mc")
    d_gen = _probabilities(d_gen, "d_gen")
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    both = np.concatenate((d_mc, d_gen))
    lo, hi = float(both.min()), float(both.max())
    if hi - lo < 1e-9:
        lo, hi = max(0.0, lo - 0.01), min(1.0, hi + 0.01)
    edges = np.linspace(lo, hi, int(n_bins) + 1)
    c = 0.5 * (edges[1:] + edges[:-1])
    h_mc, h_gen = normalised_hist(d_mc, edges), normalised_hist(d_gen, edges)
    ratio = ratio_with_errors(h_gen.density, h_gen.error, h_mc.density, h_mc.error)
    fine = np.linspace(lo, hi, 400)
    fine_c = np.clip(fine, 1e-6, 1 - 1e-6)
    calib = fine_c / (1 - fine_c)
    ylo = min(0.5, calib.min() / 1.5)
    yhi = max(2.0, calib.max() * 1.5)
    ylim = (max(ylo, 1e-3), min(yhi, 1e3))
    with hep_style(), plt.rc_context({"font.size": 18}):
        fig, (ax, rax) = plt.subplots(2, 1, sharex=True, figsize=(9, 9),
                                      gridspec_kw={"height_ratios": [3, 1.3], "hspace": 0.06})
        with closing(fig):
            ax.stairs(h_mc.density, edges, fill=True, color=MC_COLOR, alpha=0.6, label=mc_label)
            ax.errorbar(c, h_mc.density, yerr=h_mc.error, fmt="none", ecolor=MC_EDGE, lw=1)
            ax.stairs(h_gen.density, edges, color=GEN_COLOR, lw=1.8, label=gen_label)
            ax.errorbar(c, h_gen.density, yerr=h_gen.error, fmt="none", ecolor=GEN_COLOR, lw=1)
            for a in (ax, rax):
                a.axvline(0.5, color="black", ls=":", lw=1.2)
            ax.set_ylabel(r"$1/N\;\mathrm{d}N/\mathrm{d}D$")
            ax.set_ylim(0, 1.3 * max(np.max(h_mc.density + h_mc.error),
                                     np.max(h_gen.density + h_gen.error)))
            ax.legend(loc="upper right", fontsize=14)
            rax.set_yscale("log")
            rax.axhline(1.0, color="black", lw=1)
            rax.plot(fine, calib, color=TAIL_COLOR, ls="--", lw=1.5, label=r"$D/(1-D)$")
            unbounded = (h_mc.density == 0) & (h_gen.density > 0)
            draw_ratio_points(rax, c, ratio.ratio, ratio.error, ylim=ylim, color=GEN_COLOR,
                              unbounded=unbounded, label="gen./MC")
            rax.set_ylim(*ylim)
            _plain_log_labels(rax.yaxis, *ylim)
            rax.set_xlim(edges[0], edges[-1])
            rax.set_ylabel("gen./MC", fontsize=15)
            rax.set_xlabel("classifier output D (generated = 1)")
            rax.legend(loc="upper left", fontsize=11, ncol=2)
            save_figure(fig, path)
