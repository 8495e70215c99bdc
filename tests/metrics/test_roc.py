"""Tests of flowsim.metrics.roc against sklearn, brute force, the bootstrap and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from flowsim.metrics import roc as R


def _labelled(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.r_[np.ones(pos.size), np.zeros(neg.size)], np.r_[pos, neg]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_vs_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 8, 700).astype(float)  # few distinct values: many ties
    neg = rng.integers(-2, 6, 450).astype(float)
    assert R.auc(pos, neg) == pytest.approx(skm.roc_auc_score(*_labelled(pos, neg)), rel=1e-12)


def test_auc_hand():
    assert R.auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert R.auc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert R.auc([1.0, 1.0], [1.0]) == 0.5
    # pairs: (1,0)=1, (1,2)=0, (2,0)=1, (2,2)=½ → 2.5 / 4
    assert R.auc([1.0, 2.0], [0.0, 2.0]) == 0.625


def test_delong_components_vs_brute_force_and_midranks():
    rng = np.random.default_rng(4)
    pos = rng.integers(0, 10, 60).astype(float)
    neg = rng.integers(-3, 8, 45).astype(float)
    m, n = pos.size, neg.size
    # Brute force: psi_ij = 1, ½, 0 for pos_i >, =, < neg_j.
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    # Sun & Xu: midranks in the pooled sample minus midranks within each class.
    tz = stats.rankdata(np.r_[pos, neg])
    v10_mid = (tz[:m] - stats.rankdata(pos)) / n
    v01_mid = 1.0 - (tz[m:] - stats.rankdata(neg)) / m
    v10, v01 = R._delong_components(pos, neg)  # returned in sorted-score order
    np.testing.assert_allclose(v10, np.sort(psi.mean(axis=1)))
    np.testing.assert_allclose(v01, np.sort(psi.mean(axis=0))[::-1])
    np.testing.assert_allclose(np.sort(v10), np.sort(v10_mid))
    np.testing.assert_allclose(np.sort(v01), np.sort(v01_mid))
    expected = psi.mean(axis=1).var(ddof=1) / m + psi.mean(axis=0).var(ddof=1) / n
    assert R.delong_variance(pos, neg) == pytest.approx(expected, rel=1e-12)
    assert R.auc_delong(pos, neg).auc == pytest.approx(R.auc(pos, neg), rel=1e-12)


def test_delong_vs_bootstrap_variance():
    rng = np.random.default_rng(5)
    pos = rng.normal(0.6, 1.0, 2000)
    neg = rng.normal(0.0, 1.2, 2000)
    var_delong = R.delong_variance(pos, neg)
    var_boot = R.bootstrap_auc_std(pos, neg, n_bootstrap=400, seed=1) ** 2
    assert var_boot == pytest.approx(var_delong, rel=0.2)


def test_auc_gaussians_closed_form():
    m1, s1, m2, s2 = 0.5, 1.0, 0.0, 1.5
    rng = np.random.default_rng(6)
    est = R.auc_delong(rng.normal(m1, s1, 20_000), rng.normal(m2, s2, 30_000))
    expected = stats.norm.cdf((m1 - m2) / math.sqrt(s1**2 + s2**2))
    assert abs(est.auc - expected) < 3 * est.std
    assert est.n_pos == 20_000 and est.n_neg == 30_000


def test_auc_identical_distributions_is_half():
    rng = np.random.default_rng(7)
    est = R.auc_delong(rng.exponential(size=5000), rng.exponential(size=4000))
    assert abs(est.auc - 0.5) < 3 * est.std
    # Under H0 the variance is (m + n + 1) / (12 m n) (Mann–Whitney, continuous scores).
    assert est.std**2 == pytest.approx((5000 + 4000 + 1) / (12 * 5000 * 4000), rel=0.1)


def test_delong_std_covers_the_spread_of_repeated_experiments():
    rng = np.random.default_rng(8)
    pulls = []
    truth = stats.norm.cdf(0.4 / math.sqrt(2))
    for _ in range(300):
        est = R.auc_delong(rng.normal(0.4, 1.0, 150), rng.normal(0.0, 1.0, 200))
        pulls.append((est.auc - truth) / est.std)
    assert np.std(pulls) == pytest.approx(1.0, abs=0.15)
    assert abs(np.mean(pulls)) < 0.25  # 4 standard errors of the mean of 300


def test_bootstrap_auc_std_is_seeded():
    rng = np.random.default_rng(9)
    pos, neg = rng.normal(size=300), rng.normal(size=200)
    assert R.bootstrap_auc_std(pos, neg, seed=2) == R.bootstrap_auc_std(pos, neg, seed=2)
    assert R.bootstrap_auc_std(pos, neg, seed=2) != R.bootstrap_auc_std(pos, neg, seed=3)


def test_roc_curve_vs_sklearn_and_area():
    rng = np.random.default_rng(10)
    pos = np.round(rng.normal(0.5, 1.0, 400), 1)  # rounded: ties
    neg = np.round(rng.normal(0.0, 1.0, 300), 1)
    curve = R.roc_curve(pos, neg)
    fpr, tpr, thr = skm.roc_curve(*_labelled(pos, neg), drop_intermediate=False)
    np.testing.assert_allclose(curve.fpr, fpr)
    np.testing.assert_allclose(curve.tpr, tpr)
    np.testing.assert_allclose(curve.thresholds[1:], thr[1:])
    assert curve.thresholds[0] == np.inf
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(R.auc(pos, neg), rel=1e-12)


def test_accuracy_at_threshold():
    # pos ≥ 0.5: 0.5, 0.9 (2 of 3); neg < 0.5: 0.1, 0.2 (2 of 2) → 4 / 5
    assert R.accuracy_at_threshold([0.5, 0.9, 0.3], [0.1, 0.2]) == pytest.approx(0.8)
    rng = np.random.default_rng(11)
    pos, neg = rng.uniform(size=50), rng.uniform(size=70)
    curve = R.roc_curve(pos, neg)
    k = 17  # the accuracy at a curve threshold follows from its (fpr, tpr)
    expected = (curve.tpr[k] * 50 + (1 - curve.fpr[k]) * 70) / 120
    assert R.accuracy_at_threshold(pos, neg, curve.thresholds[k]) == pytest.approx(expected)


def test_density_ratio_and_clipping_count():
    d = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1e-9])
    out = R.density_ratio(d, eps=1e-6)
    assert out.n_clipped == 3
    np.testing.assert_allclose(out.ratio[1:4], [1 / 3, 1.0, 3.0])
    assert out.ratio[0] == pytest.approx(1e-6 / (1 - 1e-6))
    assert out.ratio[4] == pytest.approx((1 - 1e-6) / 1e-6)
    assert R.density_ratio(np.full((2, 3), 0.5)).ratio.shape == (2, 3)
    assert R.density_ratio([0.2, 0.8]).n_clipped == 0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: R.auc([], [1.0]), "scores_pos needs at least 1"),
        (lambda: R.auc([1.0], [np.nan, 1.0]), "scores_neg has 1 non-finite"),
        (lambda: R.auc([[1.0]], [1.0]), "scores_pos must be 1-D"),
        (lambda: R.delong_variance([1.0], [1.0, 2.0]), "scores_pos needs at least 2"),
        (lambda: R.bootstrap_auc_std([1.0], [1.0], n_bootstrap=1), "n_bootstrap"),
        (lambda: R.accuracy_at_threshold([1.0], [0.0], np.nan), "threshold must be finite"),
        (lambda: R.density_ratio([0.5, 1.5]), "1 value\\(s\\) outside \\[0, 1\\]"),
        (lambda: R.density_ratio([np.nan]), "non-finite"),
        (lambda: R.density_ratio([0.5], eps=0.5), "eps must be in"),
        (lambda: R.density_ratio([]), "d is empty"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("seed", [0, 1])
def test_weighted_auc_vs_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 8, 300).astype(float)
    neg = rng.integers(-2, 6, 200).astype(float)
    w, v = rng.exponential(1.0, 300), rng.exponential(1.0, 200)
    expected = skm.roc_auc_score(*_labelled(pos, neg), sample_weight=np.r_[w, v])
    assert R.weighted_auc(pos, neg, w, v).auc == pytest.approx(expected, rel=1e-12)


def test_weighted_auc_with_unit_weights_is_delong():
    rng = np.random.default_rng(3)
    pos, neg = rng.normal(0.5, 1, 400), rng.normal(0, 1, 300)
    weighted, delong = R.weighted_auc(pos, neg), R.auc_delong(pos, neg)
    assert weighted.auc == pytest.approx(delong.auc, rel=1e-12)
    assert weighted.std == pytest.approx(delong.std, rel=0.01)  # 1/m instead of 1/(m - 1)
    assert (weighted.n_pos, weighted.n_neg) == (400, 300)


def test_weighted_auc_std_covers_importance_weighted_experiments():
    # positives drawn from N(0, 1) and weighted to N(0.4, 1): the weighted AUC estimates the
    # AUC of N(0.4, 1) vs N(0, 1), and its error must cover the spread of repeated experiments
    rng = np.random.default_rng(9)
    truth = stats.norm.cdf(0.4 / math.sqrt(2))
    pulls = []
    for _ in range(300):
        x = rng.normal(0.0, 1.0, 400)
        weights = np.exp(0.4 * x - 0.08)  # N(x; 0.4, 1) / N(x; 0, 1)
        est = R.weighted_auc(x, rng.normal(0.0, 1.0, 300), weights)
        pulls.append((est.auc - truth) / est.std)
    assert np.std(pulls) == pytest.approx(1.0, abs=0.15)
    assert abs(np.mean(pulls)) < 0.25


def test_weighted_auc_refuses_bad_weights():
    with pytest.raises(ValueError, match="weights_pos has 2 values for 3 scores"):
        R.weighted_auc([1.0, 2.0, 3.0], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="weights_neg must have a positive sum, got 0"):
        R.weighted_auc([1.0, 2.0], [0.0, 1.0], None, [1.0, -1.0])


def test_weighted_auc_with_negative_weights_is_the_pairwise_sum():
    # AUC = Σ_ij w_i v_j ψ(X_i, Y_j) / (Σw Σv) by brute force over all pairs, ties ½
    rng = np.random.default_rng(11)
    pos, neg = np.round(rng.normal(0.3, 1, 120), 1), np.round(rng.normal(0, 1, 90), 1)
    w, v = rng.normal(1.0, 1.0, 120), rng.normal(1.0, 1.0, 90)
    psi = (np.sign(pos[:, None] - neg[None, :]) + 1) / 2
    expected = w @ psi @ v / (w.sum() * v.sum())
    estimate = R.weighted_auc(pos, neg, w, v)
    assert estimate.auc == pytest.approx(expected, rel=1e-12)
    assert (estimate.n_pos, estimate.n_neg) == (round(w.sum() ** 2 / (w @ w)), round(v.sum() ** 2 / (v @ v)))
