r"""What a generated event is worth in the fit: spurious signal and coverage of a background model.

The paper replaces the MC background template by one filled with flow-generated events. Two
standard tests tell whether such a background model can be trusted in the S+B fit of
:mod:`flowsim.analysis.model` (:math:`\nu_i = \mu S_i + \beta_i\gamma_i[\eta_i] B_i`):

* **Spurious signal** (:func:`spurious_signal_scan`): the S+B model whose background is the
  prediction is fitted to background-only data with no signal, the exact expected counts of a
  high-statistics truth template, :math:`n_i = N_B\,\varepsilon^{\rm truth}_i` with
  :math:`N_B = \sigma_B L` (Asimov-like, not fluctuated). A perfect background model gives
  :math:`\hat\mu = 0`; a mismodelled one fakes a signal :math:`\hat\mu_{\rm spur}` (negative
  allowed), quoted with :math:`\sigma_\mu`, half the width of the 1σ profile-likelihood interval
  (:math:`2\Delta p = 1`), the significance :math:`\hat\mu/\sigma_\mu` and the signal events
  it corresponds to after the cut, :math:`n_{\rm spur} = \hat\mu \sum_i S_i`.
* **Coverage** (:func:`coverage_scan`): R replicas, each with its own background prediction (a
  flow trained on its own training set) and its own Poisson pseudo-data around
  :math:`N_B\varepsilon^{\rm truth}_i + \mu_{\rm true} S_i`; the fraction of replicas whose
  profile-likelihood interval at ``level`` (68%) contains :math:`\mu_{\rm true}`, with the
  binomial error :math:`\sqrt{f(1-f)/n}`. A background model whose uncertainties cover its
  errors gives ``level``; an overconfident one under-covers.

Intervals are those of :func:`flowsim.analysis.inference.profile_interval` within
:data:`MU_BOUNDS` = (-10, 10).

Empty bins: the model needs a predicted background in every bin, so bins empty in the
prediction (the pooled one of an ensemble) or in the truth are merged into a neighbour for all
templates alike (:func:`~flowsim.analysis.templates.empty_bin_groups`), once per prediction;
templates can come straight from files. Pseudo-data are drawn on the original binning and summed
into the merged bins, so every background model of a replica sees the same events.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy.stats import chi2

from flowsim.analysis.inference import profile_interval
from flowsim.analysis.likelihood import BinnedLikelihood, FitError, Profile
from flowsim.analysis.model import channel_yields
from flowsim.analysis.scan import check_lumis, failure_reason
from flowsim.analysis.templates import (
    EnsembleTemplate,
    Template,
    background_total,
    empty_bin_groups,
    signal_total,
)  # fmt: skip

__all__ = [
    "COVERAGE_COLUMNS",
    "MU_BOUNDS",
    "ONE_SIGMA",
    "SPURIOUS_COLUMNS",
    "Coverage",
    "SpuriousSignal",
    "coverage_scan",
    "interval_covers",
    "pseudo_data",
    "spurious_signal_scan",
]

log = logging.getLogger(__name__)

#: Range of μ searched by the fits and intervals here (negative μ allowed: a spurious signal or
#: a downward fluctuation can be negative).
MU_BOUNDS = (-10.0, 10.0)
#: Confidence level of the 1σ interval, :math:`2\Delta p = 1` (0.6827): its half-width is the
#: Gaussian σ of a parabolic profile.
ONE_SIGMA = float(chi2.cdf(1.0, 1))

#: Exceptions that mark one fit as failed instead of stopping a scan.
_FIT_ERRORS = (FitError, ValueError, ArithmeticError, np.linalg.LinAlgError)


@dataclass(frozen=True)
class SpuriousSignal:
    r"""The spurious signal of one background prediction at one luminosity.

    Attributes:
        lumi_fb: integrated luminosity (fb⁻¹).
        background: label of the prediction (e.g. ``"mc"``, ``"ml"``, ``"ml_surrogate"``).
        mu_hat: :math:`\hat\mu_{\rm spur}`, the μ fitted to background-only data (within
            :data:`MU_BOUNDS`).
        sigma_mu: half the width of its 1σ profile-likelihood interval.
        significance: ``mu_hat / sigma_mu``.
        n_signal: :math:`\hat\mu \sum_i S_i`, the signal events after the cut it fakes.
        status: ``"ok"``; or why the fit failed (the numbers are then NaN); or that the
            interval was cut at a bound or where the model ends (the numbers are kept, but
            ``sigma_mu`` is then too small).
    """

    lumi_fb: float
    background: str
    mu_hat: float
    sigma_mu: float
    significance: float
    n_signal: float
    status: str

    def as_row(self) -> dict[str, Any]:
        """The fields by name, in :data:`SPURIOUS_COLUMNS` order (a TSV row)."""
        return asdict(self)


@dataclass(frozen=True)
class Coverage:
    """The coverage of one background model's intervals at one luminosity.

    Attributes:
        lumi_fb: integrated luminosity (fb⁻¹).
        background: label of the predictions.
        n_replicas: replicas tried.
        n_covered: replicas whose interval contains the true μ.
        n_failed: replicas whose fit failed (left out of :attr:`fraction`).
    """

    lumi_fb: float
    background: str
    n_replicas: int
    n_covered: int
    n_failed: int

    @property
    def n_ok(self) -> int:
        """Replicas with a successful fit."""
        return self.n_replicas - self.n_failed

    @property
    def fraction(self) -> float:
        """Coverage :math:`f` = covered / successful replicas (NaN if none succeeded)."""
        return self.n_covered / self.n_ok if self.n_ok else math.nan

    @property
    def error(self) -> float:
        r"""Binomial error :math:`\sqrt{f(1-f)/n}` over the n successful replicas (0 at f = 0
        or 1; NaN if none succeeded)."""
        f = self.fraction
        return math.sqrt(f * (1.0 - f) / self.n_ok) if self.n_ok else math.nan

    def as_row(self) -> dict[str, Any]:
        """The fields, then ``coverage`` (:attr:`fraction`) and ``coverage_error``
        (:attr:`error`), in :data:`COVERAGE_COLUMNS` order."""
        return {**asdict(self), "coverage": self.fraction, "coverage_error": self.error}


#: Column order of a spurious-signal TSV.
SPURIOUS_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SpuriousSignal))
#: Column order of a coverage TSV.
COVERAGE_COLUMNS: tuple[str, ...] = (*(f.name for f in fields(Coverage)), "coverage", "coverage_error")


# shared preparation ---------------------------------------------------------------------------
def _merged(
    signal: Template, truth: Template, prediction: Template | EnsembleTemplate
) -> tuple[list[list[int]] | None, Template, Template, Template | EnsembleTemplate]:
    """Bins empty in the (pooled) prediction or in the truth merged into a neighbour, in every
    template alike; returns the groups (None: nothing merged) and the merged templates."""
    for other, what in ((truth, "truth"), (prediction, "prediction")):
        if not np.array_equal(other.edges, signal.edges):
            raise ValueError(f"the {what} template has other bin edges than the signal template")
    pooled = prediction.pooled if isinstance(prediction, EnsembleTemplate) else prediction
    # a bin counts as empty if either is: the union of both templates' empty bins
    fewest = np.minimum(pooled.counts, truth.counts)
    groups = empty_bin_groups(Template(signal.edges, fewest, min(pooled.n_total, truth.n_total)))
    if groups is None:
        return None, signal, truth, prediction
    return groups, signal.rebinned(groups), truth.rebinned(groups), prediction.rebinned(groups)


def _background_model(
    prediction: Template | EnsembleTemplate, with_surrogate: bool
) -> tuple[Template, np.ndarray | None]:
    """The template the fit uses (an ensemble's pooled one) and, with ``with_surrogate``, the
    surrogate uncertainty of its efficiency (an ensemble's member spread)."""
    if not isinstance(prediction, EnsembleTemplate):
        if with_surrogate:
            raise ValueError("with_surrogate needs EnsembleTemplate predictions (member spread)")
        return prediction, None
    return prediction.pooled, prediction.surrogate_error() if with_surrogate else None


def _check_rates(alpha: float, sigma_b_fb: float, lumis: np.ndarray) -> None:
    """Bad cross-sections or signal fractions fail before any fit (not as failed points)."""
    for lumi in lumis:
        background_total(float(lumi), sigma_b_fb)
        signal_total(float(lumi), sigma_b_fb, alpha)


# spurious signal ------------------------------------------------------------------------------
def spurious_signal_scan(
    signal: Template,
    truth: Template,
    prediction: Template | EnsembleTemplate,
    *,
    lumis: Sequence[float] | np.ndarray,
    alpha: float,
    sigma_b_fb: float,
    shapesys_rel: float,
    background: str,
    with_surrogate: bool = False,
) -> list[SpuriousSignal]:
    r"""Spurious signal of ``prediction`` at each luminosity (see the module docstring).

    The model is that of :func:`~flowsim.analysis.model.channel_yields` (signal, prediction with
    shapesys, staterror and, with ``with_surrogate``, the ensemble's surrogate uncertainty); its
    observed data are replaced by the truth's expected counts :math:`N_B\varepsilon^{\rm truth}_i`
    alone. μ̂ and the 1σ interval (:data:`ONE_SIGMA`) come from
    :func:`~flowsim.analysis.inference.profile_interval` within :data:`MU_BOUNDS`, each
    luminosity's fit warm-started from the previous one's best fit.

    Arguments:
        signal: MC signal template.
        truth: high-statistics background template whose expected counts are the data.
        prediction: the background model (MC or flow-generated template, or an ensemble's
            templates: its pooled template is fitted).
        lumis: luminosities (fb⁻¹), positive.
        alpha: signal fraction S/B before the cut (sets :math:`S_i`, hence μ's scale).
        sigma_b_fb: background cross-section (fb).
        shapesys_rel: relative background shape systematic per bin.
        background: label of the prediction in the results.
        with_surrogate: defaults to False; True adds the ensemble's surrogate uncertainty
            (``prediction`` must be an EnsembleTemplate).

    Returns:
        One :class:`SpuriousSignal` per luminosity, in order; failed fits have NaNs and say why.

    Raises:
        ValueError: bad arguments (binning, luminosities, α, σ_B, systematic, a Template with
            ``with_surrogate``).
    """
    lumis = check_lumis(lumis)
    _check_rates(alpha, sigma_b_fb, lumis)
    _, signal, truth, prediction = _merged(signal, truth, prediction)
    template, surrogate_error = _background_model(prediction, with_surrogate)
    results: list[SpuriousSignal] = []
    init: Profile | None = None
    for lumi in map(float, lumis):
        yields = channel_yields(
            signal, truth, template, lumi_fb=lumi, alpha=alpha, sigma_b_fb=sigma_b_fb,
            shapesys_rel=shapesys_rel, surrogate_error=surrogate_error,
        )  # fmt: skip
        # background-only data: the truth's expected counts, without the signal channel_yields adds
        yields = yields._replace(observed=truth.yields(background_total(lumi, sigma_b_fb)))
        lik = BinnedLikelihood.from_yields(yields)
        try:
            truncated: list[float] = []
            best, lo, hi = profile_interval(lik, level=ONE_SIGMA, bounds=MU_BOUNDS, init=init, truncated=truncated)
        except _FIT_ERRORS as err:
            nan = math.nan
            results.append(SpuriousSignal(lumi, background, nan, nan, nan, nan, failure_reason("fit failed", err)))
            log.warning("spurious signal %s L=%.4g: %s", background, lumi, results[-1].status)
            continue
        init = best
        cut = [f"{x:.6g}" for x in truncated]
        status = "ok" if not cut else f"interval cut at mu={' and '.join(cut)} (sigma_mu too small)"
        sigma = 0.5 * (hi - lo)
        point = SpuriousSignal(
            lumi, background, best.mu, sigma, best.mu / sigma if sigma > 0 else math.nan,
            best.mu * float(yields.signal.sum()), status,
        )  # fmt: skip
        results.append(point)
        log.info(
            "spurious signal %s L=%.4g fb^-1: mu_hat=%.4g +- %.3g (%.2f sigma) %s",
            background, lumi, best.mu, sigma, point.significance, status,
        )  # fmt: skip
    return results


# coverage -------------------------------------------------------------------------------------
def pseudo_data(
    signal: Template,
    truth: Template,
    *,
    lumi_fb: float,
    alpha: float,
    sigma_b_fb: float,
    mu: float,
    rng: np.random.Generator,
) -> np.ndarray:
    r"""Poisson counts per bin around :math:`\mu\, N_S\varepsilon^S_i + N_B\varepsilon^{\rm truth}_i`
    (:math:`N_B = \sigma_B L`, :math:`N_S = \alpha N_B`), drawn with ``rng``.

    Raises:
        ValueError: templates with other binning, bad rates, or a negative expected count (a
            negative ``mu`` larger than the background allows).
    """
    if not np.array_equal(truth.edges, signal.edges):
        raise ValueError("the truth template has other bin edges than the signal template")
    mean = mu * signal.yields(signal_total(lumi_fb, sigma_b_fb, alpha)) + truth.yields(
        background_total(lumi_fb, sigma_b_fb)
    )
    if not np.all(np.isfinite(mean) & (mean >= 0)):
        raise ValueError(f"expected counts must be finite and >= 0 to draw pseudo-data (mu={mu})")
    return rng.poisson(mean)


def interval_covers(likelihood: BinnedLikelihood, mu_true: float, *, level: float = 0.68) -> bool | None:
    """Whether the profile-likelihood interval at ``level`` (defaults to 0.68) within
    :data:`MU_BOUNDS` contains ``mu_true``; None when the fit fails.

    An end cut at a bound does not change the answer for ``mu_true`` inside the bounds.

    Raises:
        ValueError: ``level`` outside (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"the confidence level of an interval must lie in (0, 1), got {level}")
    try:
        _, lo, hi = profile_interval(likelihood, level=level, bounds=MU_BOUNDS)
    except _FIT_ERRORS as err:
        log.debug("interval failed: %s", err)
        return None
    return bool(lo <= mu_true <= hi)


def coverage_scan(
    signal: Template,
    truth: Template,
    predictions: Sequence[Template | EnsembleTemplate],
    *,
    lumis: Sequence[float] | np.ndarray,
    alpha: float,
    sigma_b_fb: float,
    shapesys_rel: float,
    mu_true: float = 1.0,
    level: float = 0.68,
    seed: int = 0,
    with_surrogate: bool = False,
    background: str = "ml",
) -> list[Coverage]:
    r"""Coverage of the intervals of μ at each luminosity, over the replicas ``predictions``.

    Replica r at luminosity index j fits the model of its own prediction (as
    :func:`spurious_signal_scan` builds it) to pseudo-data :func:`pseudo_data` drawn with
    ``np.random.default_rng([seed, r, j])`` on the original binning (then summed into the
    replica's merged bins). The pseudo-data thus depend only on (seed, r, j), neither on the
    order of the loops nor on the background model: fitting the MC, ML and ML-with-surrogate
    predictions of a replica with the same seed compares them on the same events, so their
    coverages differ by the models, not by the fluctuations.

    Arguments:
        signal: MC signal template.
        truth: high-statistics background template the pseudo-data fluctuate around.
        predictions: one background prediction per replica (Template or EnsembleTemplate).
        lumis: luminosities (fb⁻¹), positive.
        alpha: signal fraction S/B before the cut.
        sigma_b_fb: background cross-section (fb).
        shapesys_rel: relative background shape systematic per bin.
        mu_true: defaults to 1 (the signal strength injected into the pseudo-data).
        level: defaults to 0.68 (confidence level of the intervals).
        seed: defaults to 0 (first entry of every replica's seed).
        with_surrogate: defaults to False; True adds each ensemble's surrogate uncertainty.
        background: defaults to ``"ml"`` (label of the predictions in the results).

    Returns:
        One :class:`Coverage` per luminosity, in order. A replica whose fit fails counts in
        ``n_failed`` (logged), and so does one whose prediction the model refuses (e.g. every
        event in one bin).

    Raises:
        ValueError: bad arguments (no prediction, binning, luminosities, rates, ``level``,
            ``mu_true``, a Template with ``with_surrogate``).
    """
    lumis = check_lumis(lumis)
    predictions = list(predictions)
    if not predictions:
        raise ValueError("coverage needs at least one replica (prediction)")
    if not 0.0 < level < 1.0:
        raise ValueError(f"the confidence level must lie in (0, 1), got {level}")
    if not (math.isfinite(mu_true) and MU_BOUNDS[0] < mu_true < MU_BOUNDS[1]):
        raise ValueError(f"mu_true must lie within {MU_BOUNDS}, got {mu_true}")
    _check_rates(alpha, sigma_b_fb, lumis)
    covered, failed = np.zeros(lumis.size, dtype=int), np.zeros(lumis.size, dtype=int)
    for r, prediction in enumerate(predictions):
        groups, sig_r, truth_r, pred_r = _merged(signal, truth, prediction)
        template, surrogate_error = _background_model(pred_r, with_surrogate)
        for j, lumi in enumerate(map(float, lumis)):
            counts = pseudo_data(
                signal, truth, lumi_fb=lumi, alpha=alpha, sigma_b_fb=sigma_b_fb, mu=mu_true,
                rng=np.random.default_rng([seed, r, j]),
            )  # fmt: skip
            observed = counts if groups is None else np.array([counts[g].sum() for g in groups])
            try:
                yields = channel_yields(
                    sig_r, truth_r, template, lumi_fb=lumi, alpha=alpha, sigma_b_fb=sigma_b_fb,
                    shapesys_rel=shapesys_rel, surrogate_error=surrogate_error,
                )  # fmt: skip
                lik = BinnedLikelihood.from_yields(yields._replace(observed=observed.astype(float)))
            except ValueError as err:
                log.warning("coverage %s replica %d L=%.4g: %s", background, r, lumi, err)
                failed[j] += 1
                continue
            result = interval_covers(lik, mu_true, level=level)
            if result is None:
                log.warning("coverage %s replica %d L=%.4g: the fit failed", background, r, lumi)
                failed[j] += 1
            else:
                covered[j] += result
    results = [
        Coverage(float(lumi), background, len(predictions), int(c), int(f))
        for lumi, c, f in zip(lumis, covered, failed)
    ]
    for res in results:
        log.info(
            "coverage %s L=%.4g fb^-1: %.3f +- %.3f (%d of %d, %d failed)",
            background, res.lumi_fb, res.fraction, res.error, res.n_covered, res.n_ok, res.n_failed,
        )  # fmt: skip
    return results
