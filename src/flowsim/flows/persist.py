"""Model files that travel safely: everything needed to rebuild a flow, and nothing to unpickle.

A model file is a ``torch.save`` of a plain dict: the family name, the number of features and
their names, the architecture hyperparameters, the ``state_dict`` and free-form metadata of
numbers and strings. :func:`load_flow` reads it with ``torch.load(..., weights_only=True)``
and rebuilds the model through the registry.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from flowsim.flows.registry import build_flow
from flowsim.io import atomic_output

__all__ = ["FORMAT_VERSION", "load_flow", "save_flow"]

FORMAT_VERSION = 1


def save_flow(
    path: str | os.PathLike[str],
    flow: nn.Module,
    *,
    model: str,
    params: dict[str, Any],
    features: list[str] | tuple[str, ...],
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``flow`` with what rebuilds it, atomically (tensors moved to the CPU)."""
    state = {k: v.detach().cpu() for k, v in flow.state_dict().items()}
    payload = {
        "format_version": FORMAT_VERSION,
        "model": model,
        "n_features": len(features),
        "features": list(features),
        "params": dict(params),
        "state_dict": state,
        "metadata": dict(metadata or {}),
    }
    with atomic_output(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_flow(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a flow saved by :func:`save_flow`, in eval mode on ``device``.

    Returns the model and the file's dict without the weights (model, features, params,
    metadata). Loading never unpickles objects (``weights_only=True``).
    """
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: model file format {payload.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    flow = build_flow(payload["model"], payload["n_features"], **payload["params"])
    flow.load_state_dict(payload["state_dict"])
    flow.to(device).eval()
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    return flow, info
