"""Model files that travel safely: a plain dict of everything needed to rebuild a model, and
nothing to unpickle. Used by the flows (:mod:`flowsim.flows.persist`) and the signal classifier.

A model file is a ``torch.save`` of a plain dict (:func:`save_model_file`) read back with
``torch.load(..., weights_only=True)`` (:func:`read_model_file`). It is data from wherever it
came from, so nothing is built from it blindly: its size hyperparameters are checked against
sane bounds (:data:`SIZE_BOUNDS`, :func:`check_sizes`), and the architecture is first built on
PyTorch's ``meta`` device (shapes only, no memory) and its parameter shapes compared with the
stored weights (:func:`build_like_stored`). A 2 kB file that claims a hidden width of 10⁶ is
refused before anything is allocated; whatever passes allocates no more than the weights the
file really holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from flowsim.io import atomic_output

__all__ = [
    "MAX_LAYERS",
    "SIZE_BOUNDS",
    "ModelFileError",
    "build_like_stored",
    "check_sizes",
    "read_model_file",
    "save_model_file",
    "size_problem",
]

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
    "layers": 256,
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
    # network depth per block: zuko's hidden layers, or flowsim's residual blocks + the input layer
    depth = sizes["layers"] if "layers" in sizes else sizes.get("residual_blocks", 1) + 1
    layers = sizes.get("blocks", 1) * depth
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
    *,
    on_meta: bool = True,
) -> nn.Module:
    """``build()`` for real only once its shapes, built on the ``meta`` device, are those of
    ``state_dict``; then load the weights. Raises :class:`ModelFileError` naming the first
    missing, unexpected or differently shaped tensor.

    ``on_meta=False`` is for architectures whose construction the ``meta`` device cannot run
    (zuko's masks): the caller has bounded their size by the weights the file holds, and the
    model is built for real before the same comparison."""
    try:
        if on_meta:
            with torch.device("meta"):
                skeleton = build()
        else:
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
    module = build() if on_meta else skeleton
    module.load_state_dict(state_dict)
    return module
