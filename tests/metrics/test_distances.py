"""Tests of flowsim.metrics.distances against hand computations, closed forms and scipy."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from scipy import integrate, stats

from flowsim.metrics import distances as D

# ---------------------------------------------------------------------------------------------
# hand-made histograms


def test_chi2_distance_hand():
    # p = (1/2, 1/2, 0), q = (1/4, 1/4, 1/2):
    # ½[(1/4)²/(3/4) + (1/4)²/(3/4) + (1/2)²/(1/2)] = ½[1/12 + 1/12 + 1/2] = 1/3
    assert D.chi2_distance([2, 2, 0], [1, 1, 2]) == pytest.approx(1 / 3, rel=1e-12)


def test_kl_divergence_hand():
    # p = (1/2, 1/2), q = (1/4, 3/4): ½ log 2 + ½ log(2/3)
    expected = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert D.kl_divergence([1, 1], [1, 3]) == pytest.approx(expected, rel=1e-12)
    # p_i = 0 bins contribute nothing, whatever q_i is.
    assert D.kl_divergence([1, 1, 0], [1, 3, 4]) == pytest.approx(
        0.5 * math.log(0.5 / 0.125) + 0.5 * math.log(0.5 / 0.375), rel=1e-12)


def test_kl_divergence_empty_candidate_bin_uses_eps():
    # p = (1/2, 1/2), q = (1, 0): ½ log(½ / 1) + ½ log(½ / ε)
    eps = 1e-3
    expected = 0.5 * math.log(0.5) + 0.5 * math.log(0.5 / eps)
    assert D.kl_divergence([1, 1], [5, 0], eps=eps) == pytest.approx(expected, rel=1e-12)


def test_hellinger_distance_hand():
    # p = (1/2, 1/2), q = (1/4, 3/4): BC = sqrt(1/8) + sqrt(3/8)
    bc = math.sqrt(1 / 8) + math.sqrt(3 / 8)
    assert D.hellinger_distance([1, 1], [1, 3]) == pytest.approx(math.sqrt(1 - bc), rel=1e-12)


def test_histogram_metrics_bounds_on_disjoint_support():
    assert D.chi2_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert D.hellinger_distance([1, 0], [0, 1]) == pytest.approx(1.0)


def test_wasserstein_hand():
    # Shift by 1: W1 = 1. {0, 1} vs {0}: F - G = -1/2 on [0, 1): W1 = 1/2.
    assert D.wasserstein_1d([0.0, 1.0], [1.0, 2.0]) == pytest.approx(1.0)
    assert D.wasserstein_1d([0.0, 1.0], [0.0]) == pytest.approx(0.5)
    assert D.wasserstein_1d([0.0, 0.0, 3.0], [1.0]) == pytest.approx((2 / 3) * 1 + (1 / 3) * 2)


# ---------------------------------------------------------------------------------------------
# identical samples


def test_identical_samples_give_zero():
    x = np.random.default_rng(0).gamma(2.0, size=5000)
    edges = D.reference_binning(x, 50)
    d = D.sample_distances(x, x.copy(), edges=edges)
    assert d.chi2 == 0.0 and d.kl == 0.0 and d.wasserstein == 0.0
    assert d.hellinger == pytest.approx(0.0, abs=1e-7)  # sqrt of a rounding error


# ---------------------------------------------------------------------------------------------
# two Gaussians: closed forms


M1, S1, M2, S2 = 0.0, 1.0, 0.5, 1.3


@pytest.fixture(scope="module")
def gaussians():
    rng = np.random.default_rng(42)
    x = rng.normal(M1, S1, 1_000_000)
    y = rng.normal(M2, S2, 1_000_000)
    # Fine binning over the whole reference range, so little mass is left to the flow bins.
    edges = D.reference_binning(x, 200, quantile_range=(0.0, 1.0))
    return x, y, D.sample_distances(x, y, edges=edges)


def test_hellinger_gaussians_closed_form(gaussians):
    *_, d = gaussians
    h2 = 1 - math.sqrt(2 * S1 * S2 / (S1**2 + S2**2)) * math.exp(
        -((M1 - M2) ** 2) / (4 * (S1**2 + S2**2)))
    assert d.hellinger == pytest.approx(math.sqrt(h2), rel=0.02)


def test_kl_gaussians_closed_form(gaussians):
    *_, d = gaussians
    kl = math.log(S2 / S1) + (S1**2 + (M1 - M2) ** 2) / (2 * S2**2) - 0.5
    assert d.kl == pytest.approx(kl, rel=0.03)  # seed-to-seed scatter is ~0.6%


def test_chi2_gaussians_numerical(gaussians):
    # ½ ∫ (p − q)² / (p + q) dx by quadrature (no closed form).
    p, q = stats.norm(M1, S1).pdf, stats.norm(M2, S2).pdf
    expected = 0.5 * integrate.quad(lambda t: (p(t) - q(t)) ** 2 / (p(t) + q(t)), -15, 15)[0]
    assert gaussians[2].chi2 == pytest.approx(expected, rel=0.03)


def test_wasserstein_gaussians_equal_sigma():
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, 500_000)
    y = rng.normal(0.3, 1.0, 400_000)
    assert D.wasserstein_1d(x, y) == pytest.approx(0.3, abs=5e-3)


def test_wasserstein_gaussians_general_vs_integral(gaussians):
    x, y, d = gaussians
    f, g = stats.norm(M1, S1).cdf, stats.norm(M2, S2).cdf
    expected = integrate.quad(lambda t: abs(f(t) - g(t)), -15, 15, limit=200)[0]
    assert d.wasserstein == pytest.approx(expected, abs=5e-3)


@pytest.mark.parametrize("n, m", [(1, 7), (100, 37), (1000, 1000), (2345, 999)])
def test_wasserstein_vs_scipy(n, m):
    rng = np.random.default_rng(n + m)
    x = rng.standard_t(3, n)
    y = rng.normal(0.2, 1.5, m)
    assert D.wasserstein_1d(x, y) == pytest.approx(stats.wasserstein_distance(x, y), rel=1e-9)


def test_wasserstein_vs_scipy_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, 300).astype(float)
    y = rng.integers(1, 7, 170).astype(float)
    assert D.wasserstein_1d(x, y) == pytest.approx(stats.wasserstein_distance(x, y), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# binning and out-of-range values


def test_reference_binning_uniform_between_quantiles():
    x = np.random.default_rng(1).normal(size=10_000)
    edges = D.reference_binning(x, 20, quantile_range=(0.01, 0.99))
    lo, hi = np.quantile(x, [0.01, 0.99])
    np.testing.assert_allclose(edges, np.linspace(lo, hi, 21))


def test_reference_binning_quantile_kind_has_equal_content():
    x = np.random.default_rng(2).exponential(size=10_000)
    edges = D.reference_binning(x, 10, kind="quantile", quantile_range=(0.0, 1.0))
    counts = D.binned_counts(x, edges)
    assert counts[0] == 0 and counts[-1] == 0
    assert np.all(np.abs(counts[1:-1] - 1000) <= 1)


def test_reference_binning_discrete_and_constant_features():
    levels = np.repeat([0.0, 1.0865, 2.1731], [500, 300, 200])  # a b-tag like column
    edges = D.reference_binning(levels, 10, kind="quantile")
    assert np.all(np.diff(edges) > 0) and edges.size <= 11
    const = np.full(100, 3.0)
    np.testing.assert_allclose(D.reference_binning(const, 4), [2.5, 2.75, 3.0, 3.25, 3.5])


def test_binned_counts_flow_bins():
    edges = np.array([0.0, 1.0, 2.0])
    x = np.array([-5.0, -0.1, 0.0, 0.5, 1.0, 2.0, 2.0001, 9.0])
    # underflow 2; [0,1): 0, 0.5; [1,2]: 1, 2 (last edge inside); overflow 2
    np.testing.assert_array_equal(D.binned_counts(x, edges), [2, 2, 2, 2])
    inside = x[(x >= 0) & (x <= 2)]
    np.testing.assert_array_equal(D.binned_counts(x, edges)[1:-1], np.histogram(inside, edges)[0])


def test_out_of_range_values_are_counted_not_dropped():
    rng = np.random.default_rng(4)
    ref = rng.uniform(0.0, 1.0, 10_000)
    gen = np.concatenate([rng.uniform(0.2, 0.8, 20_000), np.full(7, -3.0), np.full(3, 5.0)])
    fd = D.feature_distances(ref, gen, n_bins=10, quantile_range=(0.0, 1.0), n_resamples=2)
    assert fd.ref_out_of_range == (0, 0)
    assert fd.gen_out_of_range == (7, 3)
    # The 10 outliers alone, in flow bins, separate otherwise equal histograms.
    edges = np.linspace(0.0, 1.0, 11)
    base = np.full(10_000, 0.55)
    d = D.sample_distances(base, np.concatenate([base, [-1.0] * 10]), edges=edges)
    assert d.chi2 > 0 and d.hellinger > 0 and d.kl > 0


# ---------------------------------------------------------------------------------------------
# resampling and the baseline


def test_feature_distances_resampling_mean_and_std():
    rng = np.random.default_rng(5)
    ref = rng.normal(0.0, 1.0, 20_000)
    gen = rng.normal(0.3, 1.1, 100_000)
    fd = D.feature_distances(ref, gen, n_bins=40, n_resamples=20, seed=1)
    assert fd.method == "subsample" and fd.sample_size == ref.size and fd.n_resamples == 20
    full = D.sample_distances(ref, gen, edges=D.reference_binning(ref, 40))
    for m in D.METRICS:
        assert getattr(fd.std, m) > 0, m
        # The mean at size 20k sits a little above the full-pool value (more noise): 10%.
        assert getattr(fd.value, m) == pytest.approx(getattr(full, m), rel=0.1), m


def test_feature_distances_is_seeded():
    rng = np.random.default_rng(6)
    ref, gen = rng.normal(size=2000), rng.normal(size=2000)
    a = D.feature_distances(ref, gen, n_bins=20, seed=3)
    b = D.feature_distances(ref, gen, n_bins=20, seed=3)
    c = D.feature_distances(ref, gen, n_bins=20, seed=4)
    assert a == b and a != c
    assert a.method == "bootstrap"  # a pool of n cannot give distinct subsamples of n


def test_feature_distances_sample_size_and_methods():
    rng = np.random.default_rng(8)
    ref, gen = rng.normal(size=1000), rng.normal(size=1500)
    assert D.feature_distances(ref, gen, n_bins=10, sample_size=500).method == "subsample"
    fd = D.feature_distances(ref, gen, n_bins=10, method="subsample")
    assert fd.method == "subsample" and fd.sample_size == 1000
    with pytest.raises(ValueError, match="cannot subsample 2000"):
        D.feature_distances(ref, gen, n_bins=10, sample_size=2000, method="subsample")
    single = D.feature_distances(ref, gen, n_bins=10, n_resamples=1)
    assert all(math.isnan(s) for s in single.std)


FEATURES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(9)
    test_a = rng.normal(size=(4000, 3))
    test_b = rng.normal(size=(6000, 3))
    generated = rng.normal(size=(12_000, 3)) * [1.0, 1.2, 1.0] + [0.0, 0.0, 0.6]
    return test_a, generated, test_b


def test_distance_table_rows(samples):
    rows = D.distance_table(*samples, FEATURES, n_bins=30, n_resamples=4, seed=2)
    assert len(rows) == 4 * len(FEATURES) + 4
    assert [r.feature for r in rows[-4:]] == ["mean"] * 4
    assert [r.metric for r in rows[:4]] == list(D.METRICS)
    for m in D.METRICS:
        per = [r for r in rows[:-4] if r.metric == m]
        mean = next(r for r in rows[-4:] if r.metric == m)
        assert mean.value == pytest.approx(np.mean([r.value for r in per]))
        assert mean.baseline == pytest.approx(np.mean([r.baseline for r in per]))
        assert mean.std == pytest.approx(math.sqrt(sum(r.std**2 for r in per)) / 3)
        # Feature "a" is generated like MC, "c" is shifted: value ~ baseline vs value >> baseline.
        a, c = per[0], per[2]
        assert a.value < 3 * a.baseline + 3 * a.std
        assert c.value > 2 * c.baseline and c.value > c.baseline + 5 * c.std


def test_distance_table_baseline_at_equal_size(samples):
    test_a, _, test_b = samples
    # Generated = test_b: the same draws at the same size, so value == baseline exactly.
    rows = D.distance_table(test_a, test_b, test_b, FEATURES, n_bins=30, n_resamples=3)
    for r in rows:
        assert r.value == r.baseline
    # The baseline equals feature_distances with test_b at the size of test_a.
    fd = D.feature_distances(test_a[:, 1], test_b[:, 1], n_bins=30, n_resamples=3,
                             seed=(0, 1))
    assert fd.sample_size == test_a.shape[0]
    row = next(r for r in rows if r.feature == "b" and r.metric == "wasserstein")
    assert row.baseline == fd.value.wasserstein


def test_distance_table_does_not_depend_on_n_jobs(samples):
    one = D.distance_table(*samples, FEATURES, n_bins=20, n_resamples=2, n_jobs=1)
    two = D.distance_table(*samples, FEATURES, n_bins=20, n_resamples=2, n_jobs=2)
    assert one == two


def test_distance_table_accepts_float32(samples):
    rows = D.distance_table(*(s.astype(np.float32) for s in samples), FEATURES, n_bins=20,
                            n_resamples=2)
    assert all(np.isfinite(r.value) for r in rows)


# ---------------------------------------------------------------------------------------------
# TSV


def test_write_and_read_distances_tsv(tmp_path, samples):
    rows = D.distance_table(*samples, FEATURES, n_bins=20, n_resamples=2)
    path = tmp_path / "eval" / "run" / "distances.tsv"
    D.write_distances_tsv(path, rows)
    text = path.read_text()
    assert text.splitlines()[0] == "feature\tmetric\tvalue\tstd\tbaseline"
    assert D.read_distances_tsv(path) == rows  # repr() round-trips floats exactly
    D.write_distances_tsv(path, rows[:4])  # overwrite in place
    assert len(D.read_distances_tsv(path)) == 4
    assert os.listdir(path.parent) == ["distances.tsv"]  # no temporary file left behind


def test_write_distances_tsv_failure_leaves_old_file(tmp_path):
    path = tmp_path / "distances.tsv"
    D.write_distances_tsv(path, [D.DistanceRow("a", "kl", 0.1, 0.01, 0.02)])
    with pytest.raises(ValueError):
        D.write_distances_tsv(path, [D.DistanceRow("a", "kl", "not a number", 0.0, 0.0)])
    assert len(D.read_distances_tsv(path)) == 1
    assert os.listdir(tmp_path) == ["distances.tsv"]


# ---------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: D.wasserstein_1d([], [1.0]), "x is empty"),
        (lambda: D.wasserstein_1d([1.0, np.nan], [1.0]), "x has 1 non-finite"),
        (lambda: D.wasserstein_1d([1.0], [[1.0]]), "y must be 1-D"),
        (lambda: D.chi2_distance([1, 2], [1, 2, 3]), "equal length"),
        (lambda: D.hellinger_distance([1, -1], [1, 1]), "negative"),
        (lambda: D.kl_divergence([0, 0], [1, 1]), "sums to zero"),
        (lambda: D.kl_divergence([1, 1], [1, 1], eps=0.0), "eps must be > 0"),
        (lambda: D.reference_binning([1.0, 2.0], 0), "n_bins"),
        (lambda: D.reference_binning([1.0, 2.0], 5, quantile_range=(0.5, 0.5)), "quantile_range"),
        (lambda: D.reference_binning([1.0, 2.0], 5, kind="log"), "unknown binning kind"),
        (lambda: D.binned_counts([1.0], [1.0, 1.0]), "strictly increasing"),
        (lambda: D.feature_distances([1.0, 2.0], [np.inf]), "gen has 1 non-finite"),
        (lambda: D.feature_distances([1.0, 2.0], [1.0], n_resamples=0), "n_resamples"),
        (lambda: D.feature_distances([1.0, 2.0], [1.0], method="jackknife"), "unknown method"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_distance_table_bad_inputs(samples):
    test_a, generated, test_b = samples
    with pytest.raises(ValueError, match=r"generated must have shape \(N, 3\)"):
        D.distance_table(test_a, generated[:, :2], test_b, FEATURES)
    with pytest.raises(ValueError, match=r"test_b must have shape \(N, 2\)"):
        D.distance_table(test_a[:, :2], generated[:, :2], test_b, FEATURES[:2])
    bad = test_b.copy()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"test_b has non-finite .* column\(s\) \[2\]"):
        D.distance_table(test_a, generated, bad, FEATURES)
    with pytest.raises(ValueError, match="reserved"):
        D.distance_table(test_a, generated, test_b, ["a", "mean", "c"])
    with pytest.raises(ValueError, match="not unique"):
        D.distance_table(test_a, generated, test_b, ["a", "a", "c"])
    with pytest.raises(ValueError, match="test_a has no events"):
        D.distance_table(test_a[:0], generated, test_b, FEATURES)


def test_ks_distance_is_scipys_statistic_and_weights_act_as_copies():
    ks_distance = D.ks_distance
    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 1, 700), np.round(rng.normal(0.2, 1.1, 500), 1)  # ties in y
    assert ks_distance(x, y) == pytest.approx(stats.ks_2samp(x, y).statistic, abs=1e-12)
    copies = rng.integers(0, 4, y.size)
    assert ks_distance(x, y, copies) == pytest.approx(ks_distance(x, np.repeat(y, copies)), abs=1e-12)
    with pytest.raises(ValueError, match="weights_y must hold one finite weight per value"):
        ks_distance(x, y, np.ones(3))


# ---------------------------------------------------------------------------------------------
# weighted samples


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_weighted_quantile_with_unit_or_equal_weights_is_numpys(n):
    x = np.random.default_rng(n).normal(size=n)
    q = np.r_[0.0, 0.001, np.linspace(0.01, 0.99, 37), 0.999, 1.0]
    expected = np.quantile(x, q)
    np.testing.assert_allclose(D.weighted_quantile(x, q, np.ones(n)), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(D.weighted_quantile(x, q, np.full(n, 2.5e-4)), expected, rtol=1e-12, atol=1e-12)
    assert D.weighted_quantile(x, 0.3, np.ones(n)) == pytest.approx(np.quantile(x, 0.3), rel=1e-12, abs=1e-12)


def test_weighted_quantile_with_zero_weights_is_that_of_the_others():
    rng = np.random.default_rng(1)
    x = np.round(rng.normal(size=500), 1)  # ties
    keep = rng.random(500) < 0.4
    q = np.linspace(0, 1, 21)
    np.testing.assert_allclose(D.weighted_quantile(x, q, 3.0 * keep), np.quantile(x[keep], q), rtol=1e-12, atol=1e-12)


def test_weighted_quantile_is_the_window_mean_of_the_weighted_quantile_function():
    # brute force: Q(t) on a fine grid of t, averaged over [h/n*, (h+1)/n*], h = (n* − 1) q
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=40), rng.exponential(size=40)
    order = np.argsort(x)
    cdf = np.cumsum(w[order]) / w.sum()
    n_eff = w.sum() ** 2 / np.sum(w**2)
    for q in (0.0, 0.1, 0.5, 0.77, 1.0):
        h = (n_eff - 1) * q
        t = np.linspace(h / n_eff, (h + 1) / n_eff, 200_001)[1:]
        brute = np.mean(x[order][np.minimum(np.searchsorted(cdf, t), 39)])
        assert D.weighted_quantile(x, q, w) == pytest.approx(brute, abs=1e-4)


def test_weighted_binned_counts_are_numpys_weighted_histogram():
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=5000), rng.normal(1.0, 1.0, 5000)
    edges = np.linspace(-2.0, 2.5, 31)
    h = D.binned_counts(x, edges, w)
    np.testing.assert_allclose(h[1:-1], np.histogram(x, edges, weights=w)[0], rtol=1e-12, atol=1e-12)
    assert h[0] == pytest.approx(w[x < -2.0].sum(), rel=1e-12)
    assert h[-1] == pytest.approx(w[x > 2.5].sum(), rel=1e-12)
    assert h.sum() == pytest.approx(w.sum(), rel=1e-12)
    # the last edge belongs to the last regular bin, with or without weights
    np.testing.assert_array_equal(D.binned_counts([0.0, 1.0, 1.0], [0.0, 0.5, 1.0], [1.0, 2.0, 3.0]), [0, 1, 5, 0])


def test_weighted_histogram_metrics_use_the_normalised_weighted_histograms():
    rng = np.random.default_rng(4)
    ref, gen = rng.normal(size=3000), rng.normal(0.3, 1.2, 2000)
    w_ref, w_gen = rng.exponential(size=3000), rng.exponential(size=2000)
    edges = np.linspace(-3, 3, 25)
    flow = np.r_[-np.inf, edges, np.inf]  # the flow bins (no value sits on an edge)
    p = np.histogram(ref, flow, weights=w_ref)[0]
    q = np.histogram(gen, flow, weights=w_gen)[0]
    p, q = p / p.sum(), q / q.sum()
    d = D.sample_distances(ref, gen, edges=edges, weights_ref=w_ref, weights_gen=w_gen)
    assert d.chi2 == pytest.approx(0.5 * np.sum((p - q) ** 2 / (p + q)), rel=1e-12)
    assert d.hellinger == pytest.approx(math.sqrt(1 - np.sum(np.sqrt(p * q))), rel=1e-12)
    assert d.kl == pytest.approx(np.sum(p * np.log(p / q)), rel=1e-12)
    assert d.wasserstein == pytest.approx(stats.wasserstein_distance(ref, gen, w_ref, w_gen), rel=1e-10)


def test_weighted_ks_and_wasserstein_with_integer_weights_are_repeated_rows():
    rng = np.random.default_rng(5)
    x, y = np.round(rng.normal(size=400), 1), rng.normal(0.2, 1.1, 300)  # ties in x
    wx, wy = rng.integers(0, 4, 400), rng.integers(1, 4, 300)
    xr, yr = np.repeat(x, wx), np.repeat(y, wy)
    assert D.ks_distance(x, y, wy, weights_x=wx) == pytest.approx(stats.ks_2samp(xr, yr).statistic, abs=1e-12)
    assert D.wasserstein_1d(x, y, wx, wy) == pytest.approx(D.wasserstein_1d(xr, yr), rel=1e-12)
    assert D.wasserstein_1d(x, y, wx, wy) == pytest.approx(stats.wasserstein_distance(x, y, wx, wy), rel=1e-12)
    # unit weights: KS exactly, W1 up to the order of the sums
    assert D.ks_distance(x, y, weights_x=np.ones(400)) == D.ks_distance(x, y)
    assert D.wasserstein_1d(x, y, np.ones(400)) == pytest.approx(D.wasserstein_1d(x, y), rel=1e-12)


def test_weighted_distances_accept_negative_weights():
    # +1 and −1 copies of the same far events cancel exactly: the weighted sample is the rest
    rng = np.random.default_rng(6)
    core, far = rng.normal(size=1000), rng.normal(8.0, 1.0, 200)
    x, w = np.r_[core, far, far], np.r_[np.ones(1000), np.ones(200), -np.ones(200)]
    y = rng.normal(size=800)
    assert D.ks_distance(x, y, weights_x=w) == pytest.approx(D.ks_distance(core, y), abs=1e-12)
    assert D.wasserstein_1d(x, y, w) == pytest.approx(D.wasserstein_1d(core, y), rel=1e-9)
    with pytest.raises(ValueError, match="weights_x must hold one finite weight per value"):
        D.wasserstein_1d(x, y, -w)


def test_negative_weight_bins_are_set_to_zero_and_counted():
    ref = np.r_[np.full(10, 0.25), np.full(10, 0.75), [0.75]]
    w = np.r_[np.ones(10), np.full(10, 0.1), [-5.0]]  # Σw in [0.5, 1] is −4
    edges = np.array([0.0, 0.5, 1.0])
    fd = D.feature_distances(ref, np.full(20, 0.25), edges=edges, n_resamples=3, weights_ref=w)
    assert fd.negative_bins == 1
    assert fd.value.chi2 == pytest.approx(0.0) and fd.value.hellinger == pytest.approx(0.0, abs=1e-7)
    assert fd.ref_out_of_range == (0, 0)


def test_resampled_draws_carry_their_weights():
    # half of the pool sits far away with weight 0: with the weights carried along (and sorted
    # with their values) the draws are N(0, 1) samples; without them W1 would be ~ 25
    rng = np.random.default_rng(7)
    ref = rng.normal(size=2000)
    pool = np.r_[rng.normal(size=4000), np.full(4000, 50.0)]
    w = np.r_[rng.exponential(size=4000) + 0.5, np.zeros(4000)]
    for method in ("subsample", "bootstrap"):
        fd = D.feature_distances(ref, pool, n_bins=20, n_resamples=4, method=method, weights_gen=w)
        assert fd.value.wasserstein < 0.15 and fd.value.chi2 < 0.05, method


def test_reference_binning_uses_weighted_quantiles():
    rng = np.random.default_rng(8)
    ref = np.r_[rng.uniform(0, 1, 4000), rng.uniform(10, 20, 4000)]
    w = np.r_[np.ones(4000), np.zeros(4000)]
    edges = D.reference_binning(ref, 10, quantile_range=(0.0, 1.0), weights=w)
    np.testing.assert_allclose(edges, np.linspace(ref[:4000].min(), ref[:4000].max(), 11), rtol=1e-12)
    quantile_edges = D.reference_binning(ref, 10, kind="quantile", weights=w)
    np.testing.assert_allclose(quantile_edges, np.quantile(ref[:4000], np.linspace(0.001, 0.999, 11)), rtol=1e-12)


def test_distance_table_with_unit_weights_is_the_unweighted_table(samples):
    test_a, generated, test_b = samples
    plain = D.distance_table(*samples, FEATURES, n_bins=30, n_resamples=3, seed=1)
    weighted = D.distance_table(*samples, FEATURES, n_bins=30, n_resamples=3, seed=1,
                                weights_a=np.ones(len(test_a)), weights_b=np.ones(len(test_b)))
    for p, w in zip(plain, weighted):
        assert (p.feature, p.metric) == (w.feature, w.metric)
        if p.metric == "wasserstein":  # the weighted merge sums in another order
            for a, b in zip(p[2:], w[2:]):
                assert b == pytest.approx(a, rel=1e-10)
        else:  # Σ 1.0 per bin is the count, exactly
            assert p == w


def test_distance_table_weights_reach_the_reference_and_the_baseline(samples):
    # weights that turn test_b into test_a's distribution: a test_b shifted by +1 and weighted
    # back by N(x; 0, 1) / N(x; 1, 1) must give a baseline near the unweighted one
    test_a, generated, test_b = samples
    shifted = test_b + [1.0, 0.0, 0.0]
    w = np.exp(-shifted[:, 0] + 0.5)
    rows = D.distance_table(test_a, generated, shifted, FEATURES, n_bins=30, n_resamples=3, weights_b=w)
    unweighted = D.distance_table(test_a, generated, shifted, FEATURES, n_bins=30, n_resamples=3)
    wasserstein = lambda rows: next(r.baseline for r in rows if r.feature == "a" and r.metric == "wasserstein")  # noqa: E731
    assert wasserstein(unweighted) > 0.9 and wasserstein(rows) < 0.1
    with pytest.raises(ValueError, match=r"weights_a must hold one finite weight per value \(4000\)"):
        D.distance_table(test_a, generated, test_b, FEATURES, weights_a=np.ones(3))
