"""One-dimensional distances between a reference (MC) sample and a candidate (generated) sample.

The paper (Gavranovič & Kerševan 2024, Sec. 4.2) compares generated and MC events feature by
feature with the χ² distance, the Kullback–Leibler divergence, the Hellinger distance and the
Wasserstein distance, averages over features, and calibrates the numbers against a baseline:
the same distances between two independent halves of the MC hold-out (``test_a`` vs ``test_b``).

Binning (histogram metrics only):
    The binning is fixed once per feature from the **reference** sample and reused for every
    candidate, resample and the baseline, so all numbers of a feature are on the same footing.
    ``kind="uniform"`` (default): ``n_bins`` equal-width bins between the quantiles
    ``quantile_range = (lo, hi)`` of the reference (default 0.1% and 99.9%, robust to the long
    tails of momenta and masses). ``kind="quantile"``: edges at ``n_bins + 1`` equally spaced
    reference quantiles in ``(lo, hi)`` (equal reference content; repeated edges, e.g. of a
    discrete feature, are merged so fewer bins may result). A reference with a single value
    gets the window ``[v - 1/2, v + 1/2]``.

    Values outside the edges are **not dropped**: every histogram has an underflow bin (index 0)
    and an overflow bin (index -1) that take part in all three histogram metrics like any other
    bin, and their counts are returned (``FeatureDistances.*_out_of_range``). A value equal to
    the last edge belongs to the last regular bin (the ``numpy.histogram`` convention).

Histogram metrics, with p = reference and q = candidate histograms each normalised to unit sum
over all B bins (flow bins included):

    χ²(p, q)  = ½ Σ_i (p_i − q_i)² / (p_i + q_i)   ∈ [0, 1], bins with p_i + q_i = 0 skipped
    KL(p ‖ q) = Σ_{i: p_i > 0} p_i log(p_i / q̃_i)  ≥ 0, q̃_i = q_i, or ε where q_i = 0
    H(p, q)   = sqrt(1 − Σ_i sqrt(p_i q_i))        ∈ [0, 1]

χ² is the triangular discrimination divided by two (0 for equal histograms, 1 for disjoint
ones). KL is taken in the direction reference ‖ candidate, so it penalises a candidate that
misses regions populated by MC. Bins with p_i = 0 contribute 0 (the limit p log p → 0). A bin
with p_i > 0 and q_i = 0 would make KL infinite; there q_i is replaced by ε. When the candidate
is a sample of n events, ``feature_distances`` takes ε = 1/(2n), i.e. half an event: the bin is
treated as if it had fallen just short of one count (no renormalisation; the effect is at most
B/(2n)). The number of such bins is counted and returned, never hidden.

Wasserstein-1 is computed on the **raw** samples (never on bin heights), from the empirical
cumulative distribution functions F (reference, n values) and G (candidate, m values):

    W1 = ∫ |F(x) − G(x)| dx = Σ_k |F(z_k) − G(z_k)| (z_{k+1} − z_k)

over the sorted pooled sample z; for n = m this equals mean_i |x_(i) − y_(i)| of the order
statistics. Cost O((n + m) log(n + m)).

Resampling: ``feature_distances`` draws the candidate K times at ``sample_size`` values (the
reference size by default) and reports the mean and standard deviation (ddof=1) over the K
draws; the reference is always used in full. Draws are subsamples without replacement when the
candidate pool holds at least twice ``sample_size`` values (close to fresh independent samples),
otherwise bootstrap samples with replacement (a subsample of n from n would repeat the same set).
The baseline is the same computation with ``test_b`` as the candidate, hence at the same sample
size; it uses the same random stream as the generated sample, so identical inputs give
identical numbers.

Weighted MC (``weights_*`` arguments, one weight per event, negative ones allowed with a
positive sum; None is the unweighted computation, unchanged): a histogram bin holds Σw, the
empirical CDFs of KS and W1 are the weighted ones, ``F(t) = Σ_{x_i ≤ t} w_i / Σ w_i``, and the
reference binning uses the weighted quantiles of :func:`weighted_quantile`. A bin whose weights
sum below zero (negative weights in a sparse region) is set to 0 for χ², KL and Hellinger, which
need probabilities, and counted (``FeatureDistances.negative_bins``). A draw of a weighted
sample carries the drawn events' weights along; the generated sample is unweighted.

References:
    Gavranovič, Kerševan, "Systematic evaluation of generative machine learning capability to
    simulate distributions of observables at the LHC", EPJC 84 (2024) 911.
    Villani, "Optimal Transport: Old and New" (2009), Remark 2.19 (W1 in one dimension).
    Akinshin, "Weighted quantile estimators", arXiv:2304.07265 (2023) (the weighted type-7 quantile).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, NamedTuple

import numpy as np

from flowsim.arrays import finite_sample
from flowsim.io import write_tsv
from flowsim.weights import effective_sample_size

__all__ = [
    "METRICS",
    "TSV_HEADER",
    "DistanceRow",
    "Distances",
    "FeatureDistances",
    "binned_counts",
    "chi2_distance",
    "distance_table",
    "feature_distances",
    "hellinger_distance",
    "kl_divergence",
    "ks_distance",
    "read_distances_tsv",
    "reference_binning",
    "sample_distances",
    "wasserstein_1d",
    "weighted_quantile",
    "write_distances_tsv",
]

log = logging.getLogger(__name__)

#: Metric names, in table order.
METRICS: tuple[str, ...] = ("chi2", "kl", "hellinger", "wasserstein")

#: Columns of ``distances.tsv``.
TSV_HEADER: tuple[str, ...] = ("feature", "metric", "value", "std", "baseline")

Seed = int | Sequence[int]


class Distances(NamedTuple):
    """The four distances of one comparison (or a statistic of them over resamples)."""

    chi2: float
    kl: float
    hellinger: float
    wasserstein: float


class FeatureDistances(NamedTuple):
    """Distances of one feature, resampled.

    Attributes:
        value: mean over the K draws of each metric.
        std: standard deviation (ddof=1) over the K draws; NaN when K = 1.
        n_resamples: K.
        sample_size: number of candidate values per draw.
        method: ``"subsample"`` (without replacement) or ``"bootstrap"`` (with replacement).
        ref_out_of_range: (underflow, overflow) counts of the full reference.
        gen_out_of_range: (underflow, overflow) counts of the full candidate pool.
        kl_empty_bins: number of (draw, bin) pairs with p_i > 0 and q_i = 0, where the KL
            divergence used ε = 1/(2 · sample_size) for q_i.
        negative_bins: number of bins whose weights summed below zero and were set to 0 (the
            reference's, plus those of every draw); 0 for unweighted samples.
    """

    value: Distances
    std: Distances
    n_resamples: int
    sample_size: int
    method: str
    ref_out_of_range: tuple[int, int]
    gen_out_of_range: tuple[int, int]
    kl_empty_bins: int
    negative_bins: int = 0


class DistanceRow(NamedTuple):
    """One row of ``distances.tsv``; ``feature == "mean"`` marks the average over features."""

    feature: str
    metric: str
    value: float
    std: float
    baseline: float


# ---------------------------------------------------------------------------------------------
# input checks


def _check_matrix(x: np.ndarray, name: str, n_features: int) -> np.ndarray:
    """``x`` as a finite (N, n_features) array with N > 0, or a ValueError naming ``name``."""
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (N, {n_features}), got {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} has no events")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    finite = np.isfinite(a).all(axis=0)
    if not finite.all():
        raise ValueError(f"{name} has non-finite values (NaN or inf) in column(s) "
                         f"{np.flatnonzero(~finite).tolist()}")
    return a


def _check_histograms(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two histograms and return them normalised to unit sum."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.ndim != 1 or p.shape != q.shape:
        raise ValueError(f"histograms must be 1-D of equal length, got shapes {p.shape} and "
                         f"{q.shape}")
    for name, h in (("p", p), ("q", q)):
        if h.size == 0:
            raise ValueError(f"histogram {name} is empty")
        if not np.isfinite(h).all():
            raise ValueError(f"histogram {name} has non-finite entries")
        if (h < 0).any():
            raise ValueError(f"histogram {name} has negative entries")
        if h.sum() <= 0:
            raise ValueError(f"histogram {name} sums to zero")
    return p / p.sum(), q / q.sum()


def _check_sample_weights(weights: np.ndarray | None, size: int, name: str) -> np.ndarray | None:
    """``weights`` as finite float64 of shape (size,) with a positive sum (None passes)."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (size,) or not np.isfinite(w).all() or not w.sum() > 0:
        raise ValueError(f"{name} must hold one finite weight per value ({size}) with a positive sum, "
                         f"got shape {w.shape} and sum {w.sum():g}")
    return w


def _sorted_with(x: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` sorted, and its weights in the same order (None stays None)."""
    if w is None:
        return np.sort(x), None
    order = np.argsort(x, kind="stable")
    return x[order], w[order]


def weighted_quantile(x: np.ndarray, q: float | np.ndarray, weights: np.ndarray) -> np.ndarray | float:
    """Quantiles of a weighted sample that equal ``numpy.quantile``'s default (linear) ones for
    unit weights; invariant under a common scale of the weights.

    With ``t_i = Σ_{k ≤ i} w_k / Σ w`` the weighted CDF at the sorted values ``x_(i)`` (its running
    maximum, clipped to [0, 1], where negative weights make it fall back) and ``Q(t) = x_(i)`` for
    ``t_{i−1} < t ≤ t_i`` the weighted quantile function, the estimate is its mean over a window of
    width ``1/n*`` (n* the Kish size (Σw)²/Σw², at least 1):

        Q̂(q) = n* ∫_a^b Q(t) dt,   a = h / n*, b = (h + 1) / n*, h = (n* − 1) q

    For unit weights the window [h/n, (h+1)/n] covers at most one step of ``Q``, and Q̂ is the
    linear interpolation ``x_(⌊h⌋) + (h − ⌊h⌋)(x_(⌊h⌋+1) − x_(⌊h⌋))`` (Hyndman & Fan type 7), the
    Harrell–Davis-like construction of Akinshin (2023). An event of weight 0 is as good as
    absent; an integer weight is *not* a number of copies (type 7 itself changes when every
    event is repeated).
    """
    x = finite_sample(x, "x")
    w = _check_sample_weights(weights, x.size, "weights")
    qs = np.asarray(q, dtype=np.float64)
    if not ((qs >= 0) & (qs <= 1)).all():
        raise ValueError(f"quantile levels must lie in [0, 1], got {q!r}")
    xs, ws = _sorted_with(x, w)
    cumulative = np.cumsum(ws)
    t = np.clip(np.maximum.accumulate(cumulative / cumulative[-1]), 0.0, 1.0)
    n_eff = max(effective_sample_size(ws), 1.0)
    jumps = np.diff(xs)  # Q jumps by x_(i+1) − x_(i) at t_i
    out = np.empty(qs.size)
    for k, level in enumerate(qs.ravel()):
        h = (n_eff - 1.0) * level
        a, b = h / n_eff, (h + 1.0) / n_eff
        # Q(a⁺), then every jump inside (a, b) adds its height times the part of the window above it
        lo = min(int(np.searchsorted(t, a, side="right")), xs.size - 1)
        hi = int(np.searchsorted(t, b, side="left"))
        inside = slice(lo, min(hi, xs.size - 1))
        out[k] = xs[lo] + n_eff * np.dot(jumps[inside], b - t[inside])
    return out.reshape(qs.shape) if qs.ndim else float(out[0])


# ---------------------------------------------------------------------------------------------
# binning


def reference_binning(
    ref: np.ndarray,
    n_bins: int = 100,
    *,
    kind: Literal["uniform", "quantile"] = "uniform",
    quantile_range: tuple[float, float] = (0.001, 0.999),
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Bin edges for one feature, fixed from the reference sample.

    Arguments:
        ref: reference values, shape (N,).
        n_bins: number of regular bins (flow bins come on top).
        kind: ``"uniform"``, equal widths between the quantiles ``quantile_range`` of ``ref``;
            ``"quantile"``, edges at equally spaced quantiles within ``quantile_range``
            (repeated edges merged).
        quantile_range: (lo, hi) with 0 <= lo < hi <= 1; (0, 1) spans min to max.
        weights: event weights of ``ref`` (weighted quantiles, :func:`weighted_quantile`),
            defaults to None (unweighted).

    Returns:
        strictly increasing edges, shape (n_bins + 1,) (fewer for merged quantile edges).
    """
    ref = finite_sample(ref, "ref")
    weights = _check_sample_weights(weights, ref.size, "weights")
    quantile = np.quantile if weights is None else lambda a, q: weighted_quantile(a, q, weights)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    lo, hi = quantile_range
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"quantile_range must satisfy 0 <= lo < hi <= 1, got {quantile_range}")
    if kind == "uniform":
        a, b = quantile(ref, [lo, hi])
        if b <= a:  # a (locally) constant feature: fall back to its full range, then a unit window
            a, b = float(ref.min()), float(ref.max())
        if b <= a:
            a, b = a - 0.5, b + 0.5
        return np.linspace(a, b, int(n_bins) + 1)
    if kind == "quantile":
        edges = np.unique(quantile(ref, np.linspace(lo, hi, int(n_bins) + 1)))
        if edges.size < 2:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
        return edges
    raise ValueError(f"unknown binning kind {kind!r}; expected 'uniform' or 'quantile'")


def _counts_sorted(xs: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Flow-bin histogram of an already sorted sample in O(B log n)."""
    below = np.searchsorted(xs, edges, side="left")  # number of values < each edge
    below[-1] = np.searchsorted(xs, edges[-1], side="right")  # last bin is closed on the right
    return np.concatenate(([below[0]], np.diff(below), [xs.size - below[-1]]))


def _weighted_counts(x: np.ndarray, w: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Flow-bin histogram of Σw per bin (any order of ``x``)."""
    index = np.searchsorted(edges, x, side="right")  # 0: underflow, k: [e_{k−1}, e_k), B + 1: overflow
    index[x == edges[-1]] = edges.size - 1  # the last bin is closed on the right
    return np.bincount(index, weights=w, minlength=edges.size + 1)


def _check_edges(edges: np.ndarray) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.isfinite(e).all() or (np.diff(e) <= 0).any():
        raise ValueError("edges must be a finite, strictly increasing 1-D array of >= 2 values")
    return e


def binned_counts(x: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Histogram of ``x`` with flow bins, of event counts or (with ``weights``) of Σw per bin.

    Returns:
        counts, shape (len(edges) + 1,): index 0 the underflow (x < edges[0]), 1..B the
        regular bins [e_k, e_{k+1}) (the last one closed), -1 the overflow (x > edges[-1]).
        Integers summing to len(x), or float64 weight sums (negative ones possible) summing to Σw.
    """
    x = finite_sample(x, "x")
    if weights is None:
        return _counts_sorted(np.sort(x), _check_edges(edges))
    return _weighted_counts(x, _check_sample_weights(weights, x.size, "weights"), _check_edges(edges))


# ---------------------------------------------------------------------------------------------
# the four distances


def chi2_distance(p: np.ndarray, q: np.ndarray) -> float:
    """χ² = ½ Σ (p_i − q_i)² / (p_i + q_i) of two histograms (counts or weights; normalised)."""
    p, q = _check_histograms(p, q)
    s = p + q
    nz = s > 0  # 0/0 bins carry no information
    return float(0.5 * np.sum((p[nz] - q[nz]) ** 2 / s[nz]))


def kl_divergence(p: np.ndarray, q: np.ndarray, *, eps: float = 1e-10) -> float:
    """KL(p ‖ q) = Σ_{p_i>0} p_i log(p_i / q̃_i), q̃_i = max(q_i, ε) where q_i = 0.

    Arguments:
        p: reference histogram, shape (B,); normalised here.
        q: candidate histogram, shape (B,); normalised here.
        eps: stand-in probability for empty candidate bins, defaults to 1e-10
            (``feature_distances`` passes half an event, 1/(2n)).
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    p, q = _check_histograms(p, q)
    nz = p > 0
    qq = np.where(q[nz] > 0, q[nz], eps)
    return float(np.sum(p[nz] * np.log(p[nz] / qq)))


def hellinger_distance(p: np.ndarray, q: np.ndarray) -> float:
    """H = sqrt(1 − Σ sqrt(p_i q_i)) ∈ [0, 1] of two histograms (normalised here)."""
    p, q = _check_histograms(p, q)
    bc = np.sum(np.sqrt(p * q))  # Bhattacharyya coefficient
    return float(math.sqrt(max(0.0, 1.0 - bc)))  # rounding can push bc a hair above 1


def _wasserstein_sorted(xs: np.ndarray, ys: np.ndarray) -> float:
    """W1 of two sorted samples."""
    n, m = xs.size, ys.size
    if n == m:  # matching order statistics is the optimal coupling for equal sizes
        return float(np.mean(np.abs(xs - ys)))
    z = np.concatenate((xs, ys))
    # A stable argsort of two sorted runs is a merge; it also tells which sample each value is from.
    order = np.argsort(z, kind="stable")
    zs = z[order]
    n_x = np.cumsum(order < n)  # integer counts keep F exact
    k = np.arange(1, n + m + 1)
    diff_cdf = n_x / n - (k - n_x) / m
    return float(np.sum(np.abs(diff_cdf[:-1]) * np.diff(zs)))


def _wasserstein_weighted(xs: np.ndarray, wx: np.ndarray | None, ys: np.ndarray, wy: np.ndarray | None) -> float:
    """W1 = Σ_k |F(z_k) − G(z_k)| (z_{k+1} − z_k) of two sorted samples with weighted CDFs
    (None: unit weights)."""
    wx = np.ones(xs.size) if wx is None else wx
    wy = np.ones(ys.size) if wy is None else wy
    z = np.concatenate((xs, ys))
    order = np.argsort(z, kind="stable")
    # each value moves F − G by its normalised weight, + for x and − for y
    diff_cdf = np.cumsum(np.concatenate((wx / wx.sum(), -wy / wy.sum()))[order])
    return float(np.sum(np.abs(diff_cdf[:-1]) * np.diff(z[order])))


def ks_distance(
    x: np.ndarray, y: np.ndarray, weights_y: np.ndarray | None = None, *, weights_x: np.ndarray | None = None
) -> float:
    """Kolmogorov–Smirnov distance sup_t |F_x(t) − F_y(t)| of two 1-D samples, either optionally
    weighted (its F is then the weighted empirical CDF, Σ_{v ≤ t} w / Σ w; negative weights are
    allowed with a positive sum): the largest gap in cumulative fraction."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError("ks_distance needs non-empty samples")
    w = np.ones(y.size) if weights_y is None else _check_sample_weights(weights_y, y.size, "weights_y")
    order = np.argsort(y, kind="stable")
    y, cdf_y = y[order], np.cumsum(w[order]) / w.sum()
    # both CDFs are right-continuous steps that jump only at sample values: compare them there
    if weights_x is None:
        x = np.sort(x)
        t = np.concatenate([x, y])
        f_x = np.searchsorted(x, t, side="right") / x.size
    else:
        v = _check_sample_weights(weights_x, x.size, "weights_x")
        order = np.argsort(x, kind="stable")
        x, cdf_x = x[order], np.cumsum(v[order]) / v.sum()
        t = np.concatenate([x, y])
        at = np.searchsorted(x, t, side="right")
        f_x = np.where(at > 0, cdf_x[np.maximum(at - 1, 0)], 0.0)
    at = np.searchsorted(y, t, side="right")
    f_y = np.where(at > 0, cdf_y[np.maximum(at - 1, 0)], 0.0)
    return float(np.abs(f_x - f_y).max())


def wasserstein_1d(
    x: np.ndarray, y: np.ndarray, weights_x: np.ndarray | None = None, weights_y: np.ndarray | None = None
) -> float:
    """W1 = ∫ |F(t) − G(t)| dt of the empirical distributions of two raw samples (any sizes),
    with weighted CDFs F, G for weighted samples."""
    x, y = finite_sample(x, "x"), finite_sample(y, "y")
    wx = _check_sample_weights(weights_x, x.size, "weights_x")
    wy = _check_sample_weights(weights_y, y.size, "weights_y")
    if wx is None and wy is None:
        return _wasserstein_sorted(np.sort(x), np.sort(y))
    return _wasserstein_weighted(*_sorted_with(x, wx), *_sorted_with(y, wy))


def _histogram(xs: np.ndarray, ws: np.ndarray | None, edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Flow-bin histogram of a sorted sample (Σw per bin when weighted), negative bins set to 0,
    and their number."""
    if ws is None:
        return _counts_sorted(xs, edges), 0
    h = _weighted_counts(xs, ws, edges)
    negative = h < 0
    return np.where(negative, 0.0, h), int(np.count_nonzero(negative))


def _all_distances(
    ref_sorted: np.ndarray,
    ref_counts: np.ndarray,
    gen_sorted: np.ndarray,
    edges: np.ndarray,
    ref_weights: np.ndarray | None = None,
    gen_weights: np.ndarray | None = None,
) -> tuple[Distances, int, int]:
    """The four distances from sorted samples (and their weights, None when unweighted), plus the
    numbers of KL-regularised bins and of the candidate's negative bins set to 0."""
    q, n_negative = _histogram(gen_sorted, gen_weights, edges)
    eps = 0.5 / gen_sorted.size  # half an event of average weight when weighted
    n_empty = int(np.count_nonzero((ref_counts > 0) & (q == 0)))
    if ref_weights is None and gen_weights is None:
        w1 = _wasserstein_sorted(ref_sorted, gen_sorted)
    else:
        w1 = _wasserstein_weighted(ref_sorted, ref_weights, gen_sorted, gen_weights)
    d = Distances(
        chi2=chi2_distance(ref_counts, q),
        kl=kl_divergence(ref_counts, q, eps=eps),
        hellinger=hellinger_distance(ref_counts, q),
        wasserstein=w1,
    )
    return d, n_empty, n_negative


def sample_distances(
    ref: np.ndarray,
    gen: np.ndarray,
    *,
    edges: np.ndarray,
    weights_ref: np.ndarray | None = None,
    weights_gen: np.ndarray | None = None,
) -> Distances:
    """The four distances between two full samples (no resampling, optionally weighted) on the
    given binning."""
    ref, gen = finite_sample(ref, "ref"), finite_sample(gen, "gen")
    rs, rw = _sorted_with(ref, _check_sample_weights(weights_ref, ref.size, "weights_ref"))
    gs, gw = _sorted_with(gen, _check_sample_weights(weights_gen, gen.size, "weights_gen"))
    e = _check_edges(edges)
    return _all_distances(rs, _histogram(rs, rw, e)[0], gs, e, rw, gw)[0]


# ---------------------------------------------------------------------------------------------
# resampling


def _draw_sorted(
    pool_sorted: np.ndarray, size: int, method: str, rng: np.random.Generator,
    pool_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """A random sample of ``size`` values of a sorted pool, returned sorted, in O(pool), with
    the drawn values' weights (None for an unweighted pool; the draws do not depend on them)."""
    n = pool_sorted.size
    carry = (lambda pick: None) if pool_weights is None else (lambda pick: pick(pool_weights))  # noqa: E731
    if method == "bootstrap":
        # Multiplicities of each pool value; repeating a sorted array keeps it sorted.
        copies = np.bincount(rng.integers(0, n, size), minlength=n)
        return np.repeat(pool_sorted, copies), carry(lambda a: np.repeat(a, copies))
    keep = np.zeros(n, dtype=bool)
    keep[rng.choice(n, size, replace=False)] = True
    return pool_sorted[keep], carry(lambda a: a[keep])


def _resolve_method(method: str, pool: int, size: int, name: str) -> str:
    if method == "auto":
        return "subsample" if pool >= 2 * size else "bootstrap"
    if method == "subsample":
        if pool < size:
            raise ValueError(f"cannot subsample {size} values without replacement from {name} "
                             f"of {pool}; use method='bootstrap' or a smaller sample_size")
        return method
    if method == "bootstrap":
        return method
    raise ValueError(f"unknown method {method!r}; expected 'auto', 'subsample' or 'bootstrap'")


def _resampled(
    ref_sorted: np.ndarray,
    ref_counts: np.ndarray,
    pool_sorted: np.ndarray,
    edges: np.ndarray,
    *,
    n_resamples: int,
    sample_size: int,
    method: str,
    seed: Seed,
    ref_weights: np.ndarray | None = None,
    pool_weights: np.ndarray | None = None,
    ref_negative: int = 0,
) -> FeatureDistances:
    """Resampled distances of one feature from pre-sorted inputs (and their weights in the same
    order; ``ref_counts`` then holds Σw with ``ref_negative`` negative bins set to 0)."""
    method = _resolve_method(method, pool_sorted.size, sample_size, "gen")
    rng = np.random.default_rng(seed)
    values = np.empty((n_resamples, len(METRICS)))
    n_empty, n_negative = 0, ref_negative
    for k in range(n_resamples):
        draw, draw_weights = _draw_sorted(pool_sorted, sample_size, method, rng, pool_weights)
        d, e, neg = _all_distances(ref_sorted, ref_counts, draw, edges, ref_weights, draw_weights)
        values[k] = d
        n_empty += e
        n_negative += neg
    std = values.std(axis=0, ddof=1) if n_resamples > 1 else np.full(len(METRICS), np.nan)
    gen_counts = _counts_sorted(pool_sorted, edges)
    if ref_weights is not None:  # the out-of-range figures count events
        ref_counts = _counts_sorted(ref_sorted, edges)
    return FeatureDistances(
        value=Distances(*values.mean(axis=0).tolist()),
        std=Distances(*std.tolist()),
        n_resamples=n_resamples,
        sample_size=sample_size,
        method=method,
        ref_out_of_range=(int(ref_counts[0]), int(ref_counts[-1])),
        gen_out_of_range=(int(gen_counts[0]), int(gen_counts[-1])),
        kl_empty_bins=n_empty,
        negative_bins=n_negative,
    )


def _check_resampling(n_resamples: int, sample_size: int | None, n_ref: int) -> int:
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    size = n_ref if sample_size is None else sample_size
    if int(size) != size or size < 1:
        raise ValueError(f"sample_size must be a positive integer, got {sample_size!r}")
    return int(size)


def feature_distances(
    ref: np.ndarray,
    gen: np.ndarray,
    *,
    n_bins: int = 100,
    edges: np.ndarray | None = None,
    kind: Literal["uniform", "quantile"] = "uniform",
    quantile_range: tuple[float, float] = (0.001, 0.999),
    n_resamples: int = 5,
    sample_size: int | None = None,
    method: Literal["auto", "subsample", "bootstrap"] = "auto",
    seed: Seed = 0,
    weights_ref: np.ndarray | None = None,
    weights_gen: np.ndarray | None = None,
) -> FeatureDistances:
    """χ², KL, Hellinger and W1 of one feature, mean ± std over K draws of the candidate.

    Arguments:
        ref: reference (MC ``test_a``) values, shape (N,); used in full.
        gen: candidate pool (generated events, or MC ``test_b`` for the baseline), shape (M,).
        n_bins, kind, quantile_range: the reference binning (``reference_binning``); ignored
            when ``edges`` is given.
        edges: explicit bin edges, defaults to None (derive them from ``ref``).
        n_resamples: K >= 1 draws of the candidate.
        sample_size: values per draw, defaults to None (N, the reference size).
        method: ``"subsample"`` (without replacement), ``"bootstrap"`` (with replacement) or
            ``"auto"`` (subsample when M >= 2 · sample_size, else bootstrap).
        seed: seed of the draws (an int or a sequence of ints).
        weights_ref, weights_gen: event weights of ``ref`` and of the pool (weighted MC; a draw
            carries its events' weights), defaults to None (unweighted). The draws are the same
            with or without weights.

    Returns:
        FeatureDistances with the means, standard deviations and the out-of-range counts.
    """
    ref = finite_sample(ref, "ref")
    gen = finite_sample(gen, "gen")
    weights_ref = _check_sample_weights(weights_ref, ref.size, "weights_ref")
    weights_gen = _check_sample_weights(weights_gen, gen.size, "weights_gen")
    size = _check_resampling(n_resamples, sample_size, ref.size)
    e = reference_binning(ref, n_bins, kind=kind, quantile_range=quantile_range, weights=weights_ref) \
        if edges is None else _check_edges(edges)
    ref_sorted, ref_w = _sorted_with(ref, weights_ref)
    pool_sorted, pool_w = _sorted_with(gen, weights_gen)
    ref_counts, ref_negative = _histogram(ref_sorted, ref_w, e)
    return _resampled(ref_sorted, ref_counts, pool_sorted, e,
                      n_resamples=int(n_resamples), sample_size=size, method=method, seed=seed,
                      ref_weights=ref_w, pool_weights=pool_w, ref_negative=ref_negative)


# ---------------------------------------------------------------------------------------------
# tables


def _feature_pair(
    j: int,
    test_a: np.ndarray,
    generated: np.ndarray,
    test_b: np.ndarray,
    opts: dict,
    weights_a: np.ndarray | None = None,
    weights_b: np.ndarray | None = None,
) -> tuple[FeatureDistances, FeatureDistances]:
    """Generated-vs-MC and baseline distances of column ``j`` (MC optionally weighted)."""
    ref, ref_w = _sorted_with(test_a[:, j].astype(np.float64), weights_a)
    edges = reference_binning(ref, opts["n_bins"], kind=opts["kind"],
                              quantile_range=opts["quantile_range"], weights=ref_w)
    ref_counts, ref_negative = _histogram(ref, ref_w, edges)
    common = dict(n_resamples=opts["n_resamples"], sample_size=opts["sample_size"],
                  method=opts["method"], seed=(*opts["seed"], j), ref_weights=ref_w,
                  ref_negative=ref_negative)
    # Same random stream for both: identical candidate pools give identical numbers.
    gen = _resampled(ref, ref_counts, np.sort(generated[:, j].astype(np.float64)), edges,
                     **common)
    pool_b, pool_b_w = _sorted_with(test_b[:, j].astype(np.float64), weights_b)
    base = _resampled(ref, ref_counts, pool_b, edges, pool_weights=pool_b_w, **common)
    return gen, base


def _rows_of(name: str, gen: FeatureDistances, base: FeatureDistances) -> list[DistanceRow]:
    return [DistanceRow(name, m, getattr(gen.value, m), getattr(gen.std, m),
                        getattr(base.value, m)) for m in METRICS]


def _mean_rows(rows: list[DistanceRow]) -> list[DistanceRow]:
    """Average over features; the std of the mean assumes independent features (separately
    seeded draws), sqrt(Σ σ_j²) / F."""
    out = []
    for m in METRICS:
        sel = [r for r in rows if r.metric == m]
        std = math.sqrt(sum(r.std**2 for r in sel)) / len(sel)
        out.append(DistanceRow("mean", m, float(np.mean([r.value for r in sel])), std,
                               float(np.mean([r.baseline for r in sel]))))
    return out


def distance_table(
    test_a: np.ndarray,
    generated: np.ndarray,
    test_b: np.ndarray,
    features: Sequence[str],
    *,
    n_bins: int = 100,
    kind: Literal["uniform", "quantile"] = "uniform",
    quantile_range: tuple[float, float] = (0.001, 0.999),
    n_resamples: int = 5,
    sample_size: int | None = None,
    method: Literal["auto", "subsample", "bootstrap"] = "auto",
    seed: int = 0,
    n_jobs: int = 1,
    weights_a: np.ndarray | None = None,
    weights_b: np.ndarray | None = None,
) -> list[DistanceRow]:
    """Rows (feature, metric, value, std, baseline) for every feature and metric.

    Arguments:
        test_a: MC reference, shape (N_a, F).
        generated: generated events, shape (N_g, F).
        test_b: independent MC sample for the baseline, shape (N_b, F).
        features: F column names ("mean" is reserved for the summary rows).
        n_bins, kind, quantile_range: the per-feature reference binning from ``test_a``.
        n_resamples, sample_size, method: as in ``feature_distances``; generated and baseline
            draws have the same size, defaults to None (N_a).
        seed: root seed; feature j draws from the stream (seed, j), so results do not depend on
            ``n_jobs``.
        n_jobs: threads over features (numpy releases the GIL while sorting).
        weights_a, weights_b: event weights of ``test_a`` and ``test_b`` (weighted MC), defaults
            to None (unweighted); the generated sample is unweighted.

    Returns:
        4·F rows, features in input order and metrics in ``METRICS`` order, then 4 rows with
        feature "mean": the average value and baseline over features, std sqrt(Σ σ²)/F.
    """
    features = [str(f) for f in features]
    if not features:
        raise ValueError("features is empty")
    if "mean" in features:
        raise ValueError("'mean' is reserved for the summary rows; rename that feature")
    if len(set(features)) != len(features):
        raise ValueError(f"feature names are not unique: {features}")
    f = len(features)
    test_a = _check_matrix(test_a, "test_a", f)
    generated = _check_matrix(generated, "generated", f)
    test_b = _check_matrix(test_b, "test_b", f)
    weights_a = _check_sample_weights(weights_a, test_a.shape[0], "weights_a")
    weights_b = _check_sample_weights(weights_b, test_b.shape[0], "weights_b")
    size = _check_resampling(n_resamples, sample_size, test_a.shape[0])
    if int(n_jobs) != n_jobs or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    opts = dict(n_bins=n_bins, kind=kind, quantile_range=quantile_range,
                n_resamples=int(n_resamples), sample_size=size, method=method, seed=(int(seed),))

    def one(j: int) -> tuple[FeatureDistances, FeatureDistances]:
        return _feature_pair(j, test_a, generated, test_b, opts, weights_a, weights_b)

    if n_jobs == 1:
        results = [one(j) for j in range(f)]
    else:
        with ThreadPoolExecutor(max_workers=int(n_jobs)) as pool:
            results = list(pool.map(one, range(f)))
    rows: list[DistanceRow] = []
    for name, (gen, base) in zip(features, results):
        if sum(gen.gen_out_of_range) or sum(gen.ref_out_of_range):
            log.info("%s: out of binning (under, over): test_a %s, generated %s, test_b %s",
                     name, gen.ref_out_of_range, gen.gen_out_of_range, base.gen_out_of_range)
        if gen.kl_empty_bins:
            log.info("%s: %d empty generated bins regularised in KL", name, gen.kl_empty_bins)
        if gen.negative_bins or base.negative_bins:
            log.warning("%s: %d (vs generated) and %d (baseline) bins of negative weight set to 0 in the "
                        "histogram metrics", name, gen.negative_bins, base.negative_bins)  # fmt: skip
        rows += _rows_of(name, gen, base)
    return rows + _mean_rows(rows)


def write_distances_tsv(path: str | os.PathLike[str], rows: Sequence[DistanceRow]) -> None:
    """Write rows as TSV with header ``feature metric value std baseline``, atomically.

    The table is written to a temporary file in the destination folder and moved into place
    with ``os.replace``, so a reader never sees a half-written file.
    """
    for r in rows:
        if len(r) != len(TSV_HEADER):
            raise ValueError(f"row {r!r} does not have the {len(TSV_HEADER)} fields {TSV_HEADER}")
        if "\t" in f"{r[0]}{r[1]}" or "\n" in f"{r[0]}{r[1]}":
            raise ValueError(f"feature/metric names may not contain tabs or newlines: {r!r}")
    table = [
        {"feature": str(r[0]), "metric": str(r[1]), **{k: float(v) for k, v in zip(TSV_HEADER[2:], r[2:])}}
        for r in rows
    ]
    write_tsv(path, table, TSV_HEADER)


def read_distances_tsv(path: str | os.PathLike[str]) -> list[DistanceRow]:
    """Read a table written by ``write_distances_tsv``."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    if not lines or tuple(lines[0].split("\t")) != TSV_HEADER:
        raise ValueError(f"{os.fspath(path)}: header must be {TSV_HEADER}")
    rows = []
    for i, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(TSV_HEADER):
            raise ValueError(f"{os.fspath(path)}:{i}: expected {len(TSV_HEADER)} fields, "
                             f"got {len(cells)}")
        rows.append(DistanceRow(cells[0], cells[1], *(float(c) for c in cells[2:])))
    return rows
