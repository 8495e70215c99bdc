"""A shared HEP look (mplhep's ROOT style) and atomic PNG saving."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")  # jobs run without a display

import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402

from flowsim.io import atomic_output  # noqa: E402

__all__ = ["hep_style", "save_figure"]


@contextlib.contextmanager
def hep_style() -> Iterator[None]:
    """Apply mplhep's ROOT style inside the block only."""
    with plt.style.context(mplhep.style.ROOT):
        yield


def save_figure(fig: plt.Figure, path: str | os.PathLike[str], dpi: int = 110, *,
                tight: bool = True) -> None:
    """Save ``fig`` as PNG atomically and close it.

    ``tight`` crops the PNG to what is drawn. That costs a second full draw of the figure, so
    large grids that lay out their own margins pass ``tight=False``.
    """
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
