"""The numbers behind the distribution plots: normalised histograms with their statistical
errors, ratios, the tail boundaries, rank correlations and highest-density levels (paper
Sec. 4.1-4.3, Figs. 7-8 and 13). :mod:`flowsim.plots` draws them; nothing here draws.

Conventions:

* Binning is fixed from the **MC reference** and reused for the generated sample. The default is
  ``DEFAULT_N_BINS`` equal-width bins between the ``DEFAULT_QUANTILE_RANGE`` = (10⁻⁴, 1 − 10⁻⁴)
  quantiles of MC: wider than the "3σ tail" markers at the 0.05% and 99.95% MC quantiles, so the
  tails the markers point at are visible, yet robust against single extreme events.
* Normalisation counts **all** events of a sample, including those outside the binning:

      density_i = W_i / (W Δ_i),   error_i = sqrt(Σ_{k ∈ i} w_k²) / (W Δ_i),

  with W_i the (weighted) content of bin i, W the total over all events and Δ_i the bin width
  (unit weights: W_i = N_i and the error is the Poisson sqrt(N_i)). A sample that puts more
  events beyond the binning than MC therefore shows up as a deficit inside it rather than
  being renormalised away, and the numbers outside the binning (under/overflow) are kept
  (and printed on every plot); nothing is silently dropped. The error of the normalisation W is neglected.
* Ratios are generated/MC per bin. An empty MC bin gives NaN (never inf); in the ratio panel a
  bin with generated events but no MC events is drawn as an up arrow (the ratio is unbounded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from flowsim.arrays import bin_edges, event_weights, finite_sample
from flowsim.metrics.distances import reference_binning

__all__ = [
    "DEFAULT_N_BINS",
    "DEFAULT_QUANTILE_RANGE",
    "TAIL_FRACTION",
    "CorrelatedPair",
    "HistComparison",
    "NormalisedHist",
    "RatioTails",
    "RatioWithErrors",
    "average_ranks",
    "compare_histograms",
    "correlation_matrix",
    "feature_edges",
    "hdr_levels",
    "normalised_hist",
    "ratio_tail_masks",
    "ratio_with_errors",
    "select_pairs",
    "tail_edges",
]

#: Regular bins of a feature histogram.
DEFAULT_N_BINS = 60
#: MC quantiles spanned by the default binning (wider than the tail markers).
DEFAULT_QUANTILE_RANGE: tuple[float, float] = (1e-4, 1.0 - 1e-4)
#: MC fraction outside the "3σ tail" markers: half of it on each side (paper Fig. 8).
TAIL_FRACTION = 1e-3


# --- 1-D histograms and their ratio ----------------------------------------------------------


class NormalisedHist(NamedTuple):
    """A histogram normalised to unit integral over **all** events (see the module docstring).

    Attributes:
        density: W_i / (W Δ_i), shape (B,).
        error: sqrt(Σ_{k ∈ i} w_k²) / (W Δ_i), shape (B,); Poisson sqrt(N_i)/(N Δ_i) for unit
            weights.
        underflow: number of events below the first edge.
        overflow: number of events above the last edge (the last bin is closed).
        total: W, the sum of weights of all events (N for unit weights).
    """

    density: np.ndarray
    error: np.ndarray
    underflow: int
    overflow: int
    total: float


class RatioWithErrors(NamedTuple):
    """num/den per bin with propagated errors; NaN where den = 0.

    Attributes:
        ratio: ρ_i = num_i / den_i.
        error: sqrt(error_num² + error_den²), both samples propagated.
        error_num: σ(num_i) / den_i, the numerator's part.
        error_den: ρ_i σ(den_i) / den_i, the denominator's part.
    """

    ratio: np.ndarray
    error: np.ndarray
    error_num: np.ndarray
    error_den: np.ndarray


class HistComparison(NamedTuple):
    """MC and generated histograms of one feature on the MC binning, and their ratio gen/MC."""

    edges: np.ndarray
    mc: NormalisedHist
    gen: NormalisedHist
    ratio: RatioWithErrors


def normalised_hist(
    x: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None
) -> NormalisedHist:
    """Density histogram of ``x`` normalised to all its events, with statistical errors.

    Arguments:
        x: values, shape (N,).
        edges: bin edges, shape (B + 1,), strictly increasing.
        weights: per-event weights, shape (N,), defaults to None (unit weights).
    """
    x = finite_sample(x, "x")
    e = bin_edges(edges)
    w = event_weights(weights, x.size)
    ones = np.ones_like(x) if w is None else w
    content, _ = np.histogram(x, bins=e, weights=ones)
    sumw2, _ = np.histogram(x, bins=e, weights=ones**2)
    total = float(ones.sum())
    norm = total * np.diff(e)
    return NormalisedHist(
        density=content / norm,
        error=np.sqrt(sumw2) / norm,
        underflow=int(np.count_nonzero(x < e[0])),
        overflow=int(np.count_nonzero(x > e[-1])),
        total=total,
    )


def ratio_with_errors(
    num: np.ndarray, num_err: np.ndarray, den: np.ndarray, den_err: np.ndarray
) -> RatioWithErrors:
    """ρ = num/den with independent errors propagated to first order.

    σ_ρ² = (σ_num/den)² + (ρ σ_den/den)², which stays finite where num = 0. Bins with den = 0
    give NaN for the ratio and all errors (never inf).
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (num, num_err, den, den_err)]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"num, num_err, den, den_err must have equal shapes, got "
                         f"{[a.shape for a in arrays]}")
    num, num_err, den, den_err = arrays
    ok = den != 0
    safe = np.where(ok, den, 1.0)  # avoids division warnings; masked below
    ratio = np.where(ok, num / safe, np.nan)
    err_num = np.where(ok, num_err / safe, np.nan)
    err_den = np.where(ok, np.abs(ratio) * den_err / safe, np.nan)
    return RatioWithErrors(ratio, np.hypot(err_num, err_den), err_num, err_den)


def compare_histograms(
    mc: np.ndarray,
    generated: np.ndarray,
    edges: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    mc_weights: np.ndarray | None = None,
) -> HistComparison:
    """MC and generated normalised histograms on ``edges`` and the ratio generated/MC.

    Arguments:
        mc: MC values of one feature, shape (N,).
        generated: generated values, shape (M,).
        edges: common bin edges, shape (B + 1,).
        weights: per generated event, shape (M,), defaults to None (unit weights).
        mc_weights: per MC event (weighted MC, Σw² errors), shape (N,), defaults to None.
    """
    mc = finite_sample(mc, "mc")
    generated = finite_sample(generated, "generated")
    w = event_weights(weights, generated.size)
    e = bin_edges(edges)
    h_mc = normalised_hist(mc, e, event_weights(mc_weights, mc.size, "mc_weights"))
    h_gen = normalised_hist(generated, e, w)
    return HistComparison(e, h_mc, h_gen,
                          ratio_with_errors(h_gen.density, h_gen.error, h_mc.density, h_mc.error))


def tail_edges(mc: np.ndarray, fraction: float = TAIL_FRACTION) -> tuple[float, float]:
    """The "3σ tail" boundaries: MC quantiles ``fraction/2`` and ``1 − fraction/2``.

    The default 10⁻³ gives the 0.05% and 99.95% quantiles; outside them lies the outer 10⁻³ of
    the MC events (about a two-sided 3σ Gaussian tail), where the flow saw few training events.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    lo, hi = np.quantile(finite_sample(mc, "mc"), [fraction / 2, 1.0 - fraction / 2])
    return float(lo), float(hi)


def feature_edges(mc: np.ndarray, bins: int | np.ndarray | None = None) -> np.ndarray:
    """Bin edges of a feature: explicit ``bins`` edges, or ``bins`` (default ``DEFAULT_N_BINS``)
    uniform bins between the ``DEFAULT_QUANTILE_RANGE`` quantiles of MC."""
    if bins is None or np.ndim(bins) == 0:
        n = DEFAULT_N_BINS if bins is None else bins
        return reference_binning(finite_sample(mc, "mc"), n, quantile_range=DEFAULT_QUANTILE_RANGE)
    return bin_edges(bins)

# --- correlations and 2-D levels ------------------------------------------------------------


class CorrelatedPair(NamedTuple):
    """Columns i < j and their MC correlation coefficient rho."""

    i: int
    j: int
    rho: float


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..N of a 1-D array, ties sharing their average rank."""
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    start = np.cumsum(counts) - counts  # values below each distinct value
    return (start + (counts + 1) / 2.0)[inverse]


def correlation_matrix(
    x: np.ndarray, *, method: Literal["spearman", "pearson"] = "spearman"
) -> np.ndarray:
    """F × F correlation matrix of the columns of ``x`` (N, F); constant columns give 0.

    ``"spearman"``: Pearson correlation of the average ranks, insensitive to the long tails of
    momenta and masses (a handful of extreme events can dominate a Pearson coefficient).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be 2-D with at least 2 events, got shape {x.shape}")
    if method == "spearman":
        x = np.column_stack([average_ranks(x[:, j]) for j in range(x.shape[1])])
    elif method != "pearson":
        raise ValueError(f"unknown method {method!r}; expected 'spearman' or 'pearson'")
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.atleast_2d(np.corrcoef(x, rowvar=False))
    return np.nan_to_num(c, nan=0.0)


def select_pairs(
    mc: np.ndarray, n_pairs: int, *, method: Literal["spearman", "pearson"] = "spearman"
) -> list[CorrelatedPair]:
    """The ``n_pairs`` column pairs with the largest |correlation| in MC, strongest first.

    At most F(F−1)/2 pairs are returned. Ties keep the (i, j) order.
    """
    if int(n_pairs) != n_pairs or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    c = correlation_matrix(mc, method=method)
    i, j = np.triu_indices(c.shape[0], k=1)
    order = np.argsort(-np.abs(c[i, j]), kind="stable")[: int(n_pairs)]
    return [CorrelatedPair(int(i[k]), int(j[k]), float(c[i[k], j[k]])) for k in order]


def hdr_levels(hist: np.ndarray, fractions: Sequence[float], total: float | None = None
               ) -> np.ndarray:
    """Heights of a histogram bounding its highest-density regions.

    For each fraction f the level is the smallest bin height h such that the bins with height
    >= h hold at least f · ``total`` (default: the histogram sum). Fractions that cannot be
    reached are left out. Returns the distinct levels in increasing order (for ``contour``).
    """
    h = np.sort(np.asarray(hist, dtype=np.float64).ravel())[::-1]
    total = float(h.sum()) if total is None else float(total)
    if not total > 0:
        return np.array([])
    cum = np.cumsum(h) / total
    levels = []
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"fractions must be in (0, 1], got {f!r}")
        k = int(np.searchsorted(cum, f - 1e-12))  # first bin where the content reaches f
        if k < h.size and h[k] > 0:
            levels.append(h[k])
    return np.unique(levels)

# --- the tails of the density ratio r(x) = D/(1 - D) -----------------------------------------


class RatioTails(NamedTuple):
    """Boolean masks of the generated events in the low and high tails of r, and the cuts."""

    low: np.ndarray
    high: np.ndarray
    low_cut: float
    high_cut: float


def ratio_tail_masks(r: np.ndarray, quantile: float) -> RatioTails:
    """Events with r <= its ``quantile`` quantile (low) and r >= its 1 − ``quantile`` (high).

    Ties at a cut are all kept, so a tail may hold slightly more than ``quantile`` of events.
    """
    if not 0.0 < quantile < 0.5:
        raise ValueError(f"quantile must be in (0, 0.5), got {quantile!r}")
    r = finite_sample(r, "r_gen")
    lo, hi = np.quantile(r, [quantile, 1.0 - quantile])
    return RatioTails(r <= lo, r >= hi, float(lo), float(hi))
