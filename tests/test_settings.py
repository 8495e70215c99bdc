"""Settings parsed once: typed runs and studies, the config left as it was, and defaults that the
schema and the typed settings agree on."""

from __future__ import annotations

import copy
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
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
from flowsim.settings import WorkflowSettings, parse_settings, two_sample_device
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
    assert settings.all_runs == [*config["flows"], *settings.study_runs, *settings.member_runs]
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
    default = WorkflowSettings.__dataclass_fields__["n_template_events"].default
    assert section["n_template_events"] == default


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


def _with_ensemble(ensemble: dict, **analysis) -> dict:
    config = _validated()
    config["flows"] = {
        "small": {"model": "maf", "params": {"blocks": 2}, "ensemble": ensemble},
        "other": {"model": "glow"},
    }
    config["analysis"] = {**config["analysis"], **analysis}
    validate(config, str(SCHEMA_PATH))
    return config


def test_an_ensemble_expands_into_member_runs_with_their_own_seeds_and_replicas():
    settings = parse_settings(_with_ensemble({"members": 3}))
    names = ("small.member1", "small.member2", "small.member3")
    assert tuple(settings.member_runs) == names == settings.ensembles["small"]
    assert settings.template_runs("small") == names and settings.template_runs("other") == ("other",)
    base = settings.run("small")
    for k, name in enumerate(names, start=1):
        member = settings.run(name)
        assert member.training.seed == base.training.seed + k and member.bootstrap
        assert (member.model, member.params) == (base.model, base.params)
        again = RunSpec.from_training_params(name, member.training_params())
        assert again.bootstrap and again.training == member.training
    assert not base.bootstrap and "bootstrap" not in base.training_params()  # other runs' params unchanged
    assert set(names) <= set(settings.all_runs) and set(names).isdisjoint(settings.runs)
    seeded = parse_settings(_with_ensemble({"members": 2, "bootstrap": False}))
    assert not any(spec.bootstrap for spec in seeded.member_runs.values())


def test_ensemble_and_template_settings_errors_name_the_key():
    config = _with_ensemble({"members": 2})
    config["flows"]["small.member1"] = {"model": "maf"}
    with pytest.raises(ConfigError, match=r"flows\.small\.member1.*ensemble member"):
        parse_settings(config)
    with pytest.raises(Exception, match="minimum"):
        _with_ensemble({"members": 1})  # the schema: one member has no spread
    with pytest.raises(ConfigError, match="analysis.n_template_events"):
        parse_settings({**_with_ensemble({"members": 2}), "analysis": {"n_template_events": "0x"}})


def test_bootstrap_multiplicities_are_poisson_one_and_seeded():
    from flowsim.runs import bootstrap_multiplicities

    a, b = bootstrap_multiplicities(200_000, 3), bootstrap_multiplicities(200_000, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, bootstrap_multiplicities(200_000, 4))
    # Poisson(1): mean 1, variance 1, P(0) = 1/e, within a few standard errors
    assert abs(a.mean() - 1) < 4 * np.sqrt(1 / a.size) and abs(a.var() - 1) < 0.02
    assert abs(np.mean(a == 0) - np.exp(-1)) < 4 * np.sqrt(np.exp(-1) * (1 - np.exp(-1)) / a.size)


def test_a_bayesian_runs_ensemble_may_be_draws_of_its_weights():
    config = _with_ensemble({"members": 3, "weight_draws": True})
    config["flows"]["small"]["params"]["bayesian"] = {}
    settings = parse_settings(config)
    draws = ("small.draw1", "small.draw2", "small.draw3")
    assert settings.ensembles["small"] == draws == tuple(settings.member_runs)
    assert [settings.weight_draw(d) for d in draws] == [1, 2, 3] and settings.weight_draw("small") is None
    assert {settings.trained_run(d) for d in draws} == {"small"} and settings.trained_run("other") == "other"
    with pytest.raises(ConfigError, match=r"flows\.small\.ensemble\.weight_draws.*params\.bayesian"):
        parse_settings(_with_ensemble({"members": 3, "weight_draws": True}))
    config["flows"]["small"]["ensemble"]["bootstrap"] = True
    with pytest.raises(ConfigError, match=r"flows\.small\.ensemble\.bootstrap"):
        parse_settings(config)


def test_worth_defaults_of_the_schema_and_the_typed_settings_agree():
    from flowsim.worth import WorthSettings

    defaults = _schema_defaults(SCHEMA["properties"]["worth"])
    typed = WorthSettings()
    assert defaults.pop("truth") == "auto" and typed.truth == "toy"  # auto is the toy on the toy source
    assert defaults.pop("coverage") is None and typed.coverage is None
    assert defaults == {k: getattr(typed, k) for k in defaults}
    assert parse_settings(_validated()).worth == typed


def test_coverage_replicas_are_bootstrap_ensembles_of_the_run_with_its_overrides():
    config = _validated()
    config["worth"]["coverage"] = {"run": "maf", "replicas": 3, "members": 2, "params": {"hidden": 8},
                                   "training": {"max_epochs": 2}}  # fmt: skip
    settings = parse_settings(config)
    coverage = settings.worth.coverage
    assert coverage.names == ["coverage.r001", "coverage.r002", "coverage.r003"]
    members = coverage.template_runs["coverage.r002"]
    assert members == ("coverage.r002.member1", "coverage.r002.member2")
    spec = settings.run("coverage.r002.member2")
    assert spec.model == "maf" and spec.params["hidden"] == 8 and spec.params["blocks"] == 5
    assert spec.training.max_epochs == 2 and spec.bootstrap
    assert spec.training.seed == settings.run("maf").training.seed + 2
    assert settings.replica_of("coverage.r002.member1") == 2 and settings.replica_of("maf") is None
    assert "coverage.r003.member2" in settings.all_runs and "coverage.r003" not in settings.all_runs
    single = parse_settings({**config, "worth": {**config["worth"], "coverage": {"run": "glow", "members": 1}}})
    assert single.worth.coverage.template_runs["coverage.r001"] == ("coverage.r001",)


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"data": {"source": "path", "path": "x.csv"}, "worth": {"truth": "toy"}}, "worth.truth",
         "data.source is 'path'"),
        ({"worth": {"truth_seed": 20240911}}, "worth.truth_seed", "is data.toy.seed"),
        ({"worth": {"coverage": {"run": "nope"}}}, "worth.coverage.run", "no such run 'nope'"),
        ({"data": {"source": "path", "path": "x.csv"}, "worth": {"coverage": {"run": "maf"}}}, "worth.coverage",
         "toy generator"),
        ({"worth": {"coverage": {"run": "maf", "training": {"lr": -1.0}}}}, "worth.coverage", "lr"),
    ],
)  # fmt: skip
def test_worth_settings_that_cannot_work_are_refused_by_key(change, key, problem, tmp_path):
    config = _validated()
    (tmp_path / "x.csv").write_text("0" + ",1" * 28 + "\n")
    if "data" in change:
        change = {**change, "data": {**change["data"], "path": str(tmp_path / "x.csv")}}
    for section, value in change.items():
        config[section] = {**config[section], **value}
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'") + ".*" + re.escape(problem)):
        parse_settings(config)


def test_feedback_defaults_of_the_schema_and_the_typed_settings_agree():
    from flowsim.discflow import FeedbackSettings

    feedback = SCHEMA["properties"]["flows"]["additionalProperties"]["properties"]["feedback"]
    assert FeedbackSettings(**_schema_defaults(feedback)) == FeedbackSettings()
    assert set(feedback["properties"]) == set(FeedbackSettings.__dataclass_fields__)


def test_a_runs_feedback_is_typed_carried_by_its_params_and_its_members_and_named_in_errors():
    from flowsim.discflow import FeedbackSettings

    config = _with_ensemble({"members": 2})
    config["flows"]["small"]["feedback"] = {"rounds": 2}
    validate(config, str(SCHEMA_PATH))  # fills the other settings' defaults
    settings = parse_settings(config)
    expected = FeedbackSettings(rounds=2)
    assert settings.run("small").feedback == expected == settings.run("small.member1").feedback
    for name in ("small", "small.member2"):
        spec = settings.run(name)
        assert RunSpec.from_training_params(name, spec.training_params()).feedback == expected
    # the runs without it: no feedback, and their params as they were
    assert settings.run("other").feedback is None and "feedback" not in settings.run("other").training_params()
    config["flows"]["other"]["feedback"] = None
    assert parse_settings(config).run("other").feedback is None
    with pytest.raises(Exception, match="maximum"):
        validate({**config, "flows": {"x": {"model": "maf", "feedback": {"alpha": 1.5}}}}, str(SCHEMA_PATH))
    for bad, key in (({"alpha": 0.0}, "alpha"), ({"rounds": 0}, "rounds"), ({"clasifier": "mlp"}, "clasifier")):
        config["flows"]["other"]["feedback"] = bad  # past the schema, as a study or a script may
        with pytest.raises(ConfigError, match=rf"'flows\.other\.feedback\.{key}'"):
            parse_settings(config)
