"""Input checks shared by the metrics and the plots: arrays in, clear ValueErrors out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bin_edges", "event_matrix", "event_weights", "feature_names", "finite_sample"]


def finite_sample(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as a finite, non-empty 1-D float64 array, or a ValueError naming ``name``."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    n_bad = a.size - int(np.count_nonzero(np.isfinite(a)))
    if n_bad:
        raise ValueError(f"{name} has {n_bad} non-finite value(s) (NaN or inf) of {a.size}")
    return a


def event_matrix(x: np.ndarray, name: str, features: Sequence[str]) -> np.ndarray:
    """``x`` as a finite (N, F) float64 array matching ``features``, or a ValueError."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (events, features), got shape {a.shape}")
    if a.shape[1] != len(features):
        raise ValueError(f"{name} has {a.shape[1]} columns but {len(features)} features were "
                         f"given: {list(features)}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty (no events)")
    finite = np.isfinite(a).all(axis=0)
    if not finite.all():
        bad = [features[j] for j in np.flatnonzero(~finite)]
        raise ValueError(f"{name} has non-finite values (NaN or inf) in {bad}")
    return a


def feature_names(features: Sequence[str]) -> list[str]:
    """``features`` as a non-empty list of unique names, or a ValueError."""
    names = [str(f) for f in features]
    if not names:
        raise ValueError("features is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"feature names are not unique: {names}")
    return names


def event_weights(weights: np.ndarray | None, n: int, name: str = "weights") -> np.ndarray | None:
    """Per-event weights of a sample of ``n`` events (None: unit weights)."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one per event; got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"{name} has non-finite values")
    if not w.sum() > 0:
        raise ValueError(f"{name} must have a positive sum, got {w.sum()!r}")
    return w


def bin_edges(edges: np.ndarray) -> np.ndarray:
    """``edges`` as a finite, strictly increasing float64 array of at least two values."""
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.isfinite(e).all() or (np.diff(e) <= 0).any():
        raise ValueError("bin edges must be a finite, strictly increasing 1-D array of >= 2 values")
    return e
