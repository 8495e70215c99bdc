"""Where two samples' correlations differ: a χ² homogeneity test of every feature pair's copula.

Each sample's columns become normalised ranks u = (r + ½)/n, with ties broken at random so that
a quantised feature still fills its cells evenly. That removes the marginals and keeps the
copula: the statistic is unchanged by any increasing map of a feature. For every pair (i, j)
the unit square is cut into K × K equal cells, and the cell counts a_k, b_k of the two samples
(sizes n_a, n_b) are compared with Pearson's χ² for homogeneity of the 2 × K² table,

    χ²_ij = Σ_k (a_k n_b − b_k n_a)² / (n_a n_b (a_k + b_k)),   cells with a_k + b_k = 0 skipped.

The ranks fix every row and column of each sample's K × K table, so for two samples of one
distribution χ²_ij has (K − 1)² degrees of freedom rather than K² − 1: mean (K − 1)², 49 for
K = 8. A pair far above that is one whose dependence the candidate gets wrong. It locates what
the copula half of :func:`~flowsim.metrics.c2st.copula_and_marginal_tests` only measures as a
whole. As for the per-feature distances, the same statistic between two independent MC samples
(test_a vs test_b) is the baseline a generator as good as more MC reaches.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from flowsim import io

__all__ = [
    "PAIR_BINS", "PAIR_TSV_COLUMNS", "PairRow", "copula_cells", "copula_pair_chi2", "copula_pair_table",
    "mean_chi2_per_dof", "pair_chi2_dof", "read_copula_pairs_tsv", "worst_pairs", "write_copula_pairs_tsv",
]  # fmt: skip

#: cells per rank axis K of every pair's K × K table, unless a caller chooses another
PAIR_BINS = 8
#: columns of ``copula_pairs.tsv``
PAIR_TSV_COLUMNS = ("feature_1", "feature_2", "chi2", "baseline", "dof")


class PairRow(NamedTuple):
    """One feature pair: the candidate's copula χ² against the reference, the MC baseline's."""

    feature_1: str
    feature_2: str
    chi2: float
    baseline: float
    dof: int


def pair_chi2_dof(bins: int) -> int:
    """Degrees of freedom of one pair's χ² for two samples of one distribution: (K − 1)²."""
    return (bins - 1) ** 2


def copula_cells(x: np.ndarray, bins: int, rng: np.random.Generator) -> np.ndarray:
    """Per column, the cell ⌊K u⌋ ∈ {0, …, K − 1} of each event's normalised rank u = (r + ½)/n,
    ties in random order."""
    n, d = x.shape
    cells = np.empty((n, d), dtype=np.int64)
    position = (np.arange(n) + 0.5) * bins / n
    for j in range(d):
        order = np.lexsort((rng.random(n), x[:, j]))  # sort by value, ties by a random key
        cells[order, j] = position.astype(np.int64)
    return cells


def copula_pair_chi2(
    reference: np.ndarray, candidate: np.ndarray, *, bins: int = PAIR_BINS, seed: int = 0
) -> np.ndarray:
    """χ²_ij of the two samples' copulas for every feature pair (module docstring): a symmetric
    (D, D) array with NaN on the diagonal. Compare with :func:`pair_chi2_dof`."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.ndim != 2 or candidate.ndim != 2 or reference.shape[1] != candidate.shape[1]:
        raise ValueError(f"samples must be (n, D) alike, got {reference.shape} and {candidate.shape}")
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    if not (np.isfinite(reference).all() and np.isfinite(candidate).all()):
        raise ValueError("samples must be finite: ranks of NaN or inf are not defined")
    rng = np.random.default_rng(seed)
    n_a, n_b, d = len(reference), len(candidate), reference.shape[1]
    cells_a, cells_b = copula_cells(reference, bins, rng), copula_cells(candidate, bins, rng)
    chi2 = np.full((d, d), np.nan)
    for i in range(d):
        for j in range(i + 1, d):
            a = np.bincount(cells_a[:, i] * bins + cells_a[:, j], minlength=bins * bins)
            b = np.bincount(cells_b[:, i] * bins + cells_b[:, j], minlength=bins * bins)
            filled = a + b > 0
            diff = a[filled] * float(n_b) - b[filled] * float(n_a)
            chi2[i, j] = chi2[j, i] = np.sum(diff**2 / (n_a * float(n_b) * (a[filled] + b[filled])))
    return chi2


def _pairs_worst_first(chi2: np.ndarray) -> list[tuple[int, int]]:
    """Every pair (i < j) of a χ² matrix, the largest χ² first (ties in (i, j) order)."""
    i, j = np.triu_indices(len(chi2), 1)
    order = np.argsort(-chi2[i, j], kind="stable")
    return [(int(i[k]), int(j[k])) for k in order]


def worst_pairs(chi2: np.ndarray, features: Sequence[str], k: int = 3) -> list[tuple[str, str, float]]:
    """The k pairs with the largest χ², largest first, as (feature, feature, χ²)."""
    return [(features[i], features[j], float(chi2[i, j])) for i, j in _pairs_worst_first(chi2)[:k]]


def copula_pair_table(
    reference: np.ndarray,
    candidate: np.ndarray,
    baseline: np.ndarray,
    features: Sequence[str],
    *,
    bins: int = PAIR_BINS,
    seed: int = 0,
) -> list[PairRow]:
    """Every pair's χ² of ``candidate`` against ``reference`` next to that of ``baseline`` (an
    independent sample of the reference's distribution), the worst-modelled pair first."""
    if len(features) != np.shape(reference)[1]:
        raise ValueError(f"{len(features)} feature names for {np.shape(reference)[1]} columns")
    chi2 = copula_pair_chi2(reference, candidate, bins=bins, seed=seed)
    base = copula_pair_chi2(reference, baseline, bins=bins, seed=seed)
    dof = pair_chi2_dof(bins)
    return [
        PairRow(features[i], features[j], float(chi2[i, j]), float(base[i, j]), dof)
        for i, j in _pairs_worst_first(chi2)
    ]  # fmt: skip


def write_copula_pairs_tsv(path: str | os.PathLike[str], rows: Sequence[PairRow]) -> None:
    """``copula_pairs.tsv``: one line per pair, columns :data:`PAIR_TSV_COLUMNS`, atomically."""
    io.write_tsv(path, [r._asdict() for r in rows], PAIR_TSV_COLUMNS)


def read_copula_pairs_tsv(path: str | os.PathLike[str]) -> list[PairRow]:
    """The rows of a ``copula_pairs.tsv`` written by :func:`write_copula_pairs_tsv`."""
    return [
        PairRow(r["feature_1"], r["feature_2"], float(r["chi2"]), float(r["baseline"]), int(r["dof"]))
        for r in io.read_tsv(path)
    ]


def mean_chi2_per_dof(rows: Sequence[PairRow]) -> tuple[float, float]:
    """Mean over pairs of χ²/dof for the candidate and for the MC baseline; 1 is the null's
    expectation. (NaN, NaN) when there are no pairs (a single feature)."""
    if not rows:
        return math.nan, math.nan
    n = len(rows)
    return (math.fsum(r.chi2 / r.dof for r in rows) / n, math.fsum(r.baseline / r.dof for r in rows) / n)
