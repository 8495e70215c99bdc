"""Training curves: loss per epoch for training and validation, best epoch marked."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt

from flowsim.plots.style import hep_style, save_figure

__all__ = ["plot_history"]


def plot_history(
    history: Sequence[Mapping[str, float]],
    path: str | os.PathLike[str],
    *,
    title: str,
    ylabel: str = "loss",
) -> None:
    """Plot train/val loss against epoch with the learning rate below; mark the best epoch."""
    epochs = [row["epoch"] for row in history]
    val = [row["val_loss"] for row in history]
    best = min(range(len(val)), key=val.__getitem__)
    with hep_style():
        fig, (ax, ax_lr) = plt.subplots(
            2, 1, sharex=True, figsize=(8, 7), gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
        )
        ax.plot(epochs, [row["train_loss"] for row in history], "o-", ms=3, label="training")
        ax.plot(epochs, val, "s-", ms=3, label="validation")
        ax.axvline(epochs[best], color="grey", ls="--", lw=1, label=f"best: epoch {epochs[best]}")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=16)
        ax.legend(fontsize=13)
        ax_lr.plot(epochs, [row["lr"] for row in history], color="black", lw=1)
        ax_lr.set_yscale("log")
        ax_lr.set_ylabel("lr (end)", fontsize=13)
        ax_lr.set_xlabel("epoch")
        save_figure(fig, path)
