"""The workflow's settings, parsed once from the validated configuration.

The schema (``workflow/schemas/config.schema.yaml``) checks types and ranges and fills the
defaults of the keys a user leaves out; :func:`parse_settings` then checks what relates keys to
each other (:func:`flowsim.config.check_config`) and turns the sections that define jobs into
frozen, typed objects: every flow run (those of ``flows`` and those that studies expand into)
as a :class:`~flowsim.runs.RunSpec`, the studies, the analysis and its classifier. The
workflow's rules take their settings from here, so that each section has one interpreter.

Snakemake's params rerun trigger compares only plain values (a dataclass would be skipped), so
rules hand jobs plain views of these objects (e.g. :meth:`RunSpec.training_params`) and the
job scripts rebuild the typed object from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from flowsim.analysis.config import AnalysisConfig
from flowsim.config import check_config
from flowsim.errors import ConfigError
from flowsim.runs import RunSpec, ensemble_members, n_generated_events, run_spec, weight_draw_members
from flowsim.studies import Study, parse_studies, study_runs
from flowsim.worth import WorthSettings, parse_worth

__all__ = ["WorkflowSettings", "parse_settings", "two_sample_device"]


@dataclass(frozen=True)
class WorkflowSettings:
    """The parsed settings of one configuration.

    Attributes:
        runs: The runs of ``flows``, in config order: they go through the analysis and the
            summary.
        study_runs: The runs that ``studies`` expand into: trained, sampled and evaluated like
            them, and collected per study instead.
        studies: The studies by name.
        member_runs: The members of the runs that declare an ``ensemble``
            (:func:`~flowsim.runs.ensemble_members`): trained and filled into templates only.
        ensembles: Run of ``flows`` -> the names of its members (runs without an ensemble: none).
        weight_draws: Member that is a weight draw of a Bayesian run -> (that run, draw 1..K).
        analysis: The ``analysis`` section (without its classifier).
        n_template_events: ``analysis.n_template_events``: events per template filling (a
            number, or ``"Nx"`` of MC background test_a).
        classifier_device: The device of the signal classifier (``analysis.classifier.training.device``).
        worth: The ``worth`` section: the truth, the amplification's settings and the coverage
            study, whose replica runs (:attr:`WorthSettings.replica_specs`) train on their own
            toy training sets.
    """

    runs: Mapping[str, RunSpec]
    study_runs: Mapping[str, RunSpec]
    studies: Mapping[str, Study]
    analysis: AnalysisConfig
    classifier_device: str
    member_runs: Mapping[str, RunSpec] = field(default_factory=lambda: MappingProxyType({}))
    ensembles: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    weight_draws: Mapping[str, tuple[str, int]] = field(default_factory=lambda: MappingProxyType({}))
    n_template_events: int | str = "20x"
    worth: WorthSettings = field(default_factory=WorthSettings)

    @property
    def all_runs(self) -> list[str]:
        """Every run the workflow can train: those of ``flows``, of the studies, the ensemble
        members and the coverage replicas."""
        return [*self.runs, *self.study_runs, *self.member_runs, *self.worth.replica_specs]

    def run(self, name: str) -> RunSpec:
        """The run ``name`` of ``flows``, of a study or of an ensemble."""
        for runs in (self.runs, self.study_runs, self.member_runs, self.worth.replica_specs):
            if name in runs:
                return runs[name]
        raise ConfigError(f"flows.{name}", f"no such run; runs: {sorted(self.all_runs)}")

    def template_runs(self, name: str) -> tuple[str, ...]:
        """The runs whose templates make run ``name``'s ML prediction: its ensemble members,
        or the run itself when it has none."""
        return self.ensembles.get(name) or (name,)

    def trained_run(self, name: str) -> str:
        """The run whose model file run ``name`` samples: itself, or the Bayesian run it is a
        weight draw of."""
        return self.weight_draws[name][0] if name in self.weight_draws else name

    def replica_of(self, name: str) -> int | None:
        """The coverage replica (1-based) whose own toy training set run ``name`` trains on, or
        None (the background training split)."""
        return self.worth.replica_of.get(name)

    def weight_draw(self, name: str) -> int | None:
        """The weight draw (1..K) that run ``name`` samples, or None (the flow as trained)."""
        return self.weight_draws[name][1] if name in self.weight_draws else None


def two_sample_device(section: Mapping[str, Any]) -> str:
    """The training device of a two-sample classifier section (``c2st``, ``reweighting``):
    its ``training.device``, else the default of the trainer."""
    from flowsim.training import TrainConfig

    return str(section.get("training", {}).get("device", TrainConfig.device))


def parse_settings(config: Mapping[str, Any]) -> WorkflowSettings:
    """Check ``config`` (already validated against the schema) and parse it.

    Raises:
        ConfigError: For the first inconsistency, naming its key.
    """
    from flowsim.analysis.signal_classifier import ClassifierSettings

    check_config(config)
    runs = {name: run_spec(config, name) for name in config.get("flows", {})}
    studies = parse_studies(config)
    expanded = {**config, "flows": study_runs(config, studies)}
    study_specs = {name: run_spec(expanded, name) for name in expanded["flows"]}
    members, ensembles, draws = _ensembles(config, runs)
    worth = parse_worth(config, runs)
    taken = sorted(set(members) & (set(runs) | set(study_specs)))
    if taken:
        raise ConfigError(f"flows.{taken[0]}", "is the name of an ensemble member; rename the run")
    section = config.get("analysis", {})
    classifier = ClassifierSettings.from_mapping(section.get("classifier", {}))
    n_template_events = section.get("n_template_events", "20x")
    try:
        n_generated_events(n_template_events, 1)
    except ConfigError as exc:
        raise ConfigError("analysis.n_template_events", exc.problem) from None
    return WorkflowSettings(
        runs=MappingProxyType(runs),
        study_runs=MappingProxyType(study_specs),
        studies=MappingProxyType(studies),
        analysis=AnalysisConfig.from_mapping(section),
        classifier_device=classifier.train_config().device,
        member_runs=MappingProxyType(members),
        ensembles=MappingProxyType(ensembles),
        weight_draws=MappingProxyType(draws),
        n_template_events=n_template_events,
        worth=worth,
    )


def _ensembles(
    config: Mapping[str, Any], runs: Mapping[str, RunSpec]
) -> tuple[dict[str, RunSpec], dict[str, tuple[str, ...]], dict[str, tuple[str, int]]]:
    """The member runs of every run of ``flows`` with an ``ensemble``, each run's members, and
    which members are weight draws of which run."""
    members: dict[str, RunSpec] = {}
    ensembles: dict[str, tuple[str, ...]] = {}
    draws: dict[str, tuple[str, int]] = {}
    for name, spec in runs.items():
        ensemble = config["flows"][name].get("ensemble")
        if not ensemble:
            continue
        if ensemble.get("weight_draws", False):
            if ensemble.get("bootstrap", False):
                raise ConfigError(
                    f"flows.{name}.ensemble.bootstrap",
                    "weight draws come from one training; a bootstrap needs one training per member",
                )
            own = weight_draw_members(spec, ensemble.get("members"))
            draws.update({member: (name, k) for k, member in enumerate(own, start=1)})
        else:
            own = ensemble_members(spec, ensemble.get("members"), bootstrap=ensemble.get("bootstrap", True))
        members.update(own)
        ensembles[name] = tuple(own)
    return members, ensembles, draws
