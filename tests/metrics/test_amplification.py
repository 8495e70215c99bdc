"""Tests of flowsim.metrics.amplification against known answers: an MC sample is worth its own size,
a known bias is worth V / Σb², and a slightly wrong density is worth V / Σ(p_g − p_t)² by scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from flowsim.metrics import amplification as A


def _uneven_fractions(k: int = 20) -> np.ndarray:
    """K uneven fractions that sum to 1 (a falling spectrum: the largest cell 20 times the smallest)."""
    w = np.exp(-np.linspace(0.0, 3.0, k))
    return w / w.sum()


# ---------------------------------------------------------------------------------------------
# an MC sample is worth its own size


def test_mc_sample_is_worth_its_size_and_interval_covers():
    p = _uneven_fractions()
    n, n_t, reps = 5000, 2_000_000, 60
    rng = np.random.default_rng(2021)
    ratio, covered, gains = [], 0, []
    for r in range(reps):
        gen = rng.multinomial(n, p)
        tru = rng.multinomial(n_t, p)
        a = A.amplification(gen, n, tru, n_t, seed=r)
        assert a.n_cells == 20 and a.n_generated == n and a.n_truth == n_t
        # n / n_equiv = M̂ n / V̂, finite even where M̂ <= 0
        ratio.append(a.mse * n / a.mc_variance)
        covered += a.n_equiv_low <= n <= a.n_equiv_high
        gains.append(a.gain(n)[0])
        assert a.n_equiv_low <= a.n_equiv <= a.n_equiv_high
    ratio = np.asarray(ratio)
    se = ratio.std(ddof=1) / math.sqrt(reps)
    assert abs(ratio.mean() - 1.0) < 4 * se
    assert 0.45 <= covered / reps <= 0.9
    # G ≈ 1. V̂/M̂ is biased high (Jensen; M̂ is skewed right), so the median over seeds runs from
    # about 0.95 to 1.2; it is robust against the rare large n_equiv of a lucky draw.
    assert np.median(gains) == pytest.approx(1.0, abs=0.3)


def test_biased_sample_mse_adds_bias_and_noise_and_interval_covers():
    # E[M̂] = Σb² + Σ p_g(1 − p_g)/n: the noise of a finite generated sample counts against it. Here
    # bias and noise are of a size (Σb² ≈ 0.8 × noise), where a bootstrap around p̂_g would over-cover.
    p = _uneven_fractions()
    b = 0.004 * np.sin(np.arange(20))
    b -= b.mean()
    p_g = p + b
    n, n_t, reps = 5000, 2_000_000, 60
    expected = np.sum(b**2) + np.sum(p_g * (1 - p_g)) / n
    n_equiv_true = np.sum(p * (1 - p)) / expected
    rng = np.random.default_rng(7)
    mse, covered = [], 0
    for r in range(reps):
        a = A.amplification(rng.multinomial(n, p_g), n, rng.multinomial(n_t, p), n_t, seed=r)
        mse.append(a.mse)
        covered += a.n_equiv_low <= n_equiv_true <= a.n_equiv_high
    assert abs(np.mean(mse) - expected) < 4 * np.std(mse, ddof=1) / math.sqrt(reps)
    assert 0.45 <= covered / reps <= 0.9


# ---------------------------------------------------------------------------------------------
# deterministic templates at huge statistics


def test_known_bias_by_hand():
    p = _uneven_fractions()
    b = 1e-3 * np.cos(np.arange(20))
    b -= b.mean()  # Σb = 0: the generated fractions still sum to 1
    n_g = n_t = 10**12
    # floor, not round: rounded counts may sum to one event more than all (an error of 1e-12 either way)
    gen = np.floor(n_g * (p + b)).astype(np.int64)
    tru = np.floor(n_t * p).astype(np.int64)
    a = A.amplification(gen, n_g, tru, n_t)
    v = np.sum(p * (1 - p))
    p_g = p + b
    assert a.mc_variance == pytest.approx(v, rel=1e-9)
    assert a.n_equiv_limit == pytest.approx(v / np.sum(b**2), rel=1e-6)
    assert a.n_equiv == pytest.approx(v / (np.sum(b**2) + np.sum(p_g * (1 - p_g)) / n_g), rel=1e-6)
    # the bootstrap interval is tight and holds the estimate
    assert a.n_equiv_low <= a.n_equiv <= a.n_equiv_high
    assert a.n_equiv_high / a.n_equiv_low - 1 < 1e-3
    g, g_lo, g_hi = a.gain(1000)
    assert (g, g_lo, g_hi) == (a.n_equiv / 1000, a.n_equiv_low / 1000, a.n_equiv_high / 1000)


@pytest.mark.parametrize("with_flow", [False, True])
def test_wrong_width_normal_against_scipy(with_flow):
    # truth N(0, 1), model N(0, 1.05), 30 cells on [−3, 3]; tails are the complement or flow cells
    edges = np.linspace(-3.0, 3.0, 31)
    n = 10**13

    def template(sigma: float) -> np.ndarray:
        cdf = stats.norm.cdf(edges, scale=sigma)
        counts = np.round(n * np.diff(cdf))  # floats holding whole numbers, as from ROOT
        if with_flow:
            counts = A.cells_with_flow(counts, round(n * cdf[0]), round(n * (1 - cdf[-1])))
        return counts

    a = A.amplification(template(1.05), n, template(1.0), n)
    cdf_t, cdf_g = stats.norm.cdf(edges), stats.norm.cdf(edges, scale=1.05)
    p_t, p_g = np.diff(cdf_t), np.diff(cdf_g)
    if with_flow:
        p_t = np.concatenate([[cdf_t[0]], p_t, [1 - cdf_t[-1]]])
        p_g = np.concatenate([[cdf_g[0]], p_g, [1 - cdf_g[-1]]])
    assert a.n_cells == (32 if with_flow else 30)
    expected = np.sum(p_t * (1 - p_t)) / np.sum((p_g - p_t) ** 2)
    assert a.n_equiv == pytest.approx(expected, rel=1e-6)
    assert a.n_equiv_limit == pytest.approx(expected, rel=1e-6)


def test_indistinguishable_from_truth_is_infinite():
    c = np.array([120, 300, 250, 80, 50])  # 800 of 1000 events in the cells
    a = A.amplification(c, 1000, c, 1000)
    assert a.mse < 0
    assert a.n_equiv == math.inf and a.n_equiv_high == math.inf and a.n_equiv_limit == math.inf
    assert a.gain(100)[0] == math.inf


# ---------------------------------------------------------------------------------------------
# input checks


@pytest.mark.parametrize(
    ("gen", "n_g", "tru", "n_t", "match"),
    [
        ([1, 2, 3], 10, [1, 2], 10, "same shape"),
        ([[1, 2]], 10, [[1, 2]], 10, "1-D"),
        ([], 10, [], 10, "empty"),
        ([1, -2, 3], 10, [1, 2, 3], 10, "negative"),
        ([1, 2.5, 3], 10, [1, 2, 3], 10, "non-integer"),
        ([1, 2, 3], 10, [1, 2, 3.0000001], 10, "non-integer"),
        ([4, 4, 4], 10, [1, 2, 3], 10, "sum to 12, more than the 10"),
        ([1, 2, 3], 10, [11, 0, 0], 10, "exceed the 10"),
        ([1, np.nan, 3], 10, [1, 2, 3], 10, "non-finite"),
        ([1, 0], 1, [1, 0], 10, "at least 2"),
        ([1, 2], 10, [1, 2], 10.5, "integer"),
        ([1, 2], 10, [0, 0], 10, "all empty"),
        ([1, 2], 10, [10, 0], 10, "one cell holds all"),
    ],
)
def test_bad_input_raises(gen, n_g, tru, n_t, match):
    with pytest.raises(ValueError, match=match):
        A.amplification(np.asarray(gen), n_g, np.asarray(tru), n_t)


def test_bad_options_raise():
    c = np.array([3, 4, 5])
    with pytest.raises(ValueError, match="n_bootstrap"):
        A.amplification(c, 20, c, 20, n_bootstrap=5)
    with pytest.raises(ValueError, match="cl"):
        A.amplification(c, 20, c, 20, cl=1.0)
    with pytest.raises(ValueError, match="n_train"):
        A.amplification(c, 20, c, 20).gain(0)


def test_float_counts_holding_integers_are_accepted():
    g, t = np.array([30, 50, 20]), np.array([310, 490, 200])
    a_int = A.amplification(g, 100, t, 1000)
    a_float = A.amplification(g.astype(float), 100.0, t.astype(float), 1000.0)
    assert a_int == a_float


# ---------------------------------------------------------------------------------------------
# cells


def test_quantile_edges_of_uniform_sample():
    x = np.random.default_rng(3).uniform(size=200_000)
    e = A.quantile_edges(x, 10)
    assert e[0] == x.min() and e[-1] == x.max()
    np.testing.assert_allclose(e, np.linspace(0, 1, 11), atol=0.005)
    # equal content: each bin holds a tenth of the sample
    counts, _ = np.histogram(x, e)
    np.testing.assert_allclose(counts / x.size, 0.1, atol=1e-4)


def test_quantile_edges_ties_removed():
    x = np.array([0.0] * 60 + [1.0, 2.0, 3.0, 4.0] * 10)
    e = A.quantile_edges(x, 10)
    assert np.all(np.diff(e) > 0)
    assert e[0] == 0.0 and e[-1] == 4.0
    assert e.size < 11  # the six quantiles at 0 collapse to one edge
    np.testing.assert_array_equal(A.quantile_edges([5, 5, 5, 6], 1), [5.0, 6.0])


@pytest.mark.parametrize(
    ("values", "n_bins", "match"),
    [([1.0, 1.0, 1.0], 4, "2 distinct"), ([1.0, 2.0], 0, "n_bins"), ([1.0, np.inf], 2, "non-finite")],
)
def test_quantile_edges_errors(values, n_bins, match):
    with pytest.raises(ValueError, match=match):
        A.quantile_edges(np.asarray(values), n_bins)


def test_cells_with_flow():
    np.testing.assert_array_equal(A.cells_with_flow(np.array([3, 4]), 1, 2), [1, 3, 4, 2])
    with pytest.raises(ValueError, match=">= 0"):
        A.cells_with_flow(np.array([3, 4]), -1, 2)


# ---------------------------------------------------------------------------------------------
# reproducibility


def test_same_seed_same_interval():
    rng = np.random.default_rng(11)
    p = _uneven_fractions()
    gen, tru = rng.multinomial(2000, p), rng.multinomial(100_000, p)
    a, b = (A.amplification(gen, 2000, tru, 100_000, seed=5) for _ in range(2))
    assert a == b
    c = A.amplification(gen, 2000, tru, 100_000, seed=6)
    assert (c.n_equiv, c.mse) == (a.n_equiv, a.mse)  # the estimate does not depend on the seed
    assert (c.n_equiv_low, c.n_equiv_high) != (a.n_equiv_low, a.n_equiv_high)
