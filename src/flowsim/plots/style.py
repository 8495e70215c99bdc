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

__all__ = [
    "ALT_COLOR", "DENSITY_LABEL", "GEN_COLOR", "MC_COLOR", "MC_EDGE", "TAIL_COLOR", "closing", "hep_style",
    "save_figure",
]  # fmt: skip

# Colours of mplhep's ROOT cycle: MC in grey as in the paper's Fig. 7, generated in blue, the
# tail markers in red as in Fig. 8.
MC_COLOR = "#9c9ca1"
MC_EDGE = "#5f5f63"
GEN_COLOR = "#5790fc"
TAIL_COLOR = "#e42536"
ALT_COLOR = "#f89c20"

DENSITY_LABEL = r"$1/N\;\mathrm{d}N/\mathrm{d}x$"


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


@contextlib.contextmanager
def closing(fig: plt.Figure) -> Iterator[plt.Figure]:
    """Close ``fig`` however the block ends (``save_figure`` closes it on success too)."""
    try:
        yield fig
    finally:
        plt.close(fig)
