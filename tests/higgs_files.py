"""Small HIGGS-layout files written by the tests themselves (never the real data)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from flowsim.data.higgs import N_COLUMNS


def make_rows(n: int, seed: int = 0, signal_fraction: float = 0.4) -> np.ndarray:
    """Random float32 rows in the HIGGS layout (label first); not physics, just the format."""
    rng = np.random.default_rng(seed)
    rows = rng.lognormal(0.0, 0.5, size=(n, N_COLUMNS)).astype(np.float32)
    rows[:, 0] = (rng.random(n) < signal_fraction).astype(np.float32)
    return rows


def write_csv(path: Path, rows: np.ndarray | list[str]) -> Path:
    """Write rows as HIGGS text (%.18e like the UCI file), gzip-compressed for a .gz suffix."""
    if isinstance(rows, np.ndarray):
        lines = [",".join(f"{v:.18e}" for v in row) for row in rows]
    else:
        lines = list(rows)
    text = ("\n".join(lines) + "\n").encode() if lines else b""
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(text)
    else:
        path.write_bytes(text)
    return path
