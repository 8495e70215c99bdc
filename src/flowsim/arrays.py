"""Input checks shared by the metrics and the plots: arrays in, clear ValueErrors out."""

from __future__ import annotations

import numpy as np

__all__ = ["finite_sample"]


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
