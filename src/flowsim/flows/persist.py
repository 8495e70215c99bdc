"""Model files that travel safely: everything needed to rebuild a model, and nothing to unpickle.

A model file is a ``torch.save`` of a plain dict (:func:`save_model_file`): for a flow, the
family name, the number of features and their names, the architecture hyperparameters, the
``state_dict`` and free-form metadata of numbers and strings; for a flow built with a
sign-flip symmetry (:mod:`flowsim.flows.symmetry`), the names of the flipped features under
``sign_flip``, and the weights are the wrapped flow's. :func:`read_model_file` reads any
such file with ``torch.load(..., weights_only=True)``; :func:`load_flow` rebuilds a flow from it
through the registry. The signal classifier's files use the same two functions.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from flowsim.flows.registry import build_flow
from flowsim.flows.symmetry import SignFlipMixture, signs_of
from flowsim.io import atomic_output

__all__ = ["FORMAT_VERSION", "load_flow", "read_model_file", "save_flow", "save_model_file"]

FORMAT_VERSION = 1


def save_model_file(path: str | os.PathLike[str], module: nn.Module, **fields: Any) -> None:
    """Write ``fields`` and ``module``'s ``state_dict`` (on the CPU) as one plain dict, atomically."""
    payload = {**fields, "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}}
    with atomic_output(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def read_model_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The plain dict of a model file, on the CPU; never unpickles objects (``weights_only``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def save_flow(
    path: str | os.PathLike[str],
    flow: nn.Module,
    *,
    model: str,
    params: dict[str, Any],
    features: list[str] | tuple[str, ...],
    metadata: dict[str, Any] | None = None,
    sign_flip: list[str] | tuple[str, ...] = (),
) -> None:
    """Write ``flow`` with what rebuilds it, atomically (tensors moved to the CPU).

    ``flow`` is the family's model; ``sign_flip`` names the features of a sign-flip symmetry
    that :func:`load_flow` builds around it (:class:`~flowsim.flows.symmetry.SignFlipMixture`).
    """
    if isinstance(flow, SignFlipMixture):
        raise TypeError("save the flow inside the SignFlipMixture, and name its features in sign_flip")
    unknown = [f for f in sign_flip if f not in features]
    if unknown:
        raise ValueError(f"sign_flip names {unknown}, which are not among the features {list(features)}")
    save_model_file(
        path, flow, format_version=FORMAT_VERSION, model=model, n_features=len(features),
        features=list(features), params=dict(params), metadata=dict(metadata or {}),
        sign_flip=list(sign_flip),
    )  # fmt: skip


def load_flow(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a flow saved by :func:`save_flow`, in eval mode on ``device``.

    Returns the model and the file's dict without the weights (model, features, params,
    metadata, sign_flip). A file with a sign-flip symmetry gives the
    :class:`~flowsim.flows.symmetry.SignFlipMixture` around the family's model. Loading never
    unpickles objects (``weights_only=True``).
    """
    payload = read_model_file(path)
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: model file format {payload.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    flow = build_flow(payload["model"], payload["n_features"], **payload["params"])
    flow.load_state_dict(payload["state_dict"])
    flipped = payload.get("sign_flip", [])  # absent in files written before symmetries
    if flipped:
        flow = SignFlipMixture(flow, signs_of(payload["features"], flipped))
    flow.to(device).eval()
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    info.setdefault("sign_flip", [])
    return flow, info
