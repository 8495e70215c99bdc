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
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from flowsim.analysis.config import AnalysisConfig
from flowsim.config import check_config
from flowsim.errors import ConfigError
from flowsim.runs import RunSpec, run_spec
from flowsim.studies import Study, parse_studies, study_runs

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
        analysis: The ``analysis`` section (without its classifier).
        classifier_device: The device of the signal classifier (``analysis.classifier.training.device``).
    """

    runs: Mapping[str, RunSpec]
    study_runs: Mapping[str, RunSpec]
    studies: Mapping[str, Study]
    analysis: AnalysisConfig
    classifier_device: str

    @property
    def all_runs(self) -> list[str]:
        """Every run the workflow can train: those of ``flows``, then those of the studies."""
        return [*self.runs, *self.study_runs]

    def run(self, name: str) -> RunSpec:
        """The run ``name`` of ``flows`` or of a study."""
        if name in self.runs:
            return self.runs[name]
        if name in self.study_runs:
            return self.study_runs[name]
        raise ConfigError(f"flows.{name}", f"no such run; runs: {sorted(self.all_runs)}")


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
    section = config.get("analysis", {})
    classifier = ClassifierSettings.from_mapping(section.get("classifier", {}))
    return WorkflowSettings(
        runs=MappingProxyType(runs),
        study_runs=MappingProxyType(study_specs),
        studies=MappingProxyType(studies),
        analysis=AnalysisConfig.from_mapping(section),
        classifier_device=classifier.train_config().device,
    )
