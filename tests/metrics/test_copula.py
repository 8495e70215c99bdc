"""Pairwise copula χ²: Pearson's homogeneity test per pair, calibrated, blind to the marginals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from flowsim import io
from flowsim.metrics.copula import (
    PAIR_TSV_COLUMNS,
    PairRow,
    copula_pair_chi2,
    copula_pair_table,
    mean_chi2_per_dof,
    pair_chi2_dof,
    read_copula_pairs_tsv,
    worst_pairs,
    write_copula_pairs_tsv,
)  # fmt: skip


def correlated_gaussian(n: int, rho01: float, seed: int) -> np.ndarray:
    """4-D Gaussian with correlation 0.5 between every pair except (0, 1), which has rho01."""
    cov = np.full((4, 4), 0.5) + 0.5 * np.eye(4)
    cov[0, 1] = cov[1, 0] = rho01
    return np.random.default_rng(seed).multivariate_normal(np.zeros(4), cov, size=n)


def test_matches_scipy_contingency_test_on_unequal_samples():
    """One pair against scipy's Pearson χ² of the 2 × K² table, built from scipy's ranks."""
    a, b = correlated_gaussian(3000, 0.5, 1), correlated_gaussian(2000, 0.3, 2)
    bins = 4
    table = []
    for x in (a, b):  # continuous data: no ties, so the random tie-breaking plays no part
        u = (stats.rankdata(x[:, :2], axis=0) - 0.5) / len(x)
        counts, _, _ = np.histogram2d(u[:, 0], u[:, 1], bins=bins, range=[[0, 1], [0, 1]])
        table.append(counts.ravel())
    expected = stats.chi2_contingency(np.array(table), correction=False).statistic
    assert copula_pair_chi2(a, b, bins=bins)[0, 1] == pytest.approx(expected, rel=1e-10)


def test_two_samples_of_one_distribution_average_the_degrees_of_freedom():
    chi2 = copula_pair_chi2(correlated_gaussian(20_000, 0.5, 3), correlated_gaussian(20_000, 0.5, 4))
    values = chi2[np.triu_indices(4, 1)]
    dof = pair_chi2_dof(8)
    # 6 pairs: the mean has sd sqrt(2·49/6) ≈ 4; every pair well inside the χ²(49) tail
    assert abs(values.mean() - dof) < 12
    assert values.max() < stats.chi2.ppf(0.9999, dof)
    assert np.isnan(np.diag(chi2)).all() and np.allclose(chi2, chi2.T, equal_nan=True)


def test_the_pair_with_the_wrong_correlation_is_the_worst():
    reference, candidate = correlated_gaussian(20_000, 0.5, 5), correlated_gaussian(20_000, 0.6, 6)
    chi2 = copula_pair_chi2(reference, candidate)
    (first, second, value), *_ = worst_pairs(chi2, ["x0", "x1", "x2", "x3"], k=2)
    assert (first, second) == ("x0", "x1") and value > 3 * pair_chi2_dof(8)


def test_increasing_maps_of_the_marginals_change_nothing():
    reference, candidate = correlated_gaussian(5000, 0.5, 7), correlated_gaussian(5000, 0.4, 8)
    warped = np.column_stack([np.exp(candidate[:, 0]), candidate[:, 1] ** 3, candidate[:, 2:] * 7 + 1])
    np.testing.assert_array_equal(copula_pair_chi2(reference, candidate), copula_pair_chi2(reference, warped))


def test_ties_are_broken_at_random_not_in_order_of_appearance():
    """A 3-valued feature, rows sorted by the other one: breaking ties in row order would make
    the tied ranks follow the other feature, a dependence that is not in the data."""
    rng = np.random.default_rng(9)
    a, b = (np.column_stack([rng.integers(0, 3, 20_000), rng.normal(size=20_000)]) for _ in range(2))
    b = b[np.argsort(b[:, 1])]
    assert copula_pair_chi2(a, b)[0, 1] < stats.chi2.ppf(0.9999, pair_chi2_dof(8))


def test_pair_table_puts_the_worst_pair_first_next_to_its_mc_baseline(tmp_path):
    reference, baseline = correlated_gaussian(20_000, 0.5, 10), correlated_gaussian(20_000, 0.5, 11)
    candidate = correlated_gaussian(20_000, 0.7, 12)
    rows = copula_pair_table(reference, candidate, baseline, ["a", "b", "c", "d"], bins=6, seed=3)
    assert len(rows) == 6 and [r.chi2 for r in rows] == sorted((r.chi2 for r in rows), reverse=True)
    assert (rows[0].feature_1, rows[0].feature_2) == ("a", "b") and rows[0].dof == 25
    np.testing.assert_allclose(rows[0].baseline, copula_pair_chi2(reference, baseline, bins=6, seed=3)[0, 1])
    assert rows[0].chi2 > 10 * rows[0].baseline
    path = tmp_path / "copula_pairs.tsv"
    write_copula_pairs_tsv(path, rows)
    table = io.read_tsv(path)
    assert tuple(table[0]) == PAIR_TSV_COLUMNS and len(table) == 6
    assert float(table[0]["chi2"]) == rows[0].chi2 and table[0]["feature_2"] == "b"
    assert read_copula_pairs_tsv(path) == rows
    with pytest.raises(ValueError, match="3 feature names for 4 columns"):
        copula_pair_table(reference, candidate, baseline, ["a", "b", "c"])


def test_mean_chi2_per_dof_averages_each_pair_over_its_own_dof():
    rows = [PairRow("a", "b", 98.0, 49.0, 49), PairRow("a", "c", 50.0, 75.0, 25)]
    assert mean_chi2_per_dof(rows) == pytest.approx(((98 / 49 + 50 / 25) / 2, (49 / 49 + 75 / 25) / 2))
    assert all(np.isnan(mean_chi2_per_dof([])))


@pytest.mark.parametrize(
    "reference, candidate, message",
    [
        (np.zeros((10, 2)), np.zeros((10, 3)), "alike"),
        (np.zeros((10, 2)), np.full((10, 2), np.nan), "finite"),
    ],
)  # fmt: skip
def test_bad_input_is_refused(reference, candidate, message):
    with pytest.raises(ValueError, match=message):
        copula_pair_chi2(reference, candidate)
