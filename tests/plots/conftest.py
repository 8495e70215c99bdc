"""Shared checks of the plot tests: every PNG is real, and no figure is left open."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def no_open_figures():
    """Every plotting function must close its figures, also when it raises."""
    plt.close("all")
    yield
    assert plt.get_fignums() == [], "a figure was left open"


def _check_png(path: Path, min_kb: float = 15.0) -> np.ndarray:
    """Assert ``path`` is a non-trivial RGBA PNG and return its pixels."""
    path = Path(path)
    assert path.is_file(), f"{path} was not written"
    assert path.stat().st_size > min_kb * 1024, f"{path} is only {path.stat().st_size} bytes"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] == 4, f"expected RGBA, got shape {img.shape}"
    assert img.shape[0] > 300 and img.shape[1] > 300
    assert float(img[..., :3].std()) > 0.02, "the image is (nearly) blank"
    # no temporary files of the atomic writer left behind
    assert not [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]
    return img


@pytest.fixture
def check_png() -> Callable[..., np.ndarray]:
    return _check_png


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
