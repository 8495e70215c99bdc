"""Per-event MC weights: the checks and summaries every weighted computation shares.

Weighted MC (NLO generators give negative weights too) enters the workflow as a ``weight``
branch of the MC split files (:data:`flowsim.io.WEIGHT`); a file without it is unweighted,
and every function taking ``weights=None`` then does exactly what it did before weights
existed. A sample's statistical power is its effective size (Kish),

    n_eff = (Σ w)² / Σ w²,

which is n for equal weights and shrinks as the weights spread or change sign.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["WeightError", "check_weights", "effective_sample_size", "normalised", "weight_summary"]

log = logging.getLogger(__name__)


class WeightError(ValueError):
    """Event weights that cannot be used: names the sample and what is wrong."""


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(Σ w)² / Σ w²`` (0 for an empty sample)."""
    w = np.asarray(weights, dtype=np.float64)
    sum_w2 = float(np.dot(w, w))
    return float(w.sum()) ** 2 / sum_w2 if sum_w2 > 0 else 0.0


def check_weights(weights: np.ndarray | None, n_events: int, *, name: str) -> np.ndarray | None:
    """``weights`` as float64, refused unless there is one finite weight per event and ``Σ w > 0``.

    None (an unweighted sample) is passed through. ``name`` (a file, a split) is named in the
    error. Negative weights are allowed: only the sum must be positive for the sample to
    describe a density at all.
    """
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_events,):
        raise WeightError(f"{name}: expected {n_events} event weights, got shape {w.shape}")
    finite = np.isfinite(w)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise WeightError(
            f"{name}: {int((~finite).sum())} non-finite event weight(s), the first at event {first} ({w[first]})"
        )
    total = float(w.sum())
    if n_events and not total > 0:
        raise WeightError(
            f"{name}: the event weights sum to {total:g} over {n_events} events; a sample needs "
            "a positive sum of weights (effective sample size (Σw)²/Σw² > 0 with Σw > 0)"
        )
    return w


def normalised(weights: np.ndarray) -> np.ndarray:
    """``weights`` divided by their mean, so that a weighted mean over the whole sample is
    ``Σ wᵢ fᵢ / Σ wᵢ = mean(w̃ᵢ fᵢ)`` and every batch can use a plain mean."""
    w = np.asarray(weights, dtype=np.float64)
    return w / w.mean()


def weight_summary(weights: np.ndarray, *, name: str) -> dict[str, float]:
    """Σw, Σw², the effective sample size and the count of negative weights, logged under ``name``."""
    w = np.asarray(weights, dtype=np.float64)
    summary = {
        "events": int(w.size),
        "sum_w": float(w.sum()),
        "sum_w2": float(np.dot(w, w)),
        "effective_events": effective_sample_size(w),
        "negative": int(np.count_nonzero(w < 0)),
    }
    log.info(
        "%s: %d weighted events, Σw = %.6g, Σw² = %.6g, effective sample size %.1f (%.1f%%), %d negative",
        name, summary["events"], summary["sum_w"], summary["sum_w2"], summary["effective_events"],
        100 * summary["effective_events"] / max(w.size, 1), summary["negative"],
    )  # fmt: skip
    return summary
