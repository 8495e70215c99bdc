"""Classifier two-sample test: the null is at ½, a shift is detected, r = D/(1−D) is a density ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from flowsim.metrics.c2st import (
    C2STSettings,
    classifier_two_sample_test,
    copula_and_marginal_tests,
    tree_two_sample_test,
    with_marginals_of,
)  # fmt: skip

SETTINGS = C2STSettings(
    hidden=32, residual_blocks=1, dropout=0.0,
    training={"batch_size": 256, "max_epochs": 15, "patience": 3, "device": "cpu"},
)  # fmt: skip


def gaussians(n, shift, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, 2)), rng.normal(0, 1, (n, 2)) + [shift, 0.0]


def test_same_distribution_gives_auc_one_half_within_its_error():
    ref, cand = gaussians(4000, 0.0, 1)
    result = classifier_two_sample_test(ref, cand, settings=SETTINGS, seed=2)
    assert abs(result.auc - 0.5) < 3 * result.auc_err + 0.01
    assert result.n_test == 4000 and result.n_train == 4000


def test_shifted_distribution_is_detected():
    ref, cand = gaussians(4000, 0.5, 3)
    result = classifier_two_sample_test(ref, cand, settings=SETTINGS, seed=4)
    # Bayes-optimal AUC for a 0.5 shift of unit Gaussians: Φ(0.5/√2) = 0.638
    assert result.auc > 0.6 and result.auc - 0.5 > 10 * result.auc_err
    assert result.accuracy > 0.55


def test_density_ratio_recovers_the_gaussian_ratio():
    # p_cand/p_ref = exp(μx − μ²/2) for a shift μ along x: log r is linear in x with slope μ
    ref, cand = gaussians(6000, 0.5, 5)
    result = classifier_two_sample_test(ref, cand, settings=SETTINGS, seed=6)
    d = np.clip(result.d_candidate, 1e-6, 1 - 1e-6)
    log_r = np.log(d / (1 - d))
    x = result.test_candidate[:, 0]
    central = np.abs(x) < 2
    slope, intercept = np.polyfit(x[central], log_r[central], 1)
    assert slope == pytest.approx(0.5, abs=0.12)
    assert intercept == pytest.approx(-0.125, abs=0.1)


def test_samples_are_cut_to_equal_size():
    ref, cand = gaussians(3000, 0.0, 7)
    result = classifier_two_sample_test(ref, cand[:1000], settings=SETTINGS, seed=8)
    assert result.n_train + result.n_test == 2000


def test_bad_settings_and_inputs_are_named():
    with pytest.raises(ValueError, match="c2st.test_fraction must lie in"):
        C2STSettings(test_fraction=1.0)
    with pytest.raises(ValueError, match=r"unknown c2st setting\(s\) \['epochs'\]"):
        C2STSettings.from_mapping({"epochs": 3})
    with pytest.raises(ValueError, match="must be \\(n, D\\) alike"):
        classifier_two_sample_test(np.zeros((10, 2)), np.zeros((10, 3)))


def test_tree_c2st_of_one_distribution_is_one_half():
    rng = np.random.default_rng(1)
    result = tree_two_sample_test(rng.normal(size=(4000, 3)), rng.normal(size=(4000, 3)), seed=1)
    assert abs(result.auc - 0.5) < 4 * result.std


def test_tree_c2st_reaches_the_bayes_auc_of_shifted_gaussians():
    # the best possible classifier of N(0, 1) vs N(1, 1) has AUC Φ(1/√2)
    rng = np.random.default_rng(2)
    result = tree_two_sample_test(rng.normal(0, 1, (8000, 1)), rng.normal(1, 1, (8000, 1)), seed=2)
    bayes = stats.norm.cdf(1 / math.sqrt(2))
    assert result.auc == pytest.approx(bayes, abs=4 * result.std + 0.01)
    assert result.auc < bayes + 4 * result.std


def test_tree_c2st_of_an_exactly_reweighted_candidate_is_one_half():
    # candidate N(0, 1) weighted by N(x; 0.5, 1)/N(x; 0, 1) is the reference N(0.5, 1)
    rng = np.random.default_rng(3)
    reference, candidate = rng.normal(0.5, 1, (8000, 1)), rng.normal(0, 1, (8000, 1))
    weights = np.exp(0.5 * candidate[:, 0] - 0.125)
    unweighted = tree_two_sample_test(reference, candidate, seed=3)
    weighted = tree_two_sample_test(reference, candidate, candidate_weights=weights, seed=3)
    assert unweighted.auc > 0.6
    assert abs(weighted.auc - 0.5) < 4 * weighted.std


def _correlated_normals(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    return rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)


def test_with_marginals_of_keeps_the_ranks_and_takes_the_donors_values():
    rng = np.random.default_rng(4)
    sample, donor = _correlated_normals(rng, 3000, 0.8), rng.exponential(size=(3000, 2))
    swapped = with_marginals_of(sample, donor)
    for j in range(2):
        np.testing.assert_array_equal(stats.rankdata(swapped[:, j]), stats.rankdata(sample[:, j]))
        np.testing.assert_array_equal(np.sort(swapped[:, j]), np.sort(donor[:, j]))


def test_with_marginals_of_keeps_the_gaussian_copulas_kendall_tau():
    # Kendall's tau of a Gaussian copula is (2/π) arcsin ρ, whatever the marginals; a donor twice
    # the sample's size still hands over its distribution (exponential) through order statistics
    rng = np.random.default_rng(5)
    rho = 0.8
    swapped = with_marginals_of(_correlated_normals(rng, 4000, rho), rng.exponential(size=(8000, 2)))
    tau = stats.kendalltau(swapped[:, 0], swapped[:, 1]).statistic
    assert tau == pytest.approx(2 / math.pi * math.asin(rho), abs=0.02)
    for j in range(2):
        assert stats.kstest(swapped[:, j], "expon").pvalue > 1e-3


def test_with_marginals_of_names_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(10, 2\) and \(10, 3\)"):
        with_marginals_of(np.zeros((10, 2)), np.zeros((10, 3)))


def test_copula_and_marginal_tests_tell_wrong_marginals_from_wrong_correlations():
    rng = np.random.default_rng(6)
    reference, baseline = _correlated_normals(rng, 4000, 0.8), _correlated_normals(rng, 4000, 0.8)
    # a monotone map of each coordinate changes the marginals and keeps the copula exactly
    stretched = _correlated_normals(rng, 4000, 0.8) * [1.0, 1.6] + [0.0, 0.4]
    split = copula_and_marginal_tests(reference, stretched, baseline, seed=1)
    assert abs(split.copula.auc - 0.5) < 4 * split.copula.std
    assert split.marginals.auc > 0.6
    # independent normals: right marginals, wrong correlation
    independent = rng.normal(size=(4000, 2))
    split = copula_and_marginal_tests(reference, independent, baseline, seed=1)
    assert split.copula.auc > 0.7
    assert abs(split.marginals.auc - 0.5) < 4 * split.marginals.std


def _signed_reference(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """N(0, 1) in 2-D as a signed mixture: n events of weight +1, plus n/2 events of N((2, 0), 1)
    with weight +1 and n/2 more with weight −1, which cancel in expectation."""
    bump = rng.normal(0, 1, (n, 2)) + [2.0, 0.0]
    x = np.concatenate([rng.normal(0, 1, (n, 2)), bump])
    return x, np.r_[np.ones(n), np.ones(n // 2), -np.ones(n - n // 2)]


def test_tree_c2st_with_unit_reference_weights_is_the_unweighted_test():
    ref, cand = gaussians(3000, 0.3, 9)
    plain = tree_two_sample_test(ref, cand, seed=1)
    assert tree_two_sample_test(ref, cand, reference_weights=np.ones(3000), seed=1) == plain


def test_tree_c2st_of_a_negatively_weighted_reference_is_one_half():
    rng = np.random.default_rng(10)
    reference, weights = _signed_reference(rng, 6000)
    candidate = rng.normal(0, 1, (12_000, 2))
    unweighted = tree_two_sample_test(reference, candidate, seed=2)
    weighted = tree_two_sample_test(reference, candidate, reference_weights=weights, seed=2)
    assert unweighted.auc > 0.6  # the unweighted reference has its bump at x = 2
    assert abs(weighted.auc - 0.5) < 4 * weighted.std
    assert weighted.n_neg < 0.5 * unweighted.n_neg  # Kish: (Σw)²/Σw² of ±1 weights


def test_mlp_c2st_with_unit_weights_is_the_unweighted_test():
    ref, cand = gaussians(1500, 0.5, 11)
    plain = classifier_two_sample_test(ref, cand, settings=SETTINGS, seed=3)
    weighted = classifier_two_sample_test(ref, cand, settings=SETTINGS, seed=3, reference_weights=np.ones(1500))
    assert weighted.auc == pytest.approx(plain.auc, abs=1e-12)
    assert weighted.accuracy == pytest.approx(plain.accuracy, abs=1e-12)
    assert weighted.n_test_effective == plain.n_test_effective == plain.n_test


def test_mlp_c2st_of_a_negatively_weighted_reference_is_one_half():
    rng = np.random.default_rng(12)
    reference, weights = _signed_reference(rng, 3000)
    candidate = rng.normal(0, 1, (6000, 2))
    result = classifier_two_sample_test(reference, candidate, settings=SETTINGS, seed=4, reference_weights=weights)
    assert abs(result.auc - 0.5) < 4 * result.auc_err + 0.01
    assert result.n_test_effective < 0.75 * result.n_test
    with pytest.raises(ValueError, match="c2st: reference: expected 6000 event weights"):
        classifier_two_sample_test(reference, candidate, settings=SETTINGS, reference_weights=np.ones(3))
