"""The settings of one named flow run, resolved from the configuration.

A run's training settings are the :class:`~flowsim.training.TrainConfig` defaults, updated by
the shared ``training`` section, updated by the run's own ``training`` section; its number of
generated events is the run's ``n_generated`` or the shared ``sampling.n_generated``; its
``train_events`` (default: all) caps the background training split, for training-size studies;
its ``feedback`` (default: none) asks for DiscFlow rounds after the training (:mod:`flowsim.discflow`).

A run may declare an ``ensemble``: :func:`ensemble_members` expands it into K member runs
``{run}.member1`` ... ``{run}.memberK``, ordinary runs that differ from it by their training
seed (the run's seed + k) and, with ``bootstrap``, by training on a bootstrap replica of the
training split (:func:`bootstrap_multiplicities`). A Bayesian run's ensemble may instead be K
draws of its weights (``weight_draws``, :func:`weight_draw_members`): ``{run}.draw1`` ...,
one training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from flowsim.conditioning import ConditionSettings, parse_condition
from flowsim.discflow import FeedbackSettings, parse_feedback
from flowsim.errors import ConfigError
from flowsim.training import TrainConfig

__all__ = [
    "RunSpec",
    "bootstrap_multiplicities",
    "draw_name",
    "ensemble_members",
    "member_name",
    "n_generated_events",
    "run_spec",
    "training_settings",
    "weight_draw_members",
]


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a flow run."""

    name: str
    model: str
    params: dict[str, Any]
    training: TrainConfig
    n_generated: int | str
    train_events: int | None = None
    bootstrap: bool = False
    feedback: FeedbackSettings | None = None
    condition: ConditionSettings | None = None

    def training_params(self) -> dict[str, Any]:
        """What training the run depends on, as plain values (Snakemake params compare plain
        values only; its number of generated events is not among them). ``bootstrap``,
        ``feedback`` and ``condition`` appear only when set, so the params of every other run
        stay what they were."""
        values = {
            "model": self.model,
            "params": dict(self.params),
            "training": asdict(self.training),
            "train_events": self.train_events,
        }
        if self.bootstrap:
            values["bootstrap"] = True
        if self.feedback is not None:
            values["feedback"] = asdict(self.feedback)
        if self.condition is not None:
            values["condition"] = self.condition.as_params()
        return values

    @classmethod
    def from_training_params(cls, name: str, values: Mapping[str, Any]) -> RunSpec:
        """The run of :meth:`training_params` (``n_generated`` is not part of it: ``"1x"``)."""
        return cls(
            name,
            values["model"],
            dict(values["params"]),
            TrainConfig(**values["training"]),
            "1x",
            values["train_events"],
            bool(values.get("bootstrap", False)),
            parse_feedback(values.get("feedback"), key=f"flows.{name}.feedback"),
            parse_condition(values.get("condition"), key=f"flows.{name}.condition"),
        )


def training_settings(config: Mapping[str, Any], run: str | None) -> dict[str, Any]:
    """The run's merged training settings as a plain dict (all TrainConfig keys); with
    ``run=None`` the shared ones, for a model that is not a run of the config."""
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    own = config["flows"][run].get("training", {}) if run is not None else {}
    return {**defaults, **config.get("training", {}), **own}


def run_spec(config: Mapping[str, Any], run: str) -> RunSpec:
    """Resolve run ``run`` of ``config['flows']``; errors name the offending key."""
    if run not in config.get("flows", {}):
        raise ConfigError(f"flows.{run}", f"no such run; runs: {sorted(config.get('flows', {}))}")
    entry = config["flows"][run]
    settings = training_settings(config, run)
    valid = [f.name for f in fields(TrainConfig)]
    unknown = sorted(settings.keys() - set(valid))
    if unknown:
        where = "training" if unknown[0] in config.get("training", {}) else f"flows.{run}.training"
        raise ConfigError(f"{where}.{unknown[0]}", f"not a training setting; valid: {', '.join(valid)}")
    try:
        training = TrainConfig(**settings)
    except ValueError as exc:
        raise ConfigError(f"flows.{run}.training", str(exc)) from None
    own = "n_generated" in entry
    n_generated = entry["n_generated"] if own else config.get("sampling", {}).get("n_generated", "1x")
    try:
        n_generated_events(n_generated, 1)
    except ConfigError as exc:
        key = f"flows.{run}.n_generated" if own else "sampling.n_generated"
        raise ConfigError(key, exc.problem) from None
    train_events = entry.get("train_events")
    if train_events is not None and not _is_positive_int(train_events):
        raise ConfigError(
            f"flows.{run}.train_events", f"expected a positive integer or null, got {train_events!r}"
        )
    feedback = parse_feedback(entry.get("feedback"), key=f"flows.{run}.feedback")
    condition = parse_condition(entry.get("condition"), key=f"flows.{run}.condition")
    if condition is not None and condition.by_label and feedback is not None:
        # the classifier would have to learn the label too
        raise ConfigError(f"flows.{run}.feedback", "not available for a label-conditioned run")
    if "context" in entry.get("params", {}):  # nothing would give an unconditional run's flow a context
        raise ConfigError(f"flows.{run}.params.context", f"set by flows.{run}.condition; remove it")
    return RunSpec(
        run, entry["model"], dict(entry.get("params", {})), training, n_generated, train_events,
        feedback=feedback, condition=condition,
    )  # fmt: skip


def n_generated_events(n_generated: int | str, n_reference: int) -> int:
    """Events to generate: an absolute number, or ``"Nx"`` times the reference (test_a) size
    (rounded up, so any positive N gives at least one event). Zero or negative is an error."""
    if isinstance(n_generated, int) and not isinstance(n_generated, bool):
        if n_generated < 1:
            raise ConfigError("n_generated", f"must be a positive number of events, got {n_generated}")
        return n_generated
    if isinstance(n_generated, str) and n_generated.endswith("x"):
        try:
            factor = float(n_generated[:-1])
        except ValueError:
            factor = math.nan
        if not (math.isfinite(factor) and factor > 0):
            raise ConfigError(
                "n_generated", f"{n_generated!r} asks for no events; use a positive multiple such as '1x'"
            )
        return math.ceil(factor * n_reference)
    raise ConfigError("n_generated", f"expected an integer or 'Nx', got {n_generated!r}")


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def member_name(run: str, k: int) -> str:
    """The name of member ``k`` (1-based) of run ``run``'s ensemble."""
    return f"{run}.member{k}"


def draw_name(run: str, k: int) -> str:
    """The name of weight draw ``k`` (1-based) of run ``run``'s Bayesian flow."""
    return f"{run}.draw{k}"


def _check_members(spec: RunSpec, members: object) -> int:
    """An ensemble's number of members: an integer of at least 2 (one member has no spread)."""
    if isinstance(members, bool) or not isinstance(members, int) or members < 2:
        raise ConfigError(
            f"flows.{spec.name}.ensemble.members", f"expected an integer of at least 2, got {members!r}"
        )
    return members


def weight_draw_members(spec: RunSpec, members: int) -> dict[str, RunSpec]:
    """The ``members`` weight draws of a Bayesian run: the run itself under the names of
    :func:`draw_name` (one training; each draw fills its own templates).

    Raises:
        ConfigError: fewer than two members, or a run whose flow is not Bayesian.
    """
    members = _check_members(spec, members)
    if spec.params.get("bayesian") is None:
        raise ConfigError(
            f"flows.{spec.name}.ensemble.weight_draws",
            f"weight draws need a Bayesian flow: set flows.{spec.name}.params.bayesian (e.g. {{}})",
        )
    return {draw_name(spec.name, k): replace(spec, name=draw_name(spec.name, k)) for k in range(1, members + 1)}


def ensemble_members(spec: RunSpec, members: int, *, bootstrap: bool = True) -> dict[str, RunSpec]:
    """The ``members`` runs of ``spec``'s ensemble: member k trains with seed ``seed + k`` and,
    with ``bootstrap``, on a bootstrap replica of the training split.

    Raises:
        ConfigError: fewer than two members (one member has no spread).
    """
    members = _check_members(spec, members)
    return {
        member_name(spec.name, k): replace(
            spec, name=member_name(spec.name, k),
            training=replace(spec.training, seed=spec.training.seed + k), bootstrap=bool(bootstrap),
        )  # fmt: skip
        for k in range(1, members + 1)
    }


def bootstrap_multiplicities(n: int, seed: int) -> np.ndarray:
    r"""How often each of ``n`` training events enters a bootstrap replica: Poisson(1) draws.

    The Poisson bootstrap (each event's multiplicity :math:`k_i \sim \mathrm{Pois}(1)`
    independently) is the large-``n`` limit of drawing ``n`` events with replacement, and it
    lets every event's weight be drawn on its own. The generator is seeded with
    ``(seed, 0xB007)``, a stream apart from the training's own ``seed``.
    """
    return np.random.default_rng([int(seed), 0xB007]).poisson(1.0, size=int(n))
