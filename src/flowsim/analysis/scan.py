r"""The luminosity scan: fits, CLs, discovery significance and limits at each luminosity.

For each luminosity :math:`L` of the grid (default 30 log-spaced points, 10-1000 fb⁻¹) the
templates give the yields (:func:`~flowsim.analysis.model.channel_yields`, exactly linear in
:math:`L`), the pyhf workspace of the point is built (returned, ready to be written with
:func:`~flowsim.analysis.model.write_workspace` and refitted with ``pyhf fit``/``pyhf cls``), and
the asymptotic calculator (:mod:`flowsim.analysis.inference`) yields

* :math:`\hat\mu \pm \sigma_{\hat\mu}` (profile-likelihood fit, HESSE error);
* :math:`p_{s+b}`, :math:`p_b`, :math:`\mathrm{CL}_s` of μ = 1 (:math:`\tilde q_\mu`);
* the discovery significance :math:`Z = \sqrt{q_0}`;
* the observed and expected (±1σ, ±2σ) CLs upper limits on μ at 95% CL.

Speed (see the docstrings of :mod:`~flowsim.analysis.likelihood` and
:mod:`~flowsim.analysis.inference` for the formulas and validation): fits are exact bin-by-bin
profile minimisations rather than pyhf SLSQP fits; expected limits come from the closed form in
:math:`\sigma_A`, solved self-consistently; the observed limit is a Brent root of the asymptotic
CLs; each point's fit is warm-started from the previous point's. One pyhf model per scan checks
that the fast likelihood equals pyhf's on the scan's own workspace. A point whose fits fail is
kept with NaN fields and its ``status`` says why.

The fitted signal template may differ from the one that makes the Asimov data: a flow that
generates the signal too (label ``ml_signal``) is fitted with its own signal template
:math:`\varepsilon^{\rm fit}`, :math:`S_i = N_S\,\varepsilon^{\rm fit}_i`, while the data stay
:math:`n_i = N_S\,\varepsilon^{\rm sig}_i + N_B\,\varepsilon^{\rm data}_i` (MC signal and MC
``test_a``, the truth) for every prediction.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from flowsim.analysis.config import AnalysisConfig, alpha_label
from flowsim.analysis.inference import AsymptoticCalculator
from flowsim.analysis.likelihood import BinnedLikelihood, FitError, Profile
from flowsim.analysis.model import (
    CHANNEL,
    POI_BOUNDS,
    ChannelYields,
    build_workspace,
    channel_yields,
    poi_bounds_covering,
    write_workspace,
)  # fmt: skip
from flowsim.analysis.results import TSV_COLUMNS, PointResult, ScanResult
from flowsim.analysis.templates import (
    EnsembleTemplate,
    Template,
    empty_bin_groups,
    merge_empty_bins,
    signal_total,
)  # fmt: skip
from flowsim.io import read_tsv, write_tsv

__all__ = [
    "BACKGROUNDS",
    "check_lumis",
    "failure_reason",
    "lumi_grid",
    "read_scan_tsv",
    "scan_luminosity",
    "scan_observable",
    "workspace_name",
    "write_scan_tsv",
    "write_workspaces",
]

log = logging.getLogger(__name__)

#: Labels of the background predictions: the MC reference, the ML (flow) prediction, the ML
#: prediction with its surrogate uncertainty (the ``bkg_surrogate`` shapesys), and the ML
#: prediction fitted with the flow's own signal template ("ML background and ML signal").
BACKGROUNDS = ("mc", "ml", "ml_surrogate", "ml_signal")

#: Exceptions that mark one point as failed instead of stopping the scan.
_POINT_ERRORS = (FitError, ValueError, ArithmeticError, np.linalg.LinAlgError)


def lumi_grid(low: float = 10.0, high: float = 1000.0, n: int = 30) -> np.ndarray:
    """``n`` log-spaced luminosities from ``low`` to ``high`` fb⁻¹ (inclusive).

    Raises:
        ValueError: a luminosity that is not positive, ``high < low`` or ``n < 1``.
    """
    if not (math.isfinite(low) and low > 0 and math.isfinite(high) and high > 0):
        raise ValueError(f"luminosities must be positive, got ({low}, {high}) fb^-1")
    if high < low:
        raise ValueError(f"luminosity range ({low}, {high}) is decreasing")
    if int(n) != n or n < 1:
        raise ValueError(f"the number of luminosity points must be a positive integer, got {n}")
    return np.geomspace(low, high, int(n))


def check_lumis(lumis: Sequence[float] | np.ndarray) -> np.ndarray:
    """``lumis`` as a 1-D float array of positive luminosities (fb⁻¹), or a ValueError."""
    lumis = np.asarray(lumis, dtype=float)
    if lumis.ndim != 1 or lumis.size == 0:
        raise ValueError("the luminosity grid needs at least one value")
    bad = lumis[~(np.isfinite(lumis) & (lumis > 0))]
    if bad.size:
        raise ValueError(f"luminosities must be positive (fb^-1), got {bad.tolist()}")
    return lumis


def failure_reason(what: str, err: Exception) -> str:
    """A one-line failure reason for the ``status`` column (no tabs or newlines)."""
    return f"{what}: " + " ".join(str(err).split())


def _analyse_point(
    lik: BinnedLikelihood,
    *,
    lumi_fb: float,
    background: str,
    cl: float,
    init: Profile | None,
    poi_bounds: tuple[float, float],
) -> tuple[PointResult, Profile | None, int]:
    """One point's numbers; returns (result, best-fit profile or None, profiles run)."""
    try:
        calc = AsymptoticCalculator(lik, cl=cl, init=init, poi_bounds=poi_bounds)
    except _POINT_ERRORS as err:
        return PointResult.failed(lumi_fb, background, failure_reason("fit failed", err)), None, 0
    problems: list[str] = []
    nan = math.nan
    fit = calc.fit_result()
    p_sb = p_b = cls = z = ul_obs = nan
    ul_exp = [nan] * 5
    try:
        test = calc.hypotest(1.0)
        p_sb, p_b, cls = test.p_sb, test.p_b, test.cls
    except _POINT_ERRORS as err:
        problems.append(failure_reason("CLs", err))
    try:
        z = calc.discovery()
    except _POINT_ERRORS as err:
        problems.append(failure_reason("Z", err))
    try:
        ul_obs = calc.observed_limit()
    except _POINT_ERRORS as err:
        problems.append(failure_reason("observed limit", err))
    for i, n_sigma in enumerate((-2, -1, 0, 1, 2)):
        try:
            ul_exp[i] = calc.expected_limit(n_sigma)
        except _POINT_ERRORS as err:
            problems.append(failure_reason(f"expected limit {n_sigma:+d}", err))
    result = PointResult(
        lumi_fb, background, fit.mu_hat, fit.mu_err, p_sb, p_b, cls, z, ul_obs, *ul_exp,
        status="ok" if not problems else "; ".join(problems),
    )  # fmt: skip
    return result, calc.best, calc.n_profiles


def _analyse_covered_point(
    lik: BinnedLikelihood, *, lumi_fb: float, background: str, cl: float, init: Profile | None
) -> tuple[PointResult, Profile | None, tuple[float, float], int]:
    """One point analysed within POI bounds that hold its limits (:func:`poi_bounds_covering`):
    (0, 10) unless a limit needs more room, then again with wider bounds, so that the numbers
    are those of the workspace that is written. Returns the point, its best fit, the bounds and
    the profiles run."""
    bounds, n_profiles = POI_BOUNDS, 0
    for _ in range(4):  # each round at least doubles the bound; limits stop at MU_SEARCH_MAX
        point, best, used = _analyse_point(
            lik, lumi_fb=lumi_fb, background=background, cl=cl, init=init, poi_bounds=bounds
        )
        n_profiles += used
        wider = poi_bounds_covering(point.limits, bounds)
        if wider == bounds:
            break
        bounds = wider
    return point, best, bounds, n_profiles


def _point_yields(
    signal: Template, data_background: Template, prediction: Template, *, fit_signal: Template | None,
    lumi_fb: float, alpha: float, sigma_b_fb: float, shapesys_rel: float, surrogate_error: np.ndarray | None,
) -> ChannelYields:  # fmt: skip
    r"""The yields of one point (:func:`~flowsim.analysis.model.channel_yields`); with
    ``fit_signal``, its signal sample is :math:`S_i = N_S\,\varepsilon^{\rm fit}_i`
    (:math:`N_S = \alpha\sigma_B L`) and the Asimov data stay those of ``signal``."""
    yields = channel_yields(
        signal, data_background, prediction, lumi_fb=lumi_fb, alpha=alpha, sigma_b_fb=sigma_b_fb,
        shapesys_rel=shapesys_rel, surrogate_error=surrogate_error,
    )  # fmt: skip
    if fit_signal is None:
        return yields
    return yields._replace(signal=fit_signal.yields(signal_total(lumi_fb, sigma_b_fb, alpha)))


def scan_luminosity(
    signal: Template,
    data_background: Template,
    prediction: Template,
    *,
    alpha: float,
    background: str = "mc",
    lumis: Sequence[float] | np.ndarray | None = None,
    sigma_b_fb: float = 1000.0,
    shapesys_rel: float = 0.1,
    cl: float = 0.95,
    empty_bins: str = "merge",
    observable: str = "observable",
    channel: str = CHANNEL,
    check_pyhf: bool = True,
    surrogate_error: np.ndarray | None = None,
    fit_signal: Template | None = None,
) -> ScanResult:
    r"""Scan the luminosity for one observable, signal fraction and background prediction.

    Arguments:
        signal: MC signal template (after the cut, efficiency w.r.t. all signal events); it
            makes the Asimov data, and the fitted signal unless ``fit_signal`` is given.
        data_background: MC background template of the pseudo-data (``test_a``).
        prediction: background prediction template: MC ``test_b`` (reference) or flow events.
        alpha: signal fraction S/B before the cut, positive (0.01 or 0.05 in the paper).
        background: defaults to ``"mc"`` (label of the prediction, one of :data:`BACKGROUNDS`).
        lumis: defaults to None (the paper's grid, :func:`lumi_grid`: 30 points, 10-1000 fb⁻¹).
        sigma_b_fb: defaults to 1000 (background cross-section in fb; N_B = σ_B L).
        shapesys_rel: defaults to 0.1 (10% per-bin background systematic).
        cl: defaults to 0.95 (confidence level of the limits).
        empty_bins: defaults to ``"merge"`` (bins empty in the prediction are merged into a
            neighbour, for all templates, logged); ``"raise"`` refuses them with a ValueError.
        observable: defaults to ``"observable"`` (name used in logs and the result).
        channel: defaults to ``"signal_region"`` (channel name in the workspaces).
        check_pyhf: defaults to True (compare the fast likelihood with pyhf's ``logpdf`` on the
            first successful point's workspace; ~20 ms).
        surrogate_error: defaults to None (no surrogate uncertainty); else the per-bin absolute
            uncertainty of the prediction's efficiency, passed to every
            :func:`~flowsim.analysis.model.channel_yields` (one value per bin of the binning
            the yields are built with: merge empty bins before, as :func:`scan_observable` does).
        fit_signal: defaults to None (the model's signal sample is ``signal``); else the signal
            template of the model, e.g. the flow's generated signal (same edges; the Asimov data
            stay ``signal`` + ``data_background``): :math:`S_i = N_S\,\varepsilon^{\rm fit}_i`.

    Returns:
        A :class:`~flowsim.analysis.results.ScanResult`: one PointResult and one workspace per
        luminosity, in grid order.

    Raises:
        ValueError: a bad argument (non-positive alpha or luminosity, unknown label, templates
            with different binning, empty bins with ``empty_bins="raise"``).
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"the signal fraction alpha = S/B must be positive, got {alpha}")
    if not 0.0 < cl < 1.0:
        raise ValueError(f"the confidence level must lie in (0, 1), got {cl}")
    if empty_bins not in ("merge", "raise"):
        raise ValueError(f"empty_bins must be 'merge' or 'raise', got {empty_bins!r}")
    lumis = lumi_grid() if lumis is None else check_lumis(lumis)
    if fit_signal is not None and not np.array_equal(fit_signal.edges, signal.edges):
        raise ValueError(f"{observable} {background}: the fitted signal template has other bin edges than the signal")
    if empty_bins == "merge":
        others = (signal, data_background) if fit_signal is None else (signal, data_background, fit_signal)
        prediction, signal, data_background, *merged = merge_empty_bins(prediction, *others)
        fit_signal = merged[0] if merged else None
    # builds the first point's yields now, so bad arguments fail before the loop
    _point_yields(
        signal, data_background, prediction, fit_signal=fit_signal, lumi_fb=float(lumis[0]), alpha=alpha,
        sigma_b_fb=sigma_b_fb, shapesys_rel=shapesys_rel, surrogate_error=surrogate_error,
    )  # fmt: skip
    points: list[PointResult] = []
    workspaces: list[dict] = []
    init: Profile | None = None
    checked = not check_pyhf
    n_profiles = 0
    tag = f"{observable} alpha={alpha:g} {background}"
    for i, lumi in enumerate(lumis, start=1):
        yields = _point_yields(
            signal, data_background, prediction, fit_signal=fit_signal, lumi_fb=float(lumi), alpha=alpha,
            sigma_b_fb=sigma_b_fb, shapesys_rel=shapesys_rel, surrogate_error=surrogate_error,
        )  # fmt: skip
        lik = BinnedLikelihood.from_yields(yields)
        point, best, bounds, used = _analyse_covered_point(
            lik, lumi_fb=float(lumi), background=background, cl=cl, init=init
        )
        workspace = build_workspace(yields, channel=channel, poi_bounds=bounds)
        n_profiles += used
        if best is not None:
            init = best
            if not checked:
                lik.check_against_pyhf(workspace, best)
                checked = True
        points.append(point)
        workspaces.append(workspace)
        log.info(
            "%s: point %d/%d L=%.4g fb^-1 mu_hat=%.4f ul_exp=%.4g status=%s",
            tag, i, lumis.size, lumi, point.mu_hat, point.ul_exp, point.status,
        )  # fmt: skip
    n_failed = sum(p.status != "ok" for p in points)
    if n_failed:
        log.warning("%s: %d of %d points with problems (see status)", tag, n_failed, len(points))
    return ScanResult(
        observable, float(alpha), background, tuple(points), tuple(workspaces), n_profiles
    )


def _check_signals(
    signals: Mapping[str, Template], predictions: Mapping[str, object], edges: np.ndarray, observable: str
) -> None:
    """Every per-prediction signal template belongs to a prediction and has the binning ``edges``."""
    unknown = sorted(set(signals) - set(predictions))
    if unknown:
        raise ValueError(
            f"{observable}: signal templates for {unknown}, which are not predictions {list(predictions)}"
        )
    for label, template in signals.items():
        if not np.array_equal(template.edges, edges):
            raise ValueError(f"{observable}: the {label} signal template has other bin edges than the MC signal")


def scan_observable(
    signal: Template,
    data_background: Template,
    predictions: Mapping[str, Template | EnsembleTemplate],
    *,
    config: AnalysisConfig,
    observable: str,
    check_pyhf: bool = True,
    signals: Mapping[str, Template] | None = None,
) -> list[ScanResult]:
    """All scans of one observable: every α of ``config`` × every prediction (``"mc"``, ``"ml"``, ...).

    Arguments:
        signal, data_background: as :func:`scan_luminosity` (``signal``: the MC signal, which
            makes the Asimov data of every prediction and is the fitted signal by default).
        predictions: label (one of :data:`BACKGROUNDS`) -> background-prediction template, or the
            :class:`~flowsim.analysis.templates.EnsembleTemplate` of a surrogate ensemble. An
            ensemble of K >= 2 members is scanned twice: its pooled template as ``label``, and
            with its surrogate uncertainty (the ``bkg_surrogate`` shapesys) as
            ``label + "_surrogate"``.
        config: the analysis settings (luminosity grid, α values, σ_B, systematic, CL).
        observable: the observable's name.
        check_pyhf: defaults to True (see :func:`scan_luminosity`).
        signals: defaults to None (every prediction is fitted with ``signal``); else label of a
            prediction -> the signal template it is fitted with instead (``fit_signal`` of
            :func:`scan_luminosity`, e.g. ``{"ml_signal": flow signal}``; an ensemble's
            ``_surrogate`` scan uses its label's).

    Bins empty in *any* prediction are merged (``config.empty_bins == "merge"``) for all
    predictions alike (an ensemble's members with them) and for every signal template, so the
    scans share one binning and one Asimov data set; the signal templates do not decide which
    bins merge.

    Returns:
        ScanResults ordered by α, then by the order of ``predictions``.

    Raises:
        ValueError: templates with different edges, or a signal template for no prediction.
    """
    signals = dict(signals or {})
    _check_signals(signals, predictions, signal.edges, observable)
    pooled = [p.pooled if isinstance(p, EnsembleTemplate) else p for p in predictions.values()]
    if config.empty_bins == "merge" and pooled:
        for other in (*pooled[1:], signal, data_background):
            if not np.array_equal(other.edges, pooled[0].edges):
                raise ValueError("the signal, data and background templates have different bin edges")
        groups = empty_bin_groups(*pooled)  # empty in any prediction (weighted MC included)
        if groups is not None:
            signal, data_background = signal.rebinned(groups), data_background.rebinned(groups)
            predictions = {label: p.rebinned(groups) for label, p in predictions.items()}
            signals = {label: s.rebinned(groups) for label, s in signals.items()}
    scanned: list[tuple[str, Template, np.ndarray | None, Template | None]] = []
    for label, prediction in predictions.items():
        fit_signal = signals.get(label)
        if not isinstance(prediction, EnsembleTemplate):
            scanned.append((label, prediction, None, fit_signal))
            continue
        scanned.append((label, prediction.pooled, None, fit_signal))
        if prediction.size > 1:
            scanned.append((f"{label}_surrogate", prediction.pooled, prediction.surrogate_error(), fit_signal))
    return [
        scan_luminosity(
            signal, data_background, prediction, alpha=alpha, background=label,
            lumis=config.lumis(), sigma_b_fb=config.sigma_b_fb, shapesys_rel=config.shapesys_rel,
            cl=config.cl, empty_bins=config.empty_bins, observable=observable,
            check_pyhf=check_pyhf, surrogate_error=surrogate_error, fit_signal=fit_signal,
        )  # fmt: skip
        for alpha in config.alphas
        for label, prediction, surrogate_error, fit_signal in scanned
    ]


def write_scan_tsv(path: str | os.PathLike[str], results: Iterable[PointResult]) -> None:
    """Write points as a TSV with the header :data:`~flowsim.analysis.results.TSV_COLUMNS`
    (atomically; floats at full precision, NaN as ``nan``)."""
    write_tsv(path, [p._asdict() for p in results], TSV_COLUMNS)


def read_scan_tsv(path: str | os.PathLike[str]) -> list[PointResult]:
    """Read a TSV written by :func:`write_scan_tsv` back into PointResults."""
    return [PointResult.from_row(row) for row in read_tsv(path)]


def workspace_name(scan: ScanResult, lumi_fb: float) -> str:
    """File name of one point's workspace, e.g. ``score_alpha0.01_mc_L10.json``."""
    return f"{scan.observable}_alpha{alpha_label(scan.alpha)}_{scan.background}_L{lumi_fb:.6g}.json"


def write_workspaces(directory: str | os.PathLike[str], scan: ScanResult) -> list[Path]:
    """Write every point's workspace of ``scan`` into ``directory`` (see :func:`workspace_name`)."""
    paths = []
    for point, workspace in zip(scan.points, scan.workspaces, strict=True):
        path = Path(directory) / workspace_name(scan, point.lumi_fb)
        write_workspace(path, workspace)
        paths.append(path)
    return paths
