"""Model files that travel safely: everything needed to rebuild a model, and nothing to unpickle.

A model file is a ``torch.save`` of a plain dict (:func:`save_model_file`): for a flow, the
family name, the number of features and their names, the architecture hyperparameters, the
``state_dict`` and free-form metadata of numbers and strings; for a flow built with a
sign-flip symmetry (:mod:`flowsim.flows.symmetry`), the names of the flipped features under
``sign_flip``, and the weights are the wrapped flow's. :func:`read_model_file` reads any
such file with ``torch.load(..., weights_only=True)``; :func:`load_flow` rebuilds a flow from it
through the registry. The signal classifier's files use the same two functions.

A model file is data from wherever it came from, so nothing is built from it blindly: its
hyperparameters are checked against sane bounds (:data:`SIZE_BOUNDS`), and the architecture
is first built on PyTorch's ``meta`` device (shapes only, no memory) and its parameter shapes
compared with the stored weights (:func:`build_like_stored`). A 2 kB file that claims a hidden
width of 10⁶ is refused before anything is allocated; whatever passes allocates no more than the
weights the file really holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from flowsim.flows.registry import build_flow
from flowsim.flows.symmetry import SignFlipMixture, signs_of
from flowsim.io import atomic_output

__all__ = [
    "FORMAT_VERSION",
    "MAX_LAYERS",
    "SIZE_BOUNDS",
    "ModelFileError",
    "build_like_stored",
    "check_sizes",
    "load_flow",
    "read_model_file",
    "save_flow",
    "save_model_file",
    "size_problem",
]

FORMAT_VERSION = 1

#: Largest value a model file may give each size hyperparameter (and the number of features):
#: far above any useful model (the paper's 250M-parameter MADEMOG has hidden 2048 and 30
#: residual blocks, its model-selection flows 10 blocks of 2).
SIZE_BOUNDS: dict[str, int] = {
    "n_features": 4096,
    "blocks": 256,
    "hidden": 65536,
    "residual_blocks": 256,
    "mixtures": 4096,
    "bins": 4096,
}
#: Largest number of networks' layers, blocks × (residual_blocks + 1): shapes of that many
#: layers build on the meta device in a few seconds (the paper's largest flows have ~30).
MAX_LAYERS = 1024


class ModelFileError(ValueError):
    """A model file that cannot be what it claims: names the file and the field."""


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


def size_problem(sizes: Mapping[str, Any]) -> str | None:
    """What is wrong with size hyperparameters (keys of :data:`SIZE_BOUNDS`): not integers
    within ``[0, bound]``, or more than :data:`MAX_LAYERS` layers; None if nothing. Other keys
    are left to the model's own checks."""
    for key, value in sizes.items():
        if key not in SIZE_BOUNDS:
            continue
        bound = SIZE_BOUNDS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= bound:
            return f"{key} = {value!r} is not an integer between 0 and {bound}"
    layers = sizes.get("blocks", 1) * (sizes.get("residual_blocks", 1) + 1)
    if layers > MAX_LAYERS:
        return f"blocks x (residual_blocks + 1) = {layers} layers, more than {MAX_LAYERS}"
    return None


def check_sizes(path: str | os.PathLike[str], sizes: Mapping[str, Any]) -> None:
    """Raise :class:`ModelFileError` for the :func:`size_problem` of a model file's sizes."""
    problem = size_problem(sizes)
    if problem is not None:
        raise ModelFileError(f"{path}: {problem}; the file is damaged or was not written by flowsim")


def build_like_stored(
    path: str | os.PathLike[str],
    build: Callable[[], nn.Module],
    state_dict: Mapping[str, torch.Tensor],
) -> nn.Module:
    """``build()`` for real only once its shapes, built on the ``meta`` device, are those of
    ``state_dict``; then load the weights. Raises :class:`ModelFileError` naming the first
    missing, unexpected or differently shaped tensor."""
    try:
        with torch.device("meta"):
            skeleton = build()
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: cannot build the architecture it names: {exc}") from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    if missing or unexpected or len(stored) != len(state_dict):
        raise ModelFileError(
            f"{path}: its weights do not fit the architecture it names (missing: "
            f"{missing[:3]}, unexpected: {unexpected[:3]})"
        )
    for key, shape in expected.items():
        if stored[key] != shape:
            raise ModelFileError(
                f"{path}: weight {key!r} has shape {stored[key]} in the file, but the "
                f"architecture it names has {shape}"
            )
    module = build()
    module.load_state_dict(state_dict)
    return module


def load_flow(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a flow saved by :func:`save_flow`, in eval mode on ``device``.

    Returns the model and the file's dict without the weights (model, features, params,
    metadata, sign_flip). A file with a sign-flip symmetry gives the
    :class:`~flowsim.flows.symmetry.SignFlipMixture` around the family's model. Loading never
    unpickles objects (``weights_only=True``) and never builds more than the file's weights
    (:func:`check_sizes`, :func:`build_like_stored`).
    """
    payload = read_model_file(path)
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        version = payload.get("format_version") if isinstance(payload, dict) else None
        raise ModelFileError(f"{path}: model file format {version!r}, expected {FORMAT_VERSION}")
    features, params = payload.get("features"), payload.get("params")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ModelFileError(f"{path}: 'features' must be a list of feature names")
    if not isinstance(params, dict):
        raise ModelFileError(f"{path}: 'params' must be a mapping of hyperparameters")
    check_sizes(path, {"n_features": payload.get("n_features"), **params})
    if payload["n_features"] != len(features):
        raise ModelFileError(
            f"{path}: n_features = {payload['n_features']} but {len(features)} features are named"
        )
    flow = build_like_stored(
        path, lambda: build_flow(payload["model"], payload["n_features"], **params), payload["state_dict"]
    )
    flipped = payload.get("sign_flip", [])  # absent in files written before symmetries
    if flipped:
        flow = SignFlipMixture(flow, signs_of(features, flipped))
    flow.to(device).eval()
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    info.setdefault("sign_flip", [])
    return flow, info
