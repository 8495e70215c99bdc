"""ROC curve, AUC with uncertainty, accuracy and the density ratio of a classifier two-sample test.

In the C2ST (paper Sec. 4.3) a classifier f(x) ≈ p(y = 1 | x) separates generated events
(label 1, "positive") from MC events (label 0, "negative"); AUC = ½ means indistinguishable.
Scores are any real numbers, larger meaning "more positive".

AUC as the Mann–Whitney statistic, with X the m positive and Y the n negative scores:

    AUC = U / (m n),  U = Σ_i Σ_j ψ(X_i, Y_j),  ψ(x, y) = 1 if x > y, ½ if x = y, 0 if x < y,

i.e. the probability that a random positive outranks a random negative, ties counted as ½;
it equals the trapezoidal area under the ROC curve. Computed from sorted scores in
O((m + n) log(m + n)).

DeLong variance (DeLong, DeLong & Clarke-Pearson 1988) with the midrank algorithm of Sun & Xu
(2014). With T_X, T_Y the midranks within the positives and within the negatives, and T_Z the
midranks in the pooled sample, the structural components are

    V10_i = (T_Z(X_i) − T_X(X_i)) / n   (fraction of negatives below X_i, ties ½)
    V01_j = 1 − (T_Z(Y_j) − T_Y(Y_j)) / m   (fraction of positives above Y_j, ties ½)

and  AUC = mean(V10) = mean(V01),  Var(AUC) = S10 / m + S01 / n,  with S10, S01 the sample
variances (ddof = 1) of V10 and V01. The midrank differences T_Z − T_X are the numbers of
negatives below each positive (ties ½), read off the sorted negatives by binary search, so the
whole computation costs two sorts, O((m + n) log(m + n)), and no pairwise comparisons.

Density ratio (paper Eq. 19–20, prior π = ½): r(x) = P(x)/Q(x) = d / (1 − d) with d = f(x).
d is clipped to [ε, 1 − ε] so r stays finite; the number of clipped values is returned.

References:
    DeLong, DeLong, Clarke-Pearson, "Comparing the areas under two or more correlated receiver
    operating characteristic curves: a nonparametric approach", Biometrics 44 (1988) 837.
    Sun, Xu, "Fast implementation of DeLong's algorithm for comparing the areas under correlated
    receiver operating characteristic curves", IEEE Signal Process. Lett. 21 (2014) 1389.
    Lopez-Paz, Oquab, "Revisiting classifier two-sample tests", ICLR 2017, arXiv:1610.06545.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

__all__ = [
    "AucEstimate",
    "DensityRatio",
    "RocCurve",
    "accuracy_at_threshold",
    "auc",
    "auc_delong",
    "bootstrap_auc_std",
    "delong_variance",
    "density_ratio",
    "roc_curve",
    "weighted_auc",
]

log = logging.getLogger(__name__)


class AucEstimate(NamedTuple):
    """AUC with its DeLong standard error."""

    auc: float
    std: float
    n_pos: int
    n_neg: int


class RocCurve(NamedTuple):
    """ROC points for decreasing thresholds: a score >= threshold is called positive.

    Attributes:
        fpr: false-positive rate, shape (T + 1,), from 0 to 1.
        tpr: true-positive rate, shape (T + 1,), from 0 to 1.
        thresholds: shape (T + 1,): +inf, then the T distinct scores in decreasing order.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


class DensityRatio(NamedTuple):
    """r = d / (1 − d) after clipping d to [eps, 1 − eps]; ``n_clipped`` values were clipped."""

    ratio: np.ndarray
    n_clipped: int


def _check_scores(x: np.ndarray, name: str, min_size: int = 1) -> np.ndarray:
    """``x`` as a finite 1-D float64 array of at least ``min_size`` values, or a ValueError."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} value(s), got {a.size}")
    n_bad = a.size - int(np.count_nonzero(np.isfinite(a)))
    if n_bad:
        raise ValueError(f"{name} has {n_bad} non-finite value(s) (NaN or inf) of {a.size}")
    return a


def _placements(sorted_keys: np.ndarray, sorted_ref: np.ndarray) -> np.ndarray:
    """2 × (number of ``sorted_ref`` values below each key + ½ × number tied with it).

    Equals 2 (T_Z − T_X) of Sun & Xu for the keys X in the pool Z = X ∪ ref: a key's midrank in
    the pool minus its midrank among the keys counts the ref values below it, ties as ½. Sorted
    keys make the binary searches cache-friendly.
    """
    below = np.searchsorted(sorted_ref, sorted_keys, side="left")
    upto = np.searchsorted(sorted_ref, sorted_keys, side="right")
    return below + upto


def auc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """AUC = U / (m n), the Mann–Whitney statistic with ties counted as ½.

    Arguments:
        scores_pos: scores of the m positives (label 1), shape (m,).
        scores_neg: scores of the n negatives (label 0), shape (n,).
    """
    pos = np.sort(_check_scores(scores_pos, "scores_pos"))
    neg = np.sort(_check_scores(scores_neg, "scores_neg"))
    two_u = int(_placements(pos, neg).sum(dtype=np.int64))  # exact integer until the division
    return two_u / (2.0 * pos.size * neg.size)


def _delong_components(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Structural components V10 (per positive) and V01 (per negative), each in sorted order.

    V10 = (T_Z − T_X)/n and V01 = 1 − (T_Z − T_Y)/m (Sun & Xu 2014), with the midrank
    differences obtained by binary search in the other sorted class (see ``_placements``);
    the order does not matter for their means and variances.
    """
    pos, neg = np.sort(pos), np.sort(neg)
    v10 = _placements(pos, neg) / (2.0 * neg.size)
    v01 = 1.0 - _placements(neg, pos) / (2.0 * pos.size)
    return v10, v01


def auc_delong(scores_pos: np.ndarray, scores_neg: np.ndarray) -> AucEstimate:
    """AUC and its DeLong standard error sqrt(S10/m + S01/n); needs m, n >= 2."""
    pos = _check_scores(scores_pos, "scores_pos", min_size=2)
    neg = _check_scores(scores_neg, "scores_neg", min_size=2)
    v10, v01 = _delong_components(pos, neg)
    var = v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size
    return AucEstimate(float(v10.mean()), float(np.sqrt(var)), pos.size, neg.size)


def _weighted_placements(
    keys: np.ndarray, ref: np.ndarray, ref_weights: np.ndarray
) -> np.ndarray:
    """For each key: the weight of ``ref`` values below it plus ½ the weight tied with it."""
    order = np.argsort(ref, kind="stable")
    sorted_ref = ref[order]
    cumulative = np.concatenate([[0.0], np.cumsum(ref_weights[order])])
    below = cumulative[np.searchsorted(sorted_ref, keys, side="left")]
    upto = cumulative[np.searchsorted(sorted_ref, keys, side="right")]
    return 0.5 * (below + upto)


def weighted_auc(
    scores_pos: np.ndarray,
    scores_neg: np.ndarray,
    weights_pos: np.ndarray | None = None,
    weights_neg: np.ndarray | None = None,
) -> AucEstimate:
    """AUC of weighted samples with a DeLong-style (sandwich) standard error.

    AUC = Σ_ij w_i v_j ψ(X_i, Y_j) / (Σ_i w_i Σ_j v_j), the probability that a positive drawn
    with weights w outranks a negative drawn with weights v. With V10_i, V01_j the weighted
    structural components (fraction of negative weight below X_i, of positive weight above
    Y_j; ties ½), Var = Σ_i w_i² (V10_i − AUC)² / (Σw)² + Σ_j v_j² (V01_j − AUC)² / (Σv)²,
    which for unit weights is the DeLong variance with 1/m in place of 1/(m − 1). Each class's
    weights need a positive sum; negative weights (NLO Monte Carlo) are allowed and enter both
    sums with their sign, so the AUC is that of the signed-weighted distributions (which are
    then densities only where they stay positive). ``n_pos``/``n_neg`` are Kish's effective
    sizes (Σw)²/Σw².
    """
    pos = _check_scores(scores_pos, "scores_pos", min_size=2)
    neg = _check_scores(scores_neg, "scores_neg", min_size=2)
    w = _check_weights(weights_pos, pos.size, "weights_pos")
    v = _check_weights(weights_neg, neg.size, "weights_neg")
    v10 = _weighted_placements(pos, neg, v) / v.sum()
    v01 = 1.0 - _weighted_placements(neg, pos, w) / w.sum()
    value = float(np.dot(w, v10) / w.sum())
    var = np.dot(w**2, (v10 - value) ** 2) / w.sum() ** 2 + np.dot(v**2, (v01 - value) ** 2) / v.sum() ** 2
    n_eff = lambda u: int(round(u.sum() ** 2 / np.dot(u, u)))  # noqa: E731
    return AucEstimate(value, float(np.sqrt(var)), n_eff(w), n_eff(v))


def _check_weights(weights: np.ndarray | None, size: int, name: str) -> np.ndarray:
    if weights is None:
        return np.ones(size)
    w = _check_scores(weights, name)
    if w.size != size:
        raise ValueError(f"{name} has {w.size} values for {size} scores")
    if not w.sum() > 0:
        raise ValueError(f"{name} must have a positive sum, got {w.sum():g}")
    return w


def delong_variance(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """DeLong (1988) variance of the AUC estimate, S10/m + S01/n; needs m, n >= 2."""
    return auc_delong(scores_pos, scores_neg).std ** 2


def bootstrap_auc_std(
    scores_pos: np.ndarray,
    scores_neg: np.ndarray,
    *,
    n_bootstrap: int = 500,
    seed: int = 0,
) -> float:
    """Standard deviation (ddof=1) of the AUC over stratified bootstrap replicates.

    Positives and negatives are resampled separately with replacement at their own sizes, the
    same fixed-class-size setting as the DeLong variance.

    Arguments:
        scores_pos: positive scores, shape (m,).
        scores_neg: negative scores, shape (n,).
        n_bootstrap: number of replicates (>= 2), defaults to 500.
        seed: seed of the replicates, defaults to 0.
    """
    pos = _check_scores(scores_pos, "scores_pos")
    neg = _check_scores(scores_neg, "scores_neg")
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be an integer >= 2, got {n_bootstrap!r}")
    rng = np.random.default_rng(seed)
    values = np.empty(int(n_bootstrap))
    for b in range(values.size):
        values[b] = auc(pos[rng.integers(0, pos.size, pos.size)],
                        neg[rng.integers(0, neg.size, neg.size)])
    return float(values.std(ddof=1))


def roc_curve(scores_pos: np.ndarray, scores_neg: np.ndarray) -> RocCurve:
    """ROC curve at every distinct score (no points dropped); see ``RocCurve``."""
    pos = np.sort(_check_scores(scores_pos, "scores_pos"))
    neg = np.sort(_check_scores(scores_neg, "scores_neg"))
    thr = np.unique(np.concatenate((pos, neg)))[::-1]
    # Counts of scores >= t: total minus those strictly below t.
    tpr = (pos.size - np.searchsorted(pos, thr, side="left")) / pos.size
    fpr = (neg.size - np.searchsorted(neg, thr, side="left")) / neg.size
    return RocCurve(np.concatenate(([0.0], fpr)), np.concatenate(([0.0], tpr)),
                    np.concatenate(([np.inf], thr)))


def accuracy_at_threshold(
    scores_pos: np.ndarray, scores_neg: np.ndarray, threshold: float = 0.5
) -> float:
    """Fraction of correct calls when a score >= ``threshold`` is called positive.

    Arguments:
        scores_pos: positive scores, shape (m,).
        scores_neg: negative scores, shape (n,).
        threshold: decision threshold, defaults to 0.5 (a probability output with prior ½).

    Returns:
        (#pos >= t + #neg < t) / (m + n); both classes weigh by their size.
    """
    pos = _check_scores(scores_pos, "scores_pos")
    neg = _check_scores(scores_neg, "scores_neg")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    correct = np.count_nonzero(pos >= threshold) + np.count_nonzero(neg < threshold)
    return correct / (pos.size + neg.size)


def density_ratio(d: np.ndarray, *, eps: float = 1e-6) -> DensityRatio:
    """r(x) = d / (1 − d) from classifier outputs d = f(x) ∈ [0, 1].

    Arguments:
        d: classifier probabilities p(y = 1 | x), any shape.
        eps: d is clipped to [eps, 1 − eps] (0 < eps < ½), defaults to 1e-6, so that
            r ∈ [eps/(1 − eps), (1 − eps)/eps].

    Returns:
        DensityRatio(ratio, n_clipped): r with the shape of d, and how many d were clipped.
    """
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps!r}")
    a = np.asarray(d, dtype=np.float64)
    if a.size == 0:
        raise ValueError("d is empty")
    n_bad = a.size - int(np.count_nonzero(np.isfinite(a)))
    if n_bad:
        raise ValueError(f"d has {n_bad} non-finite value(s) (NaN or inf)")
    n_outside = int(np.count_nonzero((a < 0) | (a > 1)))
    if n_outside:
        raise ValueError(f"d has {n_outside} value(s) outside [0, 1]; pass probabilities, "
                         "not logits")
    n_clipped = int(np.count_nonzero((a < eps) | (a > 1.0 - eps)))
    if n_clipped:
        log.info("density_ratio: clipped %d of %d classifier outputs to [%g, 1 - %g]",
                 n_clipped, a.size, eps, eps)
    c = np.clip(a, eps, 1.0 - eps)
    return DensityRatio(c / (1.0 - c), n_clipped)
