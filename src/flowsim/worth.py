"""Settings of what a generated event is worth (the ``worth`` section), and the coverage replicas.

The amplification and the spurious signal judge every run against a *truth*: on the toy a large
sample of the toy generator with its own seed (``truth: toy``, unlimited truth), on real data
the MC background hold-out ``test_a`` (``truth: holdout``). The coverage study
(``worth.coverage``) expands into replicas ``coverage.r001`` ... that copy one run of ``flows``
(with its ``params`` and ``training`` overridden as the study says) and train on their own toy
training sets: replica r is the run itself with one flow, or a bootstrap ensemble
``coverage.r001.member1`` ... whose pooled templates predict its background. Like the runs of a
study they are ordinary runs of the flow stage; only their training data differ
(:meth:`WorthSettings.replica_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from flowsim.errors import ConfigError
from flowsim.runs import RunSpec, ensemble_members, run_spec

__all__ = ["REPLICA_PREFIX", "CoverageSettings", "WorthSettings", "parse_worth", "replica_name", "replica_seed"]

#: Replicas are named ``coverage.r001``: the dot keeps them apart from the names of ``flows``.
REPLICA_PREFIX = "coverage.r"
_TRUTHS = ("toy", "holdout")


def replica_name(r: int, n_replicas: int) -> str:
    """The name of replica ``r`` (1-based), zero-padded so that names sort in replica order."""
    return f"{REPLICA_PREFIX}{r:0{max(3, len(str(n_replicas)))}d}"


def replica_seed(seed: int, r: int) -> int:
    """The toy seed of replica ``r``'s training set: a stream of its own for each (seed, r)."""
    return int(np.random.SeedSequence([int(seed), int(r), 0xC0FE]).generate_state(1)[0])


@dataclass(frozen=True)
class CoverageSettings:
    """The coverage study: ``replicas`` copies of run ``run`` trained on their own toy sets."""

    run: str
    replicas: int
    members: int
    train_events: int | None
    val_events: int | None
    seed: int
    lumi_fb: tuple[float, float, int]
    shapesys_rel: float
    specs: Mapping[str, RunSpec]
    template_runs: Mapping[str, tuple[str, ...]]

    @property
    def names(self) -> list[str]:
        """The replicas, in order."""
        return list(self.template_runs)


@dataclass(frozen=True)
class WorthSettings:
    """The parsed ``worth`` section.

    Attributes:
        truth: ``"toy"`` or ``"holdout"`` (``auto`` resolved against ``data.source``).
        truth_events, truth_seed: size and seed of the toy truth.
        marginal_bins: quantile bins of each feature's marginal before the cut.
        n_bootstrap, seed: the amplification's bootstrap and the coverage pseudo-data.
        coverage: the coverage study, or None.
        replica_of: every replica run and member -> its replica index (1-based).
    """

    truth: str = "toy"
    truth_events: int = 1_000_000
    truth_seed: int = 271828
    marginal_bins: int = 20
    n_bootstrap: int = 200
    seed: int = 0
    coverage: CoverageSettings | None = None
    replica_of: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def replica_specs(self) -> Mapping[str, RunSpec]:
        """Every run the coverage study trains (replicas or their members)."""
        return self.coverage.specs if self.coverage else MappingProxyType({})


def parse_worth(config: Mapping[str, Any], runs: Mapping[str, RunSpec]) -> WorthSettings:
    """The ``worth`` section of ``config`` (validated by the schema), with its replicas.

    Raises:
        ConfigError: a toy truth without the toy source or with the data's own seed, or a
            coverage study of an unknown run, off the toy, or with settings a run refuses.
    """
    section = config.get("worth", {}) or {}
    default = WorthSettings()  # the schema's defaults (tests/test_settings.py ties them)
    source = config.get("data", {}).get("source", "toy")
    truth = section.get("truth", "auto")
    truth = ("toy" if source == "toy" else "holdout") if truth == "auto" else truth
    if truth not in _TRUTHS:
        raise ConfigError("worth.truth", f"expected auto, toy or holdout, got {truth!r}")
    if truth == "toy" and source != "toy":
        raise ConfigError(
            "worth.truth", f"a toy truth judges flows trained on toy data only; data.source is {source!r}: use holdout"
        )
    truth_seed = int(section.get("truth_seed", default.truth_seed))
    if truth == "toy" and truth_seed == config.get("data", {}).get("toy", {}).get("seed"):
        raise ConfigError("worth.truth_seed", f"{truth_seed} is data.toy.seed: the truth must be independent")
    coverage = _coverage(config, section.get("coverage"), runs, source)
    replica_of = {}
    if coverage is not None:
        for r, name in enumerate(coverage.names, start=1):
            replica_of.update({run: r for run in (name, *coverage.template_runs[name])})
    return WorthSettings(
        truth=truth,
        truth_events=int(section.get("truth_events", default.truth_events)),
        truth_seed=truth_seed,
        marginal_bins=int(section.get("marginal_bins", default.marginal_bins)),
        n_bootstrap=int(section.get("n_bootstrap", default.n_bootstrap)),
        seed=int(section.get("seed", default.seed)),
        coverage=coverage,
        replica_of=MappingProxyType(replica_of),
    )


def _coverage(
    config: Mapping[str, Any], section: Mapping[str, Any] | None, runs: Mapping[str, RunSpec], source: str
) -> CoverageSettings | None:
    if not section:
        return None
    base = section["run"]
    if base not in runs:
        raise ConfigError("worth.coverage.run", f"no such run {base!r}; runs of flows: {sorted(runs)}")
    if source != "toy":
        raise ConfigError(
            "worth.coverage", f"replicas draw their training sets from the toy generator; data.source is {source!r}"
        )
    entry = dict(config["flows"][base])
    entry["params"] = {**entry.get("params", {}), **section.get("params", {})}
    entry["training"] = {**entry.get("training", {}), **section.get("training", {})}
    entry.pop("ensemble", None)
    n = int(section.get("replicas", 20))
    members = int(section.get("members", 3))
    specs: dict[str, RunSpec] = {}
    template_runs: dict[str, tuple[str, ...]] = {}
    for r in range(1, n + 1):
        name = replica_name(r, n)
        try:
            spec = replace(run_spec({**config, "flows": {name: entry}}, name), n_generated="1x")
        except ConfigError as exc:
            raise ConfigError("worth.coverage", str(exc)) from None
        own = ensemble_members(spec, members, bootstrap=True) if members > 1 else {name: spec}
        specs.update(own)
        template_runs[name] = tuple(own)
    grid = section.get("lumi_fb", {}) or {}
    lumi = (float(grid.get("min", 1.0)), float(grid.get("max", 1000.0)), int(grid.get("n", 7)))
    if lumi[1] < lumi[0]:
        raise ConfigError("worth.coverage.lumi_fb", f"max {lumi[1]} is below min {lumi[0]}")
    return CoverageSettings(
        run=base, replicas=n, members=members, train_events=section.get("train_events"),
        val_events=section.get("val_events"), seed=int(section.get("seed", 1)), lumi_fb=lumi,
        shapesys_rel=float(section.get("shapesys_rel", 0.001)), specs=MappingProxyType(specs),
        template_runs=MappingProxyType(template_runs),
    )  # fmt: skip
