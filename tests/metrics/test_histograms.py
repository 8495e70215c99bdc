"""Tests of flowsim.metrics.histograms: the numbers behind the distribution plots, by hand and
against independent computations (numpy's histogram, scipy's rank correlation, brute force)."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from flowsim.metrics import histograms as H


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def test_normalised_hist_by_hand():
    x = np.array([0.5, 1.5, 1.5, 2.5, 3.0, -1.0, 5.0])  # 3.0 is the closed last edge
    edges = np.array([0.0, 1.0, 2.0, 4.0])  # unequal widths 1, 1, 2
    h = H.normalised_hist(x, edges)
    n = 7  # normalised to all events, the two outside included
    np.testing.assert_allclose(h.density, [1 / n, 2 / n, 2 / (n * 2)])
    np.testing.assert_allclose(h.error, [1 / n, math.sqrt(2) / n, math.sqrt(2) / (n * 2)])
    assert (h.underflow, h.overflow, h.total) == (1, 1, 7.0)
    # integral = fraction inside the binning
    assert np.sum(h.density * np.diff(edges)) == pytest.approx(5 / 7)


def test_normalised_hist_weighted_sqrt_sum_w2():
    x = np.array([0.2, 0.7, 1.5, 9.0])
    w = np.array([2.0, 3.0, 0.5, 1.0])
    h = H.normalised_hist(x, np.array([0.0, 1.0, 2.0]), weights=w)
    total = w.sum()  # 6.5, the overflow event's weight included
    np.testing.assert_allclose(h.density, [5.0 / total, 0.5 / total])
    np.testing.assert_allclose(h.error, [math.sqrt(4 + 9) / total, 0.5 / total])
    assert h.overflow == 1 and h.total == pytest.approx(6.5)


def test_ratio_with_errors_by_hand_and_empty_bins_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings either
        r = H.ratio_with_errors(num=[2.0, 0.0, 1.0, 0.0], num_err=[0.2, 0.0, 0.1, 0.0],
                                den=[1.0, 4.0, 0.0, 0.0], den_err=[0.1, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(r.ratio[:2], [2.0, 0.0])
    np.testing.assert_allclose(r.error_num[:2], [0.2, 0.0])
    np.testing.assert_allclose(r.error_den[:2], [2.0 * 0.1 / 1.0, 0.0])
    np.testing.assert_allclose(r.error[:2], [math.hypot(0.2, 0.2), 0.0])
    for a in r:
        assert np.isnan(a[2:]).all()  # empty denominator: NaN, never inf
        assert not np.isinf(a).any()


def test_ratio_with_errors_shape_mismatch():
    with pytest.raises(ValueError, match="equal shapes"):
        H.ratio_with_errors([1.0, 2.0], [0.1, 0.1], [1.0], [0.1])


def test_compare_histograms_matches_hand_computation(rng):
    mc = rng.normal(size=400)
    gen = rng.normal(size=300)
    w = rng.uniform(0.5, 1.5, 300)
    edges = np.linspace(-2, 2, 9)
    comp = H.compare_histograms(mc, gen, edges, weights=w)
    n_mc, _ = np.histogram(mc, edges)
    s_w, _ = np.histogram(gen, edges, weights=w)
    s_w2, _ = np.histogram(gen, edges, weights=w**2)
    width = 0.5
    m, g = n_mc / (400 * width), s_w / (w.sum() * width)
    sm, sg = np.sqrt(n_mc) / (400 * width), np.sqrt(s_w2) / (w.sum() * width)
    np.testing.assert_allclose(comp.ratio.ratio, g / m)
    np.testing.assert_allclose(comp.ratio.error, (g / m) * np.sqrt((sg / g) ** 2 + (sm / m) ** 2))
    assert comp.mc.underflow + comp.mc.overflow == np.count_nonzero(np.abs(mc) > 2)


def test_tail_edges_are_mc_quantiles():
    mc = np.arange(10001.0)
    assert H.tail_edges(mc) == (5.0, 9995.0)  # the 0.05% and 99.95% quantiles
    rng = np.random.default_rng(3)
    x = rng.exponential(size=5000)
    assert H.tail_edges(x) == tuple(np.quantile(x, [0.0005, 0.9995]))
    with pytest.raises(ValueError, match="fraction"):
        H.tail_edges(x, fraction=1.5)


def test_default_binning_is_wider_than_the_tail_markers(rng):
    x = rng.exponential(size=50_000)
    e = H.feature_edges(x)
    lo, hi = H.tail_edges(x)
    assert e.size == H.DEFAULT_N_BINS + 1
    assert e[0] < lo < hi < e[-1]  # so the markers (and the tail) are inside the plot
    np.testing.assert_allclose(H.feature_edges(x, bins=[0.0, 1.0, 3.0]), [0, 1, 3])
    assert H.feature_edges(x, bins=10).size == 11


def test_average_ranks_ties():
    np.testing.assert_allclose(H.average_ranks(np.array([3.0, 1.0, 3.0, 2.0])),
                               [3.5, 1.0, 3.5, 2.0])


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_select_pairs_finds_planted_correlation(rng, method):
    x = rng.normal(size=(2000, 6))
    x[:, 4] = np.exp(x[:, 1]) + 0.3 * rng.normal(size=2000)  # strong, monotone, long-tailed
    x[:, 5] = -x[:, 2] + 1.0 * rng.normal(size=2000)  # weaker, negative
    x[:, 3] = 7.0  # a constant column must not break anything
    pairs = H.select_pairs(x, 2, method=method)
    assert (pairs[0].i, pairs[0].j) == (1, 4) and pairs[0].rho > 0.6
    assert (pairs[1].i, pairs[1].j) == (2, 5) and pairs[1].rho < -0.5
    assert len(H.select_pairs(x, 100)) == 15  # all 6·5/2 pairs at most
    with pytest.raises(ValueError, match="n_pairs"):
        H.select_pairs(x, 0)
    with pytest.raises(ValueError, match="method"):
        H.select_pairs(x, 1, method="kendall")


def test_hdr_levels_by_hand():
    h = np.array([[4.0, 3.0], [2.0, 1.0]])
    np.testing.assert_allclose(H.hdr_levels(h, [0.4, 0.7, 0.9, 1.0]), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(H.hdr_levels(h, [0.5]), [3.0])  # 4 alone holds only 40%
    # fractions of a larger total: 99% is out of reach of a grid holding 10 of 20 events
    np.testing.assert_allclose(H.hdr_levels(h, [0.2, 0.99], total=20.0), [4.0])
    assert H.hdr_levels(np.zeros((2, 2)), [0.5]).size == 0


def test_ratio_tail_masks_by_hand():
    r = np.arange(1.0, 1001.0)
    t = H.ratio_tail_masks(r, 0.01)
    # np.quantile (linear): 1 + 0.01·999 = 10.99 and 1 + 0.99·999 = 990.01
    assert t.low_cut == pytest.approx(10.99) and t.high_cut == pytest.approx(990.01)
    np.testing.assert_array_equal(np.flatnonzero(t.low), np.arange(10))
    np.testing.assert_array_equal(np.flatnonzero(t.high), np.arange(990, 1000))
    with pytest.raises(ValueError, match="quantile"):
        H.ratio_tail_masks(r, 0.5)


def test_spearman_matrix_matches_scipy(rng):
    x = rng.normal(size=(500, 4))
    x[:, 1] = np.exp(x[:, 0]) + 0.5 * rng.normal(size=500)
    x[:, 2] = np.round(x[:, 2], 1)  # ties: average ranks, as scipy
    np.testing.assert_allclose(H.correlation_matrix(x), stats.spearmanr(x).statistic, atol=1e-12)
    np.testing.assert_allclose(H.correlation_matrix(x, method="pearson"), np.corrcoef(x, rowvar=False))


def test_constant_column_correlates_zero(rng):
    x = np.column_stack([rng.normal(size=50), np.full(50, 3.0)])
    c = H.correlation_matrix(x)
    assert c[0, 1] == c[1, 0] == 0.0 and c[1, 1] == 0.0  # NaN from a zero variance becomes 0


def test_hdr_levels_match_brute_force(rng):
    """The level of fraction f is the largest height whose superlevel set still holds f."""
    h = rng.poisson(5.0, size=(6, 7)).astype(float)
    fractions = [0.39, 0.86, 0.99]
    brute = []
    for f in fractions:
        heights = sorted(set(h.ravel()), reverse=True)
        brute.append(next(t for t in heights if h[h >= t].sum() >= f * h.sum()))
    np.testing.assert_allclose(H.hdr_levels(h, fractions), sorted(set(brute)))


def test_average_ranks_match_scipy(rng):
    x = rng.integers(0, 20, size=200).astype(float)
    np.testing.assert_allclose(H.average_ranks(x), stats.rankdata(x))


def test_normalised_hist_integrates_to_the_fraction_inside(rng):
    x = rng.normal(size=10_000)
    edges = np.array([-1.0, -0.2, 0.5, 2.0])
    h = H.normalised_hist(x, edges)
    inside = np.count_nonzero((x >= -1.0) & (x <= 2.0)) / x.size
    assert np.sum(h.density * np.diff(edges)) == pytest.approx(inside)
    assert h.underflow + h.overflow == x.size - round(inside * x.size)


@pytest.mark.parametrize(("bad", "match"), [([1.0], "edges"), ([0.0, 0.0, 1.0], "edges"), ([0.0, np.inf], "edges")])
def test_bad_edges_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        H.normalised_hist(np.array([0.5]), np.array(bad))


def test_weights_must_match_and_sum_positive():
    with pytest.raises(ValueError, match=r"weights must have shape \(2,\)"):
        H.normalised_hist(np.array([0.1, 0.2]), np.array([0.0, 1.0]), weights=[1.0])
    with pytest.raises(ValueError, match="positive sum"):
        H.normalised_hist(np.array([0.1, 0.2]), np.array([0.0, 1.0]), weights=[1.0, -1.0])


def test_select_pairs_enumerates_every_pair_once(rng):
    x = rng.normal(size=(300, 5))
    pairs = H.select_pairs(x, 100)
    assert sorted((p.i, p.j) for p in pairs) == list(itertools.combinations(range(5), 2))
