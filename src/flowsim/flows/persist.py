"""Flow model files (:mod:`flowsim.model_files`: a plain dict, nothing to unpickle).

A flow's file holds the family name, the number of features and their names, the architecture
hyperparameters, the ``state_dict`` and free-form metadata of numbers and strings; for a flow
built with a sign-flip symmetry (:mod:`flowsim.flows.symmetry`), the names of the flipped
features under ``sign_flip``, and the weights are the wrapped flow's. :func:`load_flow`
rebuilds the flow through the registry, after the checks of :mod:`flowsim.model_files`.
A Bayesian flow (:mod:`flowsim.flows.bayesian`) is one whose ``params`` hold ``bayesian``: the
registry rebuilds its variational layers, whose means and rho (the widths) are its weights (a frozen
draw is not saved: it is a seed, not a weight).

A conditional run's file says how it is conditioned under ``condition``
(:mod:`flowsim.flows.conditional`): ``{"given": "label"}`` for a flow of background and signal
with the label as its context (the weights are that flow's, ``params`` give ``context: 1``;
:func:`load_flow` fixes the label, background by default), or ``{"given": <feature>, "marginal":
{"model": ..., "params": ...}}`` for a :class:`~flowsim.flows.conditional.FeatureConditioned`
density (the weights are its marginal's and conditional part's, ``model``/``params`` name the
conditional part, built on the other features).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from flowsim.flows.bayesian import bayesian_settings, is_bayesian, variational_layers
from flowsim.flows.conditional import FeatureConditioned, FixedContext, condition_on_feature
from flowsim.flows.peers import ZukoFlow
from flowsim.flows.registry import FLOWS, build_flow, hyperparameters
from flowsim.flows.symmetry import SignFlipMixture, signs_of
from flowsim.model_files import ModelFileError, build_like_stored, check_sizes, read_model_file, save_model_file

__all__ = ["FORMAT_VERSION", "LABELS", "load_flow", "save_flow"]

#: The label context of a label-conditioned flow, by class.
LABELS = {"background": 0, "signal": 1}

FORMAT_VERSION = 1


def save_flow(
    path: str | os.PathLike[str],
    flow: nn.Module,
    *,
    model: str,
    params: dict[str, Any],
    features: list[str] | tuple[str, ...],
    metadata: dict[str, Any] | None = None,
    sign_flip: list[str] | tuple[str, ...] = (),
    condition: dict[str, Any] | None = None,
) -> None:
    """Write ``flow`` with what rebuilds it, atomically (tensors moved to the CPU).

    ``flow`` is the family's model (for a feature-conditioned run, its
    :class:`~flowsim.flows.conditional.FeatureConditioned` density); ``sign_flip`` names the
    features of a sign-flip symmetry that :func:`load_flow` builds around it
    (:class:`~flowsim.flows.symmetry.SignFlipMixture`); ``condition`` says how a conditional run
    is conditioned (module docstring).
    """
    if isinstance(flow, (SignFlipMixture, FixedContext)):
        raise TypeError(
            f"save the flow inside the {type(flow).__name__}: name a symmetry in sign_flip, a label in condition"
        )
    unknown = [f for f in sign_flip if f not in features]
    if unknown:
        raise ValueError(f"sign_flip names {unknown}, which are not among the features {list(features)}")
    _check_bayesian(flow, params)
    _check_condition(flow, features, condition)
    save_model_file(
        path, flow, format_version=FORMAT_VERSION, model=model, n_features=len(features),
        features=list(features), params=dict(params), metadata=dict(metadata or {}),
        sign_flip=list(sign_flip), **({"condition": dict(condition)} if condition else {}),
    )  # fmt: skip


def _check_condition(flow: nn.Module, features: list[str] | tuple[str, ...], condition: dict | None) -> None:
    """``condition`` must describe ``flow``, or the file would rebuild another model."""
    given = (condition or {}).get("given")
    if isinstance(flow, FeatureConditioned) != (given not in (None, "label")):
        raise ValueError(f"condition {condition!r} does not describe a {type(flow).__name__}")
    if given == "label" and getattr(flow, "context", 0) != 1:
        raise ValueError("a label-conditioned flow takes a context of one feature")
    if isinstance(flow, FeatureConditioned) and features[flow.index] != given:
        raise ValueError(f"the flow is conditioned on feature {features[flow.index]!r}, condition names {given!r}")


def _check_bayesian(flow: nn.Module, params: dict[str, Any]) -> None:
    """The ``bayesian`` entry of ``params`` must describe ``flow``, or the file would load as
    another model (refused then, or with another prior)."""
    stated = params.get("bayesian")
    if is_bayesian(flow) != (stated is not None):
        raise ValueError(
            f"the flow is {'' if is_bayesian(flow) else 'not '}Bayesian but params "
            f"{'lack' if stated is None else 'give'} a 'bayesian' entry"
        )
    if stated is not None:
        prior = bayesian_settings(stated)["prior_std"]
        held = sorted({layer.prior_std for layer in variational_layers(flow)})
        if held != [prior]:
            raise ValueError(f"params give bayesian.prior_std = {prior}, the flow's layers have {held}")


def _check_peer_size(path: str | os.PathLike[str], model: str, n_features: int, params: dict, state: dict) -> None:
    """A zuko peer is built for real (zuko's masks do not build on ``meta``): only when the
    weights the file holds are at least what its claimed architecture needs."""
    family, hyper = FLOWS[model], {**hyperparameters(model), **params}
    try:
        needed = family.least_state_size(n_features, **hyper)
    except TypeError as exc:
        raise ModelFileError(f"{path}: cannot build the architecture it names: {exc}") from None
    held = sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor))
    if needed > held:
        raise ModelFileError(
            f"{path}: its {family.__name__} architecture needs at least {needed} numbers, the file holds {held}"
        )


def load_flow(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", *, label: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a flow saved by :func:`save_flow`, in eval mode on ``device``.

    Returns the model and the file's dict without the weights (model, features, params,
    metadata, sign_flip, condition). A file with a sign-flip symmetry gives the
    :class:`~flowsim.flows.symmetry.SignFlipMixture` around the family's model. A
    label-conditioned flow is returned at ``label`` (a key of :data:`LABELS`, ``background``
    by default) as a :class:`~flowsim.flows.conditional.FixedContext`; ``label`` is refused for
    any other file. Loading never unpickles objects (``weights_only=True``) and never builds
    more than the file's weights (:func:`check_sizes`, :func:`build_like_stored`).
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
    condition = payload.get("condition") or {}  # absent in unconditional runs' files
    given = condition.get("given")
    if label is not None and given != "label":
        raise ValueError(f"{path}: label {label!r} asked for, but the flow is not conditioned on the label")
    build, n_family = _builder(path, payload["model"], payload["n_features"], params, features, condition)
    family = FLOWS.get(payload["model"])
    on_meta = not (isinstance(family, type) and issubclass(family, ZukoFlow))
    if not on_meta:
        _check_peer_size(path, payload["model"], n_family, params, payload["state_dict"])
    flow = build_like_stored(path, build, payload["state_dict"], on_meta=on_meta)
    if given == "label":
        if (label or "background") not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
        flow = FixedContext(flow, torch.tensor([float(LABELS[label or "background"])]))
    flipped = payload.get("sign_flip", [])  # absent in files written before symmetries
    if flipped:
        flow = SignFlipMixture(flow, signs_of(features, flipped))
    flow.to(device).eval()
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    info.setdefault("sign_flip", [])
    info.setdefault("condition", None)
    return flow, info


def _builder(
    path: str | os.PathLike[str], model: str, n_features: int, params: dict, features: list[str], condition: dict
) -> tuple[Callable[[], nn.Module], int]:
    """What builds the file's model, and the number of features of the family's part of it."""
    given = condition.get("given")
    if given is None or given == "label":
        return lambda: build_flow(model, n_features, **params), n_features
    marginal = condition.get("marginal")
    if given not in features or not isinstance(marginal, dict) or not isinstance(marginal.get("params"), dict):
        raise ModelFileError(f"{path}: 'condition' must name one of its features and a marginal, got {condition!r}")
    check_sizes(path, {"n_features": 1, **marginal["params"]})
    index = features.index(given)

    def build() -> nn.Module:
        part = build_flow(model, n_features - 1, **params)
        return condition_on_feature(n_features, index, build_flow(marginal["model"], 1, **marginal["params"]), part)

    return build, n_features - 1
