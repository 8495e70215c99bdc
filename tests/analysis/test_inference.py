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
from flowsim.analysis.model import build_workspace, channel_yields
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
