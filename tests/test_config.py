"""Configuration: the schema refuses wrong keys and types by name; defaults are filled in."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from flowsim.config import check_config, merge_config
from flowsim.data.higgs import DEFAULT_FEATURES
from flowsim.errors import ConfigError
from flowsim.settings import parse_settings

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_default_config_is_valid_and_uses_the_papers_features():
    config = default_config()
    validate(config, SCHEMA)
    check_config(config)
    assert tuple(config["features"]) == DEFAULT_FEATURES


def test_schema_fills_defaults_of_missing_sections():
    config = {}
    validate(config, SCHEMA)
    assert config["data"]["source"] == "toy"
    assert config["data"]["toy"]["n_events"] > 0
    assert config["splits"] == {
        "seed": 42, "ml_fraction": 0.5, "train_fraction": 0.8, "test_a_fraction": 0.5,
    }  # fmt: skip
    assert config["scaling"]["method"] == "gauss_rank"
    assert config["symmetry"]["flip_signs"] == []
    assert tuple(config["features"]) == DEFAULT_FEATURES


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda c: c["data"].update(sourse="toy"), ["sourse", "data"]),
        (lambda c: c["data"].update(source="ftp"), ["ftp", "source"]),
        (lambda c: c["data"]["toy"].update(n_events="many"), ["many", "n_events"]),
        (lambda c: c["splits"].update(ml_fraction=1.5), ["1.5", "ml_fraction"]),
        (lambda c: c.update(features=["lepton_pt", "m h"]), ["m h", "features"]),
        (lambda c: c["scaling"].update(method="minmax"), ["minmax", "method"]),
        (lambda c: c.update(flowz={}), ["flowz"]),
        (lambda c: c["analysis"].update(cut=1.5), ["1.5", "cut"]),
        (lambda c: c["analysis"]["lumi_fb"].update(min=0), ["0", "min"]),
        (lambda c: c["analysis"].update(n_bins=0), ["0", "n_bins"]),
    ],
    ids=["unknown-key", "bad-enum", "bad-type", "out-of-range", "unknown-feature",
         "bad-method", "unknown-section", "cut-above-1", "lumi-zero", "no-bins"],
)  # fmt: skip
def test_wrong_key_or_type_names_the_key(edit, names):
    config = default_config()
    edit(config)
    with pytest.raises(WorkflowError) as info:
        validate(copy.deepcopy(config), SCHEMA)
    text = str(info.value) + "".join(str(a) for a in info.value.args)
    for name in names:
        assert name in text


def test_path_source_needs_an_existing_csv(tmp_path):
    config = default_config()
    config["data"]["source"] = "path"
    with pytest.raises(ConfigError, match="'data.path': required when data.source is 'path'"):
        check_config(config)
    config["data"]["path"] = str(tmp_path / "missing.csv.gz")
    with pytest.raises(ConfigError, match="'data.path': .*missing.csv.gz is not a file"):
        check_config(config)
    (tmp_path / "h.txt").write_text("0")
    config["data"]["path"] = str(tmp_path / "h.txt")
    with pytest.raises(ConfigError, match=r"must end in \.csv or \.csv\.gz"):
        check_config(config)


def test_the_schemas_enums_are_the_codes_lists():
    """The schema spells out its choices for the reader; these are the lists the code acts on."""
    from flowsim.data.scaling import METHODS
    from flowsim.flows import FLOWS

    schema = yaml.safe_load(Path(SCHEMA).read_text())["properties"]
    assert schema["flows"]["additionalProperties"]["properties"]["model"]["enum"] == list(FLOWS)
    assert schema["scaling"]["properties"]["method"]["enum"] == list(METHODS)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (["lepton_pt", "m_h"], r"'features\[1\]': 'm_h': the HIGGS sources have the columns"),
        (["lepton_pt", {"name": "j", "expression": "jet1_pt * 2"}], "features defined by expressions need data.source"),
        (["lepton_pt", "lepton_pt"], r"'features': listed more than once: \['lepton_pt'\]"),
        (["label", "met"], r"'features\[0\]': 'label' is the name of the split files' own branch"),
    ],
)
def test_higgs_sources_take_unique_higgs_columns(features, message):
    config = default_config()
    config["features"] = features
    config["symmetry"]["flip_signs"] = []
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_root_source_checks_files_and_expressions(tmp_path):
    config = default_config()
    config["symmetry"]["flip_signs"] = []
    config["analysis"]["observables"] = {"score": None}
    config["data"]["source"] = "root"
    with pytest.raises(ConfigError, match="'data.root.background': required when data.source is 'root'"):
        check_config(config)
    (tmp_path / "b.root").write_bytes(b"")
    config["data"]["root"] = {
        "background": {"files": [str(tmp_path / "b.root")], "weight": "w *"},
        "signal": {"files": [str(tmp_path / "s_*.root")]},
    }
    config["features"] = ["MET_pt", {"name": "j1", "expression": "Jet_pt[:, 0]"}]
    with pytest.raises(ConfigError, match=r"'data.root.background.weight': 'w \*' is not a valid expression"):
        check_config(config)
    config["data"]["root"]["background"]["weight"] = "w * 2"
    with pytest.raises(ConfigError, match=r"'data.root.signal.files': '.*s_\*.root' matches no file"):
        check_config(config)
    (tmp_path / "s_1.root").write_bytes(b"")
    config["features"][1]["expression"] = "Jet_pt.__len__()"
    with pytest.raises(ConfigError, match=r"'features\[1\].expression': .* uses the attribute '__len__'"):
        check_config(config)
    config["features"][1]["expression"] = "Jet_pt[:, 0]"
    check_config(config)
    config["data"]["max_rows"] = 100
    with pytest.raises(ConfigError, match="'data.max_rows': reads the first rows of a HIGGS file"):
        check_config(config)


def test_symmetry_flips_only_features():
    config = default_config()
    validate(config, SCHEMA)
    assert config["symmetry"]["flip_signs"] == [f for f in config["features"] if f.endswith("_eta")]
    config["features"] = [f for f in config["features"] if f != "jet4_eta"]
    with pytest.raises(ConfigError, match=r"'symmetry.flip_signs': 'jet4_eta' is not among the features"):
        check_config(config)


# config/paper.yaml stands alone (test_paper_config); config/fidelity.yaml needs a data file and zuko
# (tests/test_fidelity_table.py); config/ntuple.yaml needs its ntuples (tests/workflow/test_ntuple_workflow.py)
OVERLAYS = sorted(
    p for p in (ROOT / "config").glob("*.yaml")
    if p.name not in ("config.yaml", "paper.yaml", "fidelity.yaml", "ntuple.yaml")
)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda path: path.stem)
def test_config_overlays_are_valid_configs(overlay, tmp_path):
    """The overlays of config/ merge over the default (--configfile): a typo must fail here, not on a GPU."""
    assert OVERLAYS, "config/ holds no overlay"
    config = merge_config(default_config(), yaml.safe_load(overlay.read_text()))
    if config["data"]["source"] == "path" and not config["data"]["path"]:
        # a real-data overlay names its file on the command line (--config data='{path: ...}')
        config["data"]["path"] = str(tmp_path / "higgs.csv")
        (tmp_path / "higgs.csv").write_text("0" + ",1" * 28 + "\n")
    validate(config, SCHEMA)
    parse_settings(config)


@pytest.mark.parametrize(
    "overlay",
    [
        *(pytest.param(yaml.safe_load(path.read_text()), id=path.stem) for path in OVERLAYS),
        pytest.param({"flows": {"rqs": {"params": {"bins": 16}, "training": {"max_epochs": 3}}},
                      "features": ["m_bb"]}, id="one-parameter-of-a-run"),
        pytest.param({"analysis": {"lumi_fb": [1.0, 2.0]}, "c2st": 3}, id="values-over-mappings"),
    ],
)  # fmt: skip
def test_merge_config_merges_as_snakemake_merges_a_second_configfile(overlay):
    base = default_config()
    untouched, expected = copy.deepcopy(base), copy.deepcopy(base)
    update_config(expected, overlay)
    assert merge_config(base, overlay) == expected
    assert base == untouched


def test_merged_config_shares_no_mutable_state_with_its_inputs():
    base, overlay = {"a": {"b": [1, 2]}}, {"c": {"d": [3]}}
    merged = merge_config(base, overlay)
    merged["a"]["b"].append(9)
    merged["c"]["d"].append(9)
    assert base == {"a": {"b": [1, 2]}} and overlay == {"c": {"d": [3]}}


def test_paper_config_is_valid():
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    validate(config, SCHEMA)
    settings = parse_settings(config)
    assert config["flows"]["mademog"]["params"]["hidden"] == 2048
    assert {run: len(members) for run, members in settings.ensembles.items()} == {
        "glow": 10, "maf": 10, "mafmademog": 10, "rqs": 10, "nsf_coupling": 10, "mademog": 5,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["flows"]["glow"]["params"].update(hiden=3),
         "'flows.glow.params.hiden': not a hyperparameter of glow"),
        (lambda c: c["flows"]["mademog"]["params"].update(bins=8),
         "'flows.mademog.params.bins': not a hyperparameter of mademog"),
        (lambda c: c["flows"]["maf"]["params"].update(activation="swish"),
         "'flows.maf.params': activation must be one of"),
        (lambda c: c["flows"]["rqs"]["params"].update(bins=0),
         "'flows.rqs.params': .*bins"),
        (lambda c: c["flows"]["glow"]["params"].update(hidden=100_000),
         "'flows.glow.params': hidden = 100000 is not an integer between 0 and 65536, beyond what a model file"),
    ],
    ids=["typo", "wrong-family", "bad-value", "bad-size", "beyond-model-files"],
)  # fmt: skip
def test_flow_hyperparameters_are_checked_by_name(edit, message):
    config = default_config()
    validate(config, SCHEMA)
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_run_training_overrides_the_shared_settings():
    from flowsim.runs import run_spec

    config = default_config()
    config["flows"]["maf"]["training"] = {"lr": 5e-4}
    validate(config, SCHEMA)
    spec = run_spec(config, "maf")
    assert spec.training.lr == 5e-4
    assert spec.training.batch_size == config["training"]["batch_size"]
    assert run_spec(config, "glow").training.lr == config["training"]["lr"]


def test_shared_training_settings_serve_models_outside_the_config():
    from flowsim.runs import training_settings

    config = default_config()
    config["flows"]["maf"]["training"] = {"lr": 5e-4}
    shared = training_settings(config, None)
    assert shared["lr"] == config["training"]["lr"] != 5e-4
    assert shared["batch_size"] == config["training"]["batch_size"]
    assert shared["average_epochs"] == 0.0  # TrainConfig's default fills what the config leaves out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["training"].update(max_epoch=3), "training.max_epoch"),
        (lambda c: c["flows"]["rqs"]["training"].update(average_epoch=3.0), "flows.rqs.training.average_epoch"),
    ],
)
def test_unknown_training_settings_are_named(edit, message):
    from flowsim.runs import run_spec

    config = default_config()
    edit(config)
    with pytest.raises(ConfigError, match=re.escape(f"config key '{message}'") + ".*not a training setting"):
        run_spec(config, "rqs")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["analysis"]["observables"].update(m_xx=[0, 1]), "analysis.observables.m_xx"),
        (lambda c: c["analysis"].update(alphas=[0.01, 0.010000000001]), "analysis.alphas"),
        (lambda c: c["analysis"]["observables"].update(m_bb=[3.0, 0.0]), "analysis.observables.m_bb"),
        (lambda c: c["analysis"].update(lumi_fb={"min": 100, "max": 10, "n": 3}), "analysis.lumi_fb"),
        (lambda c: c["analysis"]["classifier"].update(hidden=0), "analysis.classifier"),
    ],
)
def test_analysis_settings_are_checked_by_name(edit, message):
    config = default_config()
    edit(config)
    with pytest.raises(ConfigError, match=re.escape(f"config key '{message}")):
        check_config(config)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["sampling"].update(n_generated="0x"), "sampling.n_generated': '0x' asks for no events"),
        (lambda c: c["sampling"].update(n_generated="0.0x"), "sampling.n_generated': '0.0x' asks for no events"),
        (lambda c: c["flows"]["maf"].update(n_generated="0x"), "flows.maf.n_generated': '0x' asks for no events"),
    ],
)
def test_asking_for_no_generated_events_is_a_config_error(edit, message):
    config = default_config()
    edit(config)
    validate(config, SCHEMA)  # the schema's pattern takes it; the check must not
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(config)


def test_any_positive_multiple_generates_at_least_one_event():
    from flowsim.runs import n_generated_events

    assert n_generated_events("0.0001x", 100) == 1
    with pytest.raises(ConfigError, match="asks for no events"):
        n_generated_events("0x", 100)
