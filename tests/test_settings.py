"""Settings parsed once: typed runs and studies, the config left as it was, and defaults that the
schema and the typed settings agree on."""

from __future__ import annotations

import copy
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from flowsim.analysis.config import AnalysisConfig
from flowsim.analysis.signal_classifier import TRAINING_DEFAULTS, ClassifierSettings
from flowsim.classifier import TWO_SAMPLE_TRAINING
from flowsim.errors import ConfigError
from flowsim.metrics.c2st import C2STSettings
from flowsim.reweighting import TREE_DEFAULTS, ReweightSettings
from flowsim.runs import RunSpec
from flowsim.settings import parse_settings, two_sample_device
from flowsim.studies import Study
from flowsim.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def _validated(*overlays: Path) -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for overlay in overlays:
        for key, value in yaml.safe_load(overlay.read_text()).items():
            config[key] = value
    validate(config, str(SCHEMA_PATH))
    return config


def _schema_defaults(section: dict) -> dict:
    return {key: spec["default"] for key, spec in section["properties"].items() if "default" in spec}


def test_runs_and_study_runs_are_typed_and_the_config_is_left_alone():
    config = _validated(ROOT / "config" / "studies.yaml")
    before = copy.deepcopy(config)
    settings = parse_settings(config)
    assert config == before  # studies no longer write their runs into config["flows"]
    assert list(settings.runs) == list(config["flows"])
    assert set(settings.runs).isdisjoint(settings.study_runs)
    assert settings.all_runs == [*config["flows"], *settings.study_runs]
    for name in settings.all_runs:
        spec = settings.run(name)
        assert isinstance(spec, RunSpec) and spec.name == name
        assert isinstance(spec.training, TrainConfig)
    assert {run for study in settings.studies.values() for run in study.runs} == set(settings.study_runs)
    with pytest.raises(ConfigError, match="flows.nope"):
        settings.run("nope")


def test_a_runs_training_params_give_back_the_same_training():
    settings = parse_settings(_validated())
    for spec in settings.runs.values():
        again = RunSpec.from_training_params(spec.name, spec.training_params())
        assert (again.model, again.params, again.training, again.train_events) == (
            spec.model, spec.params, spec.training, spec.train_events,
        )  # fmt: skip
        assert "n_generated" not in spec.training_params()  # more events must not retrain


def test_a_studys_point_params_give_back_the_study():
    settings = parse_settings(_validated(ROOT / "config" / "studies.yaml"))
    for study in settings.studies.values():
        assert Study.from_params(study.name, study.scan, study.point_params()) == study


def test_the_schemas_defaults_are_those_of_the_typed_settings():
    props = SCHEMA["properties"]
    c2st = _schema_defaults(props["c2st"])
    assert c2st.pop("seed") == 0
    assert C2STSettings.from_mapping(c2st) == C2STSettings()
    reweighting = _schema_defaults(props["reweighting"])
    assert (reweighting.pop("enabled"), reweighting.pop("seed")) == (False, 0)
    assert ReweightSettings.from_section(reweighting) == ReweightSettings()
    analysis = props["analysis"]
    classifier = _schema_defaults(analysis["properties"]["classifier"])
    assert ClassifierSettings.from_mapping(classifier) == ClassifierSettings()
    section = _schema_defaults(analysis)
    del section["classifier"]
    assert AnalysisConfig.from_mapping(section) == AnalysisConfig()


def _numbers(text: str) -> dict[str, float]:
    """'lr 1e-3, batch 512, at most 20 epochs, patience 4' as {lr: 1e-3, batch_size: 512, ...}."""
    patterns = {
        "lr": r"lr ([0-9.e-]+)", "batch_size": r"batch ([0-9]+)", "max_epochs": r"at most ([0-9]+) epochs",
        "patience": r"patience ([0-9]+)",
    }  # fmt: skip
    found = {key: re.search(pattern, text) for key, pattern in patterns.items()}
    return {key: float(m.group(1)) for key, m in found.items() if m}


def test_the_training_defaults_the_schema_states_in_words_are_those_in_the_code():
    props = SCHEMA["properties"]
    for section in (props["c2st"], props["reweighting"]):
        assert _numbers(section["properties"]["training"]["description"]) == TWO_SAMPLE_TRAINING
    classifier = props["analysis"]["properties"]["classifier"]["properties"]["training"]["description"]
    assert _numbers(classifier) == TRAINING_DEFAULTS
    tree = props["reweighting"]["properties"]["tree"]["description"]
    for key, value in TREE_DEFAULTS.items():
        assert f"{key} {value}" in " ".join(tree.split())


def test_two_sample_device_falls_back_to_the_trainers_default():
    assert two_sample_device({}) == TrainConfig().device
    assert two_sample_device({"training": {"device": "cuda:1"}}) == "cuda:1"


def test_typed_settings_are_frozen():
    settings = parse_settings(_validated())
    with pytest.raises(AttributeError):
        settings.analysis = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.runs["x"] = None  # type: ignore[index]
    assert {f.name for f in fields(settings)} >= {"runs", "study_runs", "studies", "analysis"}
