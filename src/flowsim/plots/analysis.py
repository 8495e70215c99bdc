r"""Plots of the search: classifier scores (paper Figs. 14-15) and the luminosity scans (Figs. 19-22).

* :func:`plot_classifier_scores`: normalised score distributions of MC signal, MC background and
  the generated ("ML") background, the cut as a vertical line, and the ML/MC ratio panel;
* :func:`plot_mu_hat`: :math:`\hat\mu \pm \sigma_{\hat\mu}` against the luminosity for the MC
  reference and the ML background (injected μ = 1 as a line);
* :func:`plot_pvalues`: :math:`p_{s+b}`, :math:`p_b` and CLs of μ = 1 against the luminosity,
  with the 5% exclusion level;
* :func:`plot_upper_limits`: the 95% CL upper limit on μ against the luminosity: the MC
  reference's expected limit with its ±1σ (green) and ±2σ (yellow) bands, its observed limit,
  and the ML background's observed and expected limits (and the expected limit with the
  surrogate uncertainty, for a run with an ensemble);
* :func:`plot_templates`: the fitted templates after the cut, MC reference against the ML
  prediction with its statistical error and its surrogate (ensemble) uncertainty, with the
  ML/MC ratio.

The three scan plots also draw the ``ml_signal`` scan (ML background *and* the flow's signal
template in the fit, :data:`SIGNAL_FLOW_COLOR`) where the points hold one, and are unchanged
where they do not.

Failed scan points (NaN values) are left out of the lines and their number is printed on the
plot, never hidden.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np

from flowsim.analysis.results import PointResult
from flowsim.metrics.histograms import normalised_hist, ratio_with_errors
from flowsim.plots.distributions import draw_ratio_points
from flowsim.plots.labels import feature_label
from flowsim.plots.style import ALT_COLOR, DENSITY_LABEL, GEN_COLOR, MC_COLOR, MC_EDGE, hep_style, save_figure

__all__ = [
    "LUMI_LABEL",
    "TemplatePanel",
    "plot_classifier_scores",
    "plot_mu_hat",
    "plot_pvalues",
    "plot_templates",
    "plot_upper_limits",
    "scan_title",
]

LUMI_LABEL = r"integrated luminosity $L$ [fb$^{-1}$]"
SIGNAL_COLOR = ALT_COLOR
#: The ML prediction with the surrogate (ensemble) uncertainty in the fit.
SURROGATE_COLOR = "#964a8b"
#: The ML prediction fitted with the flow's own signal template (``ml_signal``).
SIGNAL_FLOW_COLOR = "#e42536"
#: Legend name of the ``ml_signal`` scan.
SIGNAL_FLOW_NAME = "ML background and signal"
BAND_1SIGMA = "#00cc00"
BAND_2SIGMA = "#ffcc00"
#: p-values below this (e.g. p_b = 0 at a 10σ excess) are drawn at it on the log axis.
P_FLOOR = 1e-12


def scan_title(observable: str, alpha: float, run: str) -> str:
    """A one-line description of a scan, e.g. ``fit to score, α = 1%, ML: glow``."""
    name = "classifier score" if observable == "score" else observable
    return rf"fit to {name}, $\alpha = S/B = {100 * alpha:g}\%$, ML: {run}"


def plot_classifier_scores(
    signal: np.ndarray,
    mc_background: np.ndarray,
    ml_background: np.ndarray,
    path: str | os.PathLike[str],
    *,
    cut: float,
    run: str,
    n_bins: int = 50,
    ratio_range: tuple[float, float] = (0.5, 1.5),
) -> None:
    """Normalised score distributions with the ML/MC background ratio (paper Figs. 14-15).

    Arguments:
        signal, mc_background, ml_background: classifier scores in [0, 1] of every event.
        path: PNG to write.
        cut: the selection cut, drawn as a vertical line.
        run: the flow run that generated ``ml_background`` (legend).
        n_bins: defaults to 50 (uniform bins on [0, 1]).
        ratio_range: defaults to (0.5, 1.5) (y-range of the ratio panel; arrows beyond).
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    h_sig = normalised_hist(signal, edges)
    h_mc = normalised_hist(mc_background, edges)
    h_ml = normalised_hist(ml_background, edges)
    ratio = ratio_with_errors(h_ml.density, h_ml.error, h_mc.density, h_mc.error)
    with hep_style():
        fig, (ax, rax) = plt.subplots(
            2, 1, figsize=(8, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
        )
        ax.stairs(h_mc.density, edges, fill=True, color=MC_COLOR, ec=MC_EDGE,
                  label=f"MC background ({h_mc.total:.0f} events)")  # fmt: skip
        ax.stairs(h_sig.density, edges, color=SIGNAL_COLOR, lw=2,
                  label=f"MC signal ({h_sig.total:.0f} events)")  # fmt: skip
        ax.stairs(h_ml.density, edges, color=GEN_COLOR, lw=2,
                  label=f"ML background, {run} ({h_ml.total:.0f} events)")  # fmt: skip
        ax.errorbar(centres, h_ml.density, yerr=h_ml.error, fmt="none", color=GEN_COLOR, lw=1)
        for axis in (ax, rax):
            axis.axvline(cut, color="k", ls="--", lw=1.2)
        ax.text(cut, 0.03, f" cut {cut:g}", transform=ax.get_xaxis_transform(), va="bottom")
        ax.set_ylabel(DENSITY_LABEL)
        ax.set_yscale("log")
        positive = np.concatenate([h.density[h.density > 0] for h in (h_sig, h_mc, h_ml)])
        if positive.size:  # room above the histograms for the legend
            ax.set_ylim(positive.min() / 3, positive.max() * 300)
        ax.legend(loc="upper left", fontsize="x-small", frameon=False)
        rax.axhline(1.0, color=MC_EDGE, lw=1)
        rax.fill_between(centres, 1 - ratio.error_den, 1 + ratio.error_den, step="mid",
                         color=MC_COLOR, alpha=0.5, lw=0)  # fmt: skip
        draw_ratio_points(rax, centres, ratio.ratio, ratio.error_num, ylim=ratio_range,
                          color=GEN_COLOR)  # fmt: skip
        rax.set_ylim(*ratio_range)
        rax.set_ylabel("ML / MC")
        rax.set_xlabel(r"classifier score $D(x)$")
        rax.set_xlim(0.0, 1.0)
        save_figure(fig, path)


def _split(points: Sequence[PointResult]) -> dict[str, list[PointResult]]:
    out: dict[str, list[PointResult]] = {"mc": [], "ml": []}
    for p in points:
        out.setdefault(p.background, []).append(p)
    return out


def _column(points: Sequence[PointResult], name: str) -> np.ndarray:
    return np.array([getattr(p, name) for p in points], dtype=float)


def _failed_note(ax: plt.Axes, points: Sequence[PointResult]) -> None:
    failed = sum(p.status != "ok" for p in points)
    if failed:
        ax.text(0.02, 0.02, f"{failed} point(s) failed (see status in the TSV)",
                transform=ax.transAxes, color="red", fontsize="small")  # fmt: skip


def _lumi_axis(ax: plt.Axes, points: Sequence[PointResult]) -> None:
    lumis = _column(points, "lumi_fb")
    ax.set_xscale("log")
    if lumis.size:
        ax.set_xlim(lumis.min() / 1.1, lumis.max() * 1.1)
    ax.set_xlabel(LUMI_LABEL)


def plot_mu_hat(
    points: Sequence[PointResult], path: str | os.PathLike[str], *, title: str
) -> None:
    r"""Best-fit μ ± HESSE error against the luminosity, MC reference and ML (paper Fig. 19)."""
    by = _split(points)
    with hep_style():
        fig, ax = plt.subplots(figsize=(8, 6))
        ax.axhline(1.0, color="k", lw=1, ls=":", label=r"injected $\mu = 1$")
        for label, color, shift, name in (
            ("mc", MC_EDGE, 1 / 1.02, "MC reference"), ("ml", GEN_COLOR, 1.02, "ML background"),
            ("ml_surrogate", SURROGATE_COLOR, 1.04, "ML, with surrogate uncertainty"),
            ("ml_signal", SIGNAL_FLOW_COLOR, 1.06, SIGNAL_FLOW_NAME),
        ):  # fmt: skip
            pts = by.get(label, [])
            if pts:
                ax.errorbar(_column(pts, "lumi_fb") * shift, _column(pts, "mu_hat"),
                            yerr=_column(pts, "mu_err"), fmt="o", ms=4, color=color, label=name)  # fmt: skip
        _lumi_axis(ax, points)
        ax.set_ylabel(r"best-fit signal strength $\hat\mu$")
        ax.set_title(title, fontsize="medium")
        ax.legend(fontsize="small")
        _failed_note(ax, points)
        save_figure(fig, path)


#: The scans of the p-value plot: label, line style, marker, legend name.
_PVALUE_SERIES = (("mc", "--", None, "MC reference"), ("ml", "-", "o", "ML"), ("ml_signal", ":", "s", SIGNAL_FLOW_NAME))


def plot_pvalues(
    points: Sequence[PointResult], path: str | os.PathLike[str], *, title: str, cl: float = 0.95
) -> None:
    r""":math:`p_{s+b}`, :math:`p_b` and CLs of μ = 1 against the luminosity (paper Fig. 20)."""
    by = _split(points)
    with hep_style():
        fig, ax = plt.subplots(figsize=(8, 6))
        for column, color, name in (
            ("p_sb", "#e42536", r"$p_{s+b}$"), ("p_b", "#5790fc", r"$p_b$"),
            ("cls", "k", r"CL$_s$"),
        ):  # fmt: skip
            for label, style, marker, series in _PVALUE_SERIES:
                pts = by.get(label, [])
                if pts:
                    values = _column(pts, column)
                    ax.plot(_column(pts, "lumi_fb"), np.clip(values, P_FLOOR, None), style,
                            color=color, marker=marker, ms=3, label=f"{name}, {series}")  # fmt: skip
        ax.axhline(1.0 - cl, color="grey", lw=1, ls=":")
        ax.text(0.98, 1.0 - cl, f" {100 * (1 - cl):g}%", transform=ax.get_yaxis_transform(),
                va="bottom", ha="right", color="grey")  # fmt: skip
        ax.set_yscale("log")
        values = np.concatenate([_column(points, c) for c in ("p_sb", "p_b", "cls")])
        positive = values[np.isfinite(values) & (values > 0)]
        ax.set_ylim(max(P_FLOOR, min(1e-4, positive.min() / 5)) if positive.size else 1e-4, 2.0)
        n_zero = int(np.count_nonzero(values < P_FLOOR))
        if n_zero:
            ax.text(0.98, 0.02, f"{n_zero} value(s) below {P_FLOOR:g} drawn at the floor",
                    transform=ax.transAxes, ha="right", fontsize="x-small")  # fmt: skip
        _lumi_axis(ax, points)
        ax.set_ylabel(r"$p$-value of $\mu = 1$")
        ax.set_title(title, fontsize="medium")
        ax.legend(fontsize="x-small", ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))
        _failed_note(ax, points)
        save_figure(fig, path)


def plot_upper_limits(
    points: Sequence[PointResult], path: str | os.PathLike[str], *, title: str, cl: float = 0.95
) -> None:
    """Upper limits on μ against the luminosity with the MC reference's bands (Figs. 21-22)."""
    by = _split(points)
    mc, ml, ml_surrogate = by.get("mc", []), by.get("ml", []), by.get("ml_surrogate", [])
    ml_signal = by.get("ml_signal", [])
    with hep_style():
        fig, ax = plt.subplots(figsize=(8, 6))
        if mc:
            lumi = _column(mc, "lumi_fb")
            ax.fill_between(lumi, _column(mc, "ul_exp_m2"), _column(mc, "ul_exp_p2"),
                            color=BAND_2SIGMA, lw=0, label=r"MC expected $\pm 2\sigma$")  # fmt: skip
            ax.fill_between(lumi, _column(mc, "ul_exp_m1"), _column(mc, "ul_exp_p1"),
                            color=BAND_1SIGMA, lw=0, label=r"MC expected $\pm 1\sigma$")  # fmt: skip
            ax.plot(lumi, _column(mc, "ul_exp"), "k--", lw=1.5, label="MC expected")
            ax.plot(lumi, _column(mc, "ul_obs"), "k-", lw=1.5, label="MC observed (Asimov)")
        if ml:
            lumi = _column(ml, "lumi_fb")
            ax.plot(lumi, _column(ml, "ul_obs"), "-o", ms=3, color=GEN_COLOR, lw=1.5,
                    label="ML observed (Asimov)")  # fmt: skip
            ax.plot(lumi, _column(ml, "ul_exp"), "--", color=GEN_COLOR, lw=1.5, label="ML expected")
        if ml_surrogate:
            lumi = _column(ml_surrogate, "lumi_fb")
            ax.plot(lumi, _column(ml_surrogate, "ul_exp"), "--", color=SURROGATE_COLOR, lw=1.5,
                    label="ML expected, with surrogate unc.")  # fmt: skip
        if ml_signal:
            lumi = _column(ml_signal, "lumi_fb")
            ax.plot(lumi, _column(ml_signal, "ul_obs"), "-s", ms=3, color=SIGNAL_FLOW_COLOR, lw=1.5,
                    label=f"{SIGNAL_FLOW_NAME}, observed (Asimov)")  # fmt: skip
            ax.plot(lumi, _column(ml_signal, "ul_exp"), ":", color=SIGNAL_FLOW_COLOR, lw=1.5,
                    label=f"{SIGNAL_FLOW_NAME}, expected")  # fmt: skip
        ax.axhline(1.0, color="grey", lw=1, ls=":")
        ax.set_yscale("log")
        _lumi_axis(ax, points)
        limits = np.concatenate([_column(points, c) for c in ("ul_obs", "ul_exp_m2", "ul_exp_p2")])
        limits = limits[np.isfinite(limits) & (limits > 0)]
        low, high = (limits.min(), limits.max()) if limits.size else (0.1, 10.0)
        ax.set_ylim(min(low, 1.0) / 1.5, high * 8)  # room above the curves for the legend
        ax.set_ylabel(rf"{100 * cl:g}% CL upper limit on $\mu$")
        ax.set_title(title, fontsize="medium")
        ax.legend(fontsize="x-small", ncol=2, loc="upper right", frameon=False)
        _failed_note(ax, points)
        save_figure(fig, path)


class TemplatePanel(NamedTuple):
    """One observable's templates after the cut, as efficiencies per bin (cut and bin).

    ``ml_surrogate`` is the per-bin surrogate uncertainty of the ML efficiency (None without
    an ensemble); ``n_mc``, ``n_ml`` the events before the cut behind each template.
    """

    observable: str
    edges: np.ndarray
    mc: np.ndarray
    mc_error: np.ndarray
    ml: np.ndarray
    ml_error: np.ndarray
    ml_surrogate: np.ndarray | None
    n_mc: int
    n_ml: int
    members: int


def plot_templates(
    panels: Sequence[TemplatePanel], path: str | os.PathLike[str], *, run: str,
    ratio_range: tuple[float, float] = (0.8, 1.2),
) -> None:  # fmt: skip
    r"""The fitted templates, MC reference against the ML prediction, one column per observable.

    Top: efficiency per unit of the observable (:math:`\varepsilon_i/\Delta x_i`) of the MC
    reference (grey, its statistical band) and of the ML prediction (points, statistical error;
    the surrogate uncertainty as a band around them). Bottom: ML/MC with the MC band around 1.
    """
    with hep_style():
        fig, axes = plt.subplots(
            2, len(panels), figsize=(8 * len(panels), 7.5), squeeze=False,
            gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05, "wspace": 0.3},
        )  # fmt: skip
        for column, panel in enumerate(panels):
            ax, rax = axes[0, column], axes[1, column]
            edges = np.asarray(panel.edges, dtype=float)
            width, centres = np.diff(edges), 0.5 * (edges[1:] + edges[:-1])
            ax.stairs(panel.mc / width, edges, fill=True, color=MC_COLOR, ec=MC_EDGE,
                      label=f"MC reference ({panel.n_mc:.3g} events)")  # fmt: skip
            ax.stairs((panel.mc + panel.mc_error) / width, edges, baseline=(panel.mc - panel.mc_error) / width,
                      fill=True, color=MC_EDGE, alpha=0.3, lw=0)  # fmt: skip
            members = f", {panel.members} members" if panel.members > 1 else ""
            ax.errorbar(centres, panel.ml / width, yerr=panel.ml_error / width, fmt="o", ms=3,
                        color=GEN_COLOR, label=f"ML, {run} ({panel.n_ml:.3g} events{members})")  # fmt: skip
            ratio = ratio_with_errors(panel.ml, panel.ml_error, panel.mc, panel.mc_error)
            if panel.ml_surrogate is not None:
                band = panel.ml_surrogate
                ax.stairs((panel.ml + band) / width, edges, baseline=(panel.ml - band) / width, fill=True,
                          color=SURROGATE_COLOR, alpha=0.35, lw=0, label="surrogate uncertainty")  # fmt: skip
                rel = np.divide(band, panel.mc, out=np.full_like(band, np.nan), where=panel.mc > 0)
                rax.stairs(ratio.ratio + rel, edges, baseline=ratio.ratio - rel, fill=True,
                           color=SURROGATE_COLOR, alpha=0.35, lw=0)  # fmt: skip
            rax.axhline(1.0, color=MC_EDGE, lw=1)
            rax.fill_between(centres, 1 - ratio.error_den, 1 + ratio.error_den, step="mid",
                             color=MC_COLOR, alpha=0.5, lw=0)  # fmt: skip
            draw_ratio_points(rax, centres, ratio.ratio, ratio.error_num, ylim=ratio_range, color=GEN_COLOR)
            rax.set_ylim(*ratio_range)
            rax.set_xlim(edges[0], edges[-1])
            ax.set_xlim(edges[0], edges[-1])
            ax.set_ylabel(r"$\varepsilon_i / \Delta x_i$")
            ax.set_yscale("log")
            positive = panel.mc[panel.mc > 0] / width[panel.mc > 0]
            if positive.size:  # room above the histograms for the legend
                ax.set_ylim(positive.min() / 3, positive.max() * 30)
            rax.set_ylabel("ML / MC")
            score = panel.observable == "score"
            rax.set_xlabel(r"classifier score $D(x)$" if score else feature_label(panel.observable))
            ax.legend(fontsize="x-small", loc="upper right")
            ax.tick_params(labelbottom=False)
        save_figure(fig, path)
