"""Asymptotic CLs, discovery significance and limits against pyhf's hypotest and upper_limit.

Every shortcut of :mod:`flowsim.analysis.inference` is checked against pyhf's own answer on the
same workspace: CLs+b, CLb, CLs and the expected CLs set (``pyhf.infer.hypotest``), the
discovery p-value (``test_stat="q0"``) and the observed and expected limits
(``pyhf.infer.intervals.upper_limits.upper_limit``, toms748), all within 1%.
"""

from __future__ import annotations

import math

import numpy as np
import pyhf
import pytest
from scipy.stats import norm

from flowsim.analysis.inference import (
    AsymptoticCalculator,
    cls_from_q,
    discovery_significance,
    expected_k,
    fit,
    hypotest,
    upper_limits,
)
from flowsim.analysis.likelihood import BinnedLikelihood
from flowsim.analysis.model import SURROGATE, build_workspace, channel_yields
from tests.analysis.synthetic import pyhf_model

RTOL = 0.01  # the brief's agreement target; the measured agreement is ~1e-6 (see the report)


def _setup(samples, prediction: str, lumi: float, alpha: float):
    yields = channel_yields(
        samples.signal, samples.test_a, getattr(samples, prediction), lumi_fb=lumi, alpha=alpha
    )
    model, data = pyhf_model(build_workspace(yields))
    return BinnedLikelihood.from_yields(yields), model, data


def test_expected_k_and_cls_formula():
    assert expected_k(0.0) == pytest.approx(norm.ppf(0.975), rel=1e-12)
    assert expected_k(-2.0) < expected_k(-1.0) < expected_k(0.0) < expected_k(1.0) < expected_k(2.0)
    # the two regimes of q~ join continuously at q~ = q_A
    qa = 4.0
    below, above = cls_from_q(qa * (1 - 1e-9), qa), cls_from_q(qa * (1 + 1e-9), qa)
    np.testing.assert_allclose(below, above, rtol=1e-7)
    # q~ = 0: CLs+b = 1/2, CLb = Phi(sqrt(q_A))
    clsb, clb, cls = cls_from_q(0.0, qa)
    assert (clsb, clb) == pytest.approx((0.5, norm.cdf(2.0)))
    with pytest.raises(ValueError, match="positive"):
        cls_from_q(1.0, 0.0)


@pytest.mark.parametrize(
    ("prediction", "lumi", "alpha", "mus"),
    [("ml", 40.0, 0.05, (0.5, 1.0, 2.0)), ("test_b", 15.0, 0.01, (1.0, 3.0))],
)
def test_hypotest_matches_pyhf(samples, prediction, lumi, alpha, mus):
    lik, model, data = _setup(samples, prediction, lumi, alpha)
    calc = AsymptoticCalculator(lik)
    for mu in mus:
        cls, (clsb, clb), expected = pyhf.infer.hypotest(
            mu, data, model, test_stat="qtilde", return_tail_probs=True, return_expected_set=True
        )
        ours = calc.hypotest(mu)
        assert ours.cls == pytest.approx(float(cls), rel=RTOL)
        assert ours.p_sb == pytest.approx(float(clsb), rel=RTOL)
        assert 1.0 - ours.p_b == pytest.approx(float(clb), rel=RTOL)
        np.testing.assert_allclose(calc.expected_cls(mu), np.asarray(expected, float), rtol=RTOL)
    assert hypotest(lik, mus[0]) == calc.hypotest(mus[0])


def test_discovery_significance_matches_pyhf_q0(samples):
    lik, model, data = _setup(samples, "ml", 40.0, 0.05)
    p0 = float(pyhf.infer.hypotest(0.0, data, model, test_stat="q0"))
    z = discovery_significance(lik)
    assert z == pytest.approx(norm.isf(p0), rel=RTOL)
    assert z > 1.0


def test_fit_result(samples):
    lik, model, data = _setup(samples, "test_b", 100.0, 0.05)
    result = fit(lik)
    _, twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    assert result.twice_nll == pytest.approx(float(twice_nll), abs=1e-5)
    assert 0.0 < result.mu_err < 1.0 and math.isfinite(result.mu_hat)


@pytest.mark.parametrize(
    ("prediction", "lumi", "alpha"), [("ml", 30.0, 0.05), ("test_a", 12.0, 0.01)]
)
def test_limits_match_pyhf_upper_limit(samples, prediction, lumi, alpha):
    lik, model, data = _setup(samples, prediction, lumi, alpha)
    obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(data, model, rtol=1e-3)
    ours = upper_limits(lik)
    assert ours.cl == 0.95
    assert ours.observed == pytest.approx(float(obs), rel=RTOL)
    np.testing.assert_allclose(ours.expected, np.asarray(exp, float), rtol=RTOL)
    # the expected limits are the closed form mu_N = sigma_A(mu_N) k_N, self-consistently
    calc = AsymptoticCalculator(lik)
    for n, mu_n in zip((-2, -1, 0, 1, 2), ours.expected, strict=True):
        sigma_a = mu_n / math.sqrt(calc.q_asimov(mu_n))
        assert mu_n == pytest.approx(sigma_a * expected_k(n), rel=1e-8)
        assert calc.expected_cls(mu_n)[n + 2] == pytest.approx(0.05, rel=1e-6)
    assert calc.hypotest(ours.observed).cls == pytest.approx(0.05, rel=1e-6)
    # the constant-sigma (Wald) starting point is close, not exact
    assert calc.wald_observed_limit() == pytest.approx(ours.observed, rel=0.1)


# the surrogate uncertainty (bkg_surrogate) ---------------------------------------------------
#: three bins (pairs of the six) keep pyhf's own fits of 10 parameters quick
GROUPS = [[0, 1], [2, 3], [4, 5]]
#: relative surrogate uncertainty per bin: 5% and 20%, none in the middle bin (fixed in pyhf)
SURROGATE_REL = np.array([0.05, 0.0, 0.2])


@pytest.fixture(scope="module")
def with_surrogate(samples):
    signal, test_a, ml = (t.rebinned(GROUPS) for t in (samples.signal, samples.test_a, samples.ml))
    yields = channel_yields(
        signal, test_a, ml, lumi_fb=30.0, alpha=0.05, surrogate_error=SURROGATE_REL * ml.efficiency
    )
    model, data = pyhf_model(build_workspace(yields))
    assert model.config.suggested_fixed()[model.config.par_slice(SURROGATE)] == [False, True, False]
    return BinnedLikelihood.from_yields(yields), model, data


def test_hypotest_with_surrogate_matches_pyhf(with_surrogate):
    lik, model, data = with_surrogate
    cls, (clsb, clb), expected = pyhf.infer.hypotest(
        1.0, data, model, test_stat="qtilde", return_tail_probs=True, return_expected_set=True
    )
    calc = AsymptoticCalculator(lik)
    ours = calc.hypotest(1.0)
    assert ours.cls == pytest.approx(float(cls), rel=1e-4)
    assert ours.p_sb == pytest.approx(float(clsb), rel=1e-4)
    assert 1.0 - ours.p_b == pytest.approx(float(clb), rel=1e-4)
    np.testing.assert_allclose(calc.expected_cls(1.0), np.asarray(expected, float), rtol=1e-4)


def test_limits_with_surrogate_match_pyhf_upper_limit(with_surrogate):
    # pyhf's upper_limit on a grid of two points 1% either side of each of our limits: the grid
    # must bracket each of pyhf's limits (CLs crosses 0.05 between the two), which puts them
    # within 1% of ours, and pyhf's linear interpolation there is accurate to ~1e-3
    lik, model, data = with_surrogate
    ours = upper_limits(lik)
    picked = {0: ours.observed, 1: ours.expected[0], 3: ours.expected[2], 5: ours.expected[4]}
    scan = np.sort([f * mu for mu in picked.values() for f in (0.99, 1.01)])
    obs, exp, (_, results) = pyhf.infer.intervals.upper_limits.upper_limit(
        data, model, scan=scan, return_results=True
    )
    theirs = [float(obs)] + [float(x) for x in exp]  # observed, then -2 ... +2 sigma expected
    for band, mu in picked.items():
        cls = np.array([float(r[0]) if band == 0 else float(r[1][band - 1]) for r in results])
        below, above = np.searchsorted(scan, 0.99 * mu), np.searchsorted(scan, 1.01 * mu)
        assert cls[below] > 0.05 > cls[above]
        assert theirs[band] == pytest.approx(mu, rel=2e-3)


def test_zero_surrogate_uncertainty_leaves_inference_unchanged(samples):
    args = (samples.signal, samples.test_a, samples.ml)
    plain = channel_yields(*args, lumi_fb=25.0, alpha=0.05)
    zero = channel_yields(*args, lumi_fb=25.0, alpha=0.05, surrogate_error=np.zeros(6))
    calcs = [AsymptoticCalculator(BinnedLikelihood.from_yields(y)) for y in (plain, zero)]
    assert calcs[0].hypotest(1.0) == calcs[1].hypotest(1.0)
    assert calcs[0].limits() == calcs[1].limits()
    assert calcs[0].discovery() == calcs[1].discovery()
    assert calcs[0].n_profiles == calcs[1].n_profiles
