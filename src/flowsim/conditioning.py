r"""Conditional runs (config ``flows.<run>.condition``): what a run's flow is conditioned on, and
how its model is built (the densities are :mod:`flowsim.flows.conditional`'s).

* ``condition: label`` trains one flow on the background and the signal training splits with
  the label as its context (0 background, 1 signal; Käch et al., seed 003). Everything
  downstream samples it at label 0, as the background surrogate. With ``signal_templates:
  true`` it also fills the signal's templates at label 1, and the luminosity scans fit them in
  one more prediction, ``ml_signal``: both templates from the flow.
* ``condition: <feature>`` (e.g. ``m_jjj``) generates that feature from its own 1-D model
  (``marginal``, a 1-D spline flow by default) and the other features with the run's family
  conditioned on it: :class:`~flowsim.flows.conditional.FeatureConditioned`. Its marginal in
  the feature is then learned on its own, the seed's lever on the masses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from flowsim.errors import ConfigError

__all__ = ["LABEL", "MARGINAL_DEFAULT", "ConditionSettings", "build_run_flow", "parse_condition", "saved_params"]

#: ``condition.given`` of a label-conditioned run.
LABEL = "label"
#: The default 1-D model of a feature-conditioned run's feature: a spline flow with fine bins
#: (a one-feature MADE has no inputs, so its width is unused and kept small).
MARGINAL_DEFAULT: dict[str, Any] = {
    "model": "rqs",
    "params": {"blocks": 2, "bins": 64, "hidden": 8, "residual_blocks": 0},
}


@dataclass(frozen=True)
class ConditionSettings:
    """A run's ``condition``: ``given`` is ``label`` or a feature; ``signal_templates`` (label
    only) also fills signal templates from the flow; ``marginal`` (feature only) is the model
    (``{model, params}``) of the feature's own 1-D density."""

    given: str
    signal_templates: bool = False
    marginal: Mapping[str, Any] = field(default_factory=lambda: dict(MARGINAL_DEFAULT))

    @property
    def by_label(self) -> bool:
        return self.given == LABEL

    def record(self) -> dict[str, Any]:
        """What the model file says (:func:`flowsim.flows.persist.save_flow`'s ``condition``)."""
        if self.by_label:
            return {"given": LABEL}
        marginal = {"model": self.marginal["model"], "params": dict(self.marginal["params"])}
        return {"given": self.given, "marginal": marginal}

    def as_params(self) -> dict[str, Any]:
        """The settings as plain values, for a run's training params."""
        if self.by_label:
            return {"given": LABEL, "signal_templates": self.signal_templates}
        return {"given": self.given, "marginal": self.record()["marginal"]}


def parse_condition(value: object, *, key: str, features: Sequence[str] | None = None) -> ConditionSettings | None:
    """The settings of config entry ``key`` (``flows.<run>.condition``): None (absent), a string
    (``label`` or a feature) or a mapping ``{given, signal_templates}`` / ``{given, marginal}``.
    With ``features``, a feature must be one of them. Errors name the key."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"given": value}
    # "given", not "on": YAML 1.1 reads an unquoted on as true
    if not isinstance(value, Mapping) or not isinstance(value.get("given"), str):
        raise ConfigError(key, f"expected 'label', a feature name or a mapping with 'given', got {value!r}")
    given = value["given"]
    valid = ["given", "signal_templates"] if given == LABEL else ["given", "marginal"]
    unknown = sorted(set(value) - set(valid))
    if unknown:
        problem = f"not a setting of a condition given {given!r}; valid: {', '.join(valid)}"
        raise ConfigError(f"{key}.{unknown[0]}", problem)
    if given != LABEL and features is not None and given not in features:
        raise ConfigError(f"{key}.given", f"expected 'label' or one of the features {list(features)}, got {given!r}")
    signal_templates = value.get("signal_templates", False)
    if not isinstance(signal_templates, bool):
        raise ConfigError(f"{key}.signal_templates", f"expected true or false, got {signal_templates!r}")
    marginal = value.get("marginal", MARGINAL_DEFAULT)
    if not isinstance(marginal, Mapping) or set(marginal) - {"model", "params"}:
        raise ConfigError(f"{key}.marginal", f"expected a mapping of model and params, got {marginal!r}")
    marginal = {"model": marginal.get("model", "rqs"), "params": dict(marginal.get("params", {}))}
    return ConditionSettings(given, signal_templates, marginal)


def build_run_flow(
    model: str, params: Mapping[str, Any], features: Sequence[str], condition: ConditionSettings | None
) -> nn.Module:
    """The untrained flow of a run: the family ``model`` on ``features``; with a label
    condition, with a context of one feature; with a feature condition, the
    :class:`~flowsim.flows.conditional.FeatureConditioned` density of the marginal model and
    the family on the other features with the feature as context."""
    from flowsim.flows.conditional import condition_on_feature
    from flowsim.flows.registry import build_flow

    if condition is None:
        return build_flow(model, len(features), **params)
    if "context" in params:
        raise ValueError("params.context is set by the run's condition; remove it")
    if condition.by_label:
        return build_flow(model, len(features), context=1, **params)
    index = list(features).index(condition.given)
    marginal = build_flow(condition.marginal["model"], 1, **condition.marginal["params"])
    rest = build_flow(model, len(features) - 1, context=1, **params)
    return condition_on_feature(len(features), index, marginal, rest)


def saved_params(params: Mapping[str, Any], condition: ConditionSettings | None) -> dict[str, Any]:
    """The params a conditional run's model file records for the family: with ``context: 1``."""
    return dict(params) if condition is None else {**params, "context": 1}
