"""Profile-likelihood intervals, spurious signal and coverage against independent computations.

The references are the Poisson likelihood written out here (for models whose nuisances are
made negligible), pyhf's own fits of the same workspace, and closed-form expectations
(μ̂ of a known bias, the Fisher error of an Asimov fit, binomial coverage).
"""

from __future__ import annotations

import math

import numpy as np
import pyhf
import pytest
from scipy.optimize import brentq, minimize_scalar
from scipy.special import xlogy
from scipy.stats import chi2

from flowsim.analysis.inference import profile_interval
from flowsim.analysis.likelihood import BinnedLikelihood, FitError
from flowsim.analysis.model import ChannelYields, build_workspace, channel_yields
from flowsim.analysis.templates import EnsembleTemplate, Template
from flowsim.analysis.worth import (
    COVERAGE_COLUMNS,
    SPURIOUS_COLUMNS,
    Coverage,
    coverage_scan,
    interval_covers,
    pseudo_data,
    spurious_signal_scan,
)
from tests.analysis.synthetic import pyhf_model

EDGES = np.linspace(0.0, 3.0, 7)
#: efficiencies after the cut: a falling background and a signal bump in bins 2-4
BKG = np.array([0.10, 0.06, 0.035, 0.02, 0.012, 0.007])
SIG = np.array([0.01, 0.05, 0.15, 0.2, 0.12, 0.05])
#: N of "exact" templates: relative staterror ~1e-5 at most
HUGE = 10**12
RATES = {"alpha": 0.05, "sigma_b_fb": 1000.0}


def _template(eff: np.ndarray, n_total: int = HUGE) -> Template:
    return Template(EDGES, np.round(eff * n_total).astype(np.int64), n_total)


def _deviance(n: np.ndarray, nu: np.ndarray) -> float:
    """Twice the Poisson -ln L ratio to the saturated model, summed over bins."""
    n, nu = np.atleast_1d(n), np.atleast_1d(nu)
    return float(np.sum(2.0 * (nu - n + xlogy(n, n / nu))))


# profile_interval ------------------------------------------------------------------------------
def _single_bin(s: float, b: float, n: float) -> BinnedLikelihood:
    """~Poisson(n | mu s + b): staterror 1e-5 and shapesys 1e-4 relative."""
    one = np.ones(1)
    return BinnedLikelihood.from_yields(ChannelYields(s * one, b * one, 1e-5 * b * one, n * one, 1e-4))


@pytest.mark.parametrize(
    ("s", "b", "n", "level"),
    [
        (10.0, 100.0, 120.0, 0.68),
        (10.0, 100.0, 120.0, 0.95),
        (10.0, 100.0, 80.0, 0.68),  # mu_hat = -2: a negative interval
        (1.0, 3.0, 7.0, 0.6827),  # few events: asymmetric
    ],
)
def test_interval_is_the_poisson_deviance_root(s, b, n, level):
    best, lo, hi = profile_interval(_single_bin(s, b, n), level=level)
    q = chi2.ppf(level, 1)
    mu_hat = (n - b) / s

    def excess(mu):
        return _deviance(n, mu * s + b) - q

    assert best.mu == pytest.approx(mu_hat, abs=1e-6)
    assert lo == pytest.approx(brentq(excess, -b / s * (1 - 1e-9), mu_hat), rel=1e-4)
    assert hi == pytest.approx(brentq(excess, mu_hat, 1e3), rel=1e-4)


def test_interval_quantile_is_exact():
    # 0.6827 is not the 1-sigma level; chi2.cdf(1, 1) is: there the deviance rises by exactly 1
    lik = _single_bin(10.0, 100.0, 120.0)
    _, lo, hi = profile_interval(lik, level=chi2.cdf(1.0, 1))
    for end in (lo, hi):
        assert _deviance(120.0, end * 10.0 + 100.0) == pytest.approx(1.0, rel=1e-5)
    _, lo68, hi68 = profile_interval(lik, level=0.68)
    assert lo < lo68 < hi68 < hi


def test_interval_ends_at_the_bounds_and_the_positive_count_floor():
    lik = _single_bin(10.0, 100.0, 120.0)
    truncated: list[float] = []
    best, lo, hi = profile_interval(lik, bounds=(-10.0, 2.5), truncated=truncated)
    assert hi == 2.5 and best.mu == pytest.approx(2.0, abs=1e-6)
    assert truncated == [2.5]  # the lower end is a crossing
    truncated.clear()
    best, lo, hi = profile_interval(lik, bounds=(3.0, 10.0), truncated=truncated)
    # mu_hat on the bound 3: the interval is measured from the bounded best fit
    at_bound = _deviance(120.0, 130.0) + chi2.ppf(0.68, 1)
    assert best.mu == lo == 3.0 and truncated == [3.0]
    assert hi == pytest.approx(brentq(lambda m: _deviance(120.0, 10 * m + 100) - at_bound, 3, 9), rel=1e-4)
    # 0.3 events on a background of 10, signal 50: the lower end (nu ~ 0.02) lies below the lowest
    # mu searched, where the nominal count is 1% of the background: mu = -0.99 * 10/50
    s, b, n = 50.0, 10.0, 0.3
    truncated.clear()
    best, lo, hi = profile_interval(_single_bin(s, b, n), level=0.68, truncated=truncated)
    q = chi2.ppf(0.68, 1)
    assert best.mu == pytest.approx((n - b) / s, abs=1e-6)
    assert lo == pytest.approx(-0.99 * b / s, rel=1e-12) and truncated == [lo]
    assert hi == pytest.approx(brentq(lambda m: _deviance(n, m * s + b) - q, (n - b) / s, 10.0), rel=1e-4)


class _Undefined(BinnedLikelihood):
    """A likelihood whose profile cannot be solved below mu = 1.5 (a model that ends there)."""

    def profile(self, mu, init=None, **kwargs):
        if mu < 1.5:
            raise FitError(f"no profile at mu={mu}")
        return super().profile(mu, init, **kwargs)


def test_interval_ends_where_the_profile_cannot_be_solved():
    full = _single_bin(10.0, 100.0, 120.0)
    cut = _Undefined(full.signal, full.background, full.observed, full.tau, full.delta)
    truncated: list[float] = []
    best, lo, hi = profile_interval(cut, init=full.profile(3.0), truncated=truncated)  # the fit starts at mu = 3
    assert best.mu == pytest.approx(2.0, abs=1e-6)
    assert lo == pytest.approx(1.5, abs=1e-8)  # the true end, 0.94, is beyond the domain
    assert truncated == [lo]
    assert hi == pytest.approx(profile_interval(full)[2], rel=1e-9)


def test_a_best_fit_with_negative_expected_counts_fails():
    # no event in a signal-rich bin pulls mu below where that bin's count is positive
    yields = ChannelYields(
        np.array([1.0, 10.0]), np.array([100.0, 1.0]), np.array([1.0, 0.3]), np.array([100.0, 0.0]), 0.1
    )
    lik = BinnedLikelihood.from_yields(yields)
    with pytest.raises(FitError, match="non-positive count"):
        profile_interval(lik)
    assert interval_covers(lik, 0.0) is None


def test_a_fit_whose_newton_step_leaves_the_domain_finds_the_minimum_inside():
    # background-only data in a signal-rich bin: from mu = 1 Newton overshoots below the lowest mu
    # with a positive count there (-B/S = -0.2), where -ln L is not finite; found at the spurious
    # signal of every run's score template at alpha = 5% (all its fits failed at the bound)
    s, b = np.array([50.0, 1.0]), np.array([10.0, 100.0])
    n = b.copy()
    lik = BinnedLikelihood.from_yields(ChannelYields(s, b, 1e-5 * b, n, 1e-4))
    exact = minimize_scalar(lambda m: _deviance(n, m * s + b), bounds=(-0.199, 1.0), method="bounded",
                            options={"xatol": 1e-12})  # fmt: skip
    assert lik.profile(1.0).dnll > 0 and 1.0 - lik.profile(1.0).dnll / lik.profile(1.0).d2nll < -0.2
    best = lik.fit(bounds=(-0.2, 10.0))
    assert math.isfinite(best.nll) and best.mu == pytest.approx(exact.x, abs=1e-6)
    # a warm start outside the domain (another model's best fit, at mu = -0.3) starts cold instead
    other = BinnedLikelihood.from_yields(ChannelYields(np.array([20.0, 1.0]), b, 1e-5 * b, n, 1e-4))
    assert lik.fit(init=other.profile(-0.3), bounds=(-0.2, 10.0)).mu == pytest.approx(exact.x, abs=1e-6)
    assert profile_interval(lik, bounds=(-10.0, 10.0))[0].mu == pytest.approx(exact.x, abs=1e-6)


@pytest.mark.parametrize("level", [0.0, 1.0, -0.5, 1.5])
def test_interval_refuses_a_level_outside_0_1(level):
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        profile_interval(_single_bin(10.0, 100.0, 120.0), level=level)


def test_interval_ends_raise_pyhf_twice_nll_by_the_quantile(samples):
    yields = channel_yields(samples.signal, samples.test_a, samples.ml, lumi_fb=100.0, alpha=0.05)
    model, data = pyhf_model(build_workspace(yields, poi_bounds=(-10.0, 10.0)))
    best, lo, hi = profile_interval(BinnedLikelihood.from_yields(yields), level=0.68)
    assert lo < best.mu < hi
    _, at_best = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    for end in (lo, hi):
        _, at_end = pyhf.infer.mle.fixed_poi_fit(end, data, model, return_fitted_val=True)
        assert float(at_end) - float(at_best) == pytest.approx(chi2.ppf(0.68, 1), abs=2e-4)


# spurious signal -------------------------------------------------------------------------------
LUMIS = (10.0, 100.0, 1000.0)


@pytest.mark.parametrize("kind", ["template", "ensemble"])
def test_no_spurious_signal_from_the_truth_itself(kind):
    signal, truth = _template(SIG, 10**6), _template(BKG)
    prediction = truth if kind == "template" else EnsembleTemplate((truth,) * 3)
    results = spurious_signal_scan(
        signal, truth, prediction, lumis=LUMIS, shapesys_rel=1e-3, background="mc",
        with_surrogate=kind == "ensemble", **RATES,
    )  # fmt: skip
    assert [r.lumi_fb for r in results] == list(LUMIS)
    for r, lumi in zip(results, LUMIS):
        assert r.status == "ok" and abs(r.mu_hat) < 1e-6
        # Asimov background-only data, negligible nuisances: the Fisher error of mu
        s, b = SIG * RATES["alpha"] * 1000.0 * lumi, BKG * 1000.0 * lumi
        assert r.sigma_mu == pytest.approx(1.0 / math.sqrt(np.sum(s**2 / b)), rel=2e-2)


def test_spurious_signal_of_a_signal_like_deficit():
    # the prediction lacks c * eps_S of the truth's efficiency: the data exceed it by exactly
    # (c / alpha) signals, so mu_hat = c / alpha with negligible nuisances
    signal, truth, c = _template(SIG, 10**6), _template(BKG), 0.002
    results = spurious_signal_scan(
        signal, truth, _template(BKG - c * SIG), lumis=LUMIS, shapesys_rel=1e-4, background="ml",
        **RATES,
    )  # fmt: skip
    for r, lumi in zip(results, LUMIS):
        assert r.status == "ok"
        assert r.mu_hat == pytest.approx(c / RATES["alpha"], rel=1e-3)
        assert r.significance == pytest.approx(r.mu_hat / r.sigma_mu, rel=1e-12)
        n_s = RATES["alpha"] * RATES["sigma_b_fb"] * lumi * SIG.sum()
        assert r.n_signal == pytest.approx(r.mu_hat * n_s, rel=1e-9)
    assert results[0].significance < results[1].significance < results[2].significance
    # the data are exactly the S+B expectation at mu = c / alpha, nominal nuisances: the paper's
    # 10% shape systematic widens the interval, but the best fit stays
    realistic = spurious_signal_scan(
        signal, truth, _template(BKG - c * SIG), lumis=LUMIS, shapesys_rel=0.1, background="ml",
        **RATES,
    )  # fmt: skip
    for r, tight in zip(realistic, results):
        assert r.mu_hat == pytest.approx(c / RATES["alpha"], rel=1e-6) and r.sigma_mu > tight.sigma_mu
    # a tilt that is not signal-like: the fit with 10% systematics absorbs most of it
    tilt = BKG * (1.0 - 0.03 * (np.arange(6) - 2.5))
    (tilted,) = spurious_signal_scan(
        signal, truth, _template(tilt), lumis=[100.0], shapesys_rel=0.1, background="ml", **RATES
    )
    assert tilted.status == "ok" and abs(tilted.significance) < 1.0
    assert list(realistic[0].as_row()) == list(SPURIOUS_COLUMNS)


def test_spurious_signal_beyond_the_bound_is_flagged():
    signal, truth = _template(SIG, 10**6), _template(BKG)
    (r,) = spurious_signal_scan(
        signal, truth, _template(BKG - 0.012 * SIG), lumis=[1000.0], alpha=0.001, sigma_b_fb=1000.0,
        shapesys_rel=1e-3, background="ml",
    )  # fmt: skip
    assert r.mu_hat == 10.0 and "cut at mu=10" in r.status  # the true spurious mu is 12


def test_spurious_signal_merges_empty_bins_as_by_hand():
    signal, truth = _template(SIG, 10**6), _template(BKG)
    hole = BKG.copy()
    hole[4] = 0.0  # no predicted event in bin 4: merged into bin 5
    prediction = _template(hole * 1.05)
    merged = [[0], [1], [2], [3], [4, 5]]
    kw = dict(lumis=LUMIS, shapesys_rel=0.1, background="ml", **RATES)
    ours = spurious_signal_scan(signal, truth, prediction, **kw)
    by_hand = spurious_signal_scan(
        signal.rebinned(merged), truth.rebinned(merged), prediction.rebinned(merged), **kw
    )
    assert [r.as_row() for r in ours] == [r.as_row() for r in by_hand]
    with pytest.raises(ValueError, match="EnsembleTemplate"):
        spurious_signal_scan(signal, truth, truth, with_surrogate=True, **kw)


# coverage --------------------------------------------------------------------------------------
def _exact_covers(
    n: np.ndarray, s: np.ndarray, b: np.ndarray, mu_true: float, q: float
) -> tuple[bool, float]:
    """Whether mu_true lies in the interval of the pure Poisson likelihood, and the distance of
    its test statistic from q (small: a borderline replica)."""
    low = -0.99 * float(np.min(b / s))
    fit = minimize_scalar(lambda m: _deviance(n, m * s + b), bounds=(max(-10.0, low), 10.0), method="bounded",
                          options={"xatol": 1e-10})  # fmt: skip
    t = _deviance(n, mu_true * s + b) - fit.fun
    return t <= q, abs(t - q)


def test_coverage_of_the_exact_model_is_the_level_replica_by_replica():
    signal, truth, n_rep, lumis = _template(SIG, 10**6), _template(BKG), 400, (10.0, 100.0)
    results = coverage_scan(signal, truth, [truth] * n_rep, lumis=lumis, shapesys_rel=1e-3, seed=3, **RATES)
    q = chi2.ppf(0.68, 1)
    for j, (r, lumi) in enumerate(zip(results, lumis)):
        assert (r.lumi_fb, r.background, r.n_replicas, r.n_failed) == (lumi, "ml", n_rep, 0)
        assert abs(r.fraction - 0.68) < 3 * math.sqrt(0.68 * 0.32 / n_rep)
        assert r.error == pytest.approx(math.sqrt(r.fraction * (1 - r.fraction) / n_rep))
        # the same pseudo-data, drawn as documented, in the pure Poisson likelihood
        s, b = SIG * RATES["alpha"] * 1000.0 * lumi, BKG * 1000.0 * lumi
        decisions = [
            _exact_covers(np.random.default_rng([3, i, j]).poisson(s + b), s, b, 1.0, q) for i in range(n_rep)
        ]
        expected = sum(c for c, _ in decisions)
        borderline = sum(d < 0.02 for _, d in decisions)  # the 1e-3 systematic may flip these
        assert abs(r.n_covered - expected) <= borderline


def test_a_biased_prediction_under_covers():
    signal, truth = _template(SIG, 10**6), _template(BKG)
    shifted = BKG.copy()
    shifted[3] *= 1.2
    (r,) = coverage_scan(
        signal, truth, [_template(shifted)] * 100, lumis=[1000.0], shapesys_rel=1e-3, **RATES
    )
    assert r.n_failed == 0 and r.fraction < 0.4


def test_surrogate_of_identical_members_changes_nothing():
    # zero member spread: no surrogate uncertainty in any bin, so the model has no such modifier
    signal, truth = _template(SIG, 10**6), _template(BKG)
    ensemble = EnsembleTemplate((_template(BKG * 1.02, 10**11),) * 4)
    assert not ensemble.surrogate_error().any()
    kw = dict(lumis=[30.0, 300.0], shapesys_rel=0.02, seed=11, **RATES)
    plain = coverage_scan(signal, truth, [ensemble] * 40, **kw)
    with_surrogate = coverage_scan(signal, truth, [ensemble] * 40, with_surrogate=True, **kw)
    assert [c.n_covered for c in plain] == [c.n_covered for c in with_surrogate]
    assert all(c.n_failed == 0 for c in plain)
    with pytest.raises(ValueError, match="EnsembleTemplate"):
        coverage_scan(signal, truth, [truth], with_surrogate=True, **kw)


def test_coverage_merges_empty_bins_of_each_replica():
    signal, truth = _template(SIG, 10**6), _template(BKG)
    hole = BKG.copy()
    hole[5] = 0.0  # trailing empty bin: merged into bin 4
    (r,) = coverage_scan(
        signal, truth, [truth, _template(hole)] * 10, lumis=[10.0], shapesys_rel=0.1, **RATES
    )
    assert r.n_failed == 0 and r.n_replicas == 20


def test_coverage_counts_and_row():
    c = Coverage(10.0, "ml", n_replicas=10, n_covered=6, n_failed=2)
    assert c.fraction == 0.75 and c.error == pytest.approx(math.sqrt(0.75 * 0.25 / 8))
    assert list(c.as_row()) == list(COVERAGE_COLUMNS)
    assert math.isnan(Coverage(10.0, "ml", 3, 0, 3).fraction)


# pseudo-data -----------------------------------------------------------------------------------
def test_pseudo_data_depend_only_on_seed_replica_and_lumi_index():
    signal, truth = _template(SIG, 10**6), _template(BKG)

    def draw(r, j, lumi):
        rng = np.random.default_rng([5, r, j])
        return pseudo_data(signal, truth, lumi_fb=lumi, mu=1.0, rng=rng, **RATES)

    forward = [draw(r, j, lumi) for r in range(3) for j, lumi in enumerate((10.0, 100.0))]
    backward = [
        draw(r, j, lumi) for r in reversed(range(3)) for j, lumi in reversed(list(enumerate((10.0, 100.0))))
    ]
    for a, b in zip(forward, reversed(backward)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(draw(0, 0, 10.0), draw(1, 0, 10.0))
    assert not np.array_equal(draw(0, 0, 10.0), draw(0, 1, 10.0))
    # Poisson around mu S + B
    rng = np.random.default_rng(0)
    many = np.array([pseudo_data(signal, truth, lumi_fb=10.0, mu=2.0, rng=rng, **RATES) for _ in range(4000)])
    mean = 2.0 * SIG * 0.05 * 1e4 + BKG * 1e4
    np.testing.assert_array_less(np.abs(many.mean(axis=0) - mean), 5 * np.sqrt(mean / many.shape[0]))
    np.testing.assert_allclose(many.var(axis=0), mean, rtol=0.15)
    with pytest.raises(ValueError, match=">= 0"):
        pseudo_data(signal, truth, lumi_fb=10.0, mu=-100.0, rng=rng, **RATES)
