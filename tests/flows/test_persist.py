"""Model files are data: loading checks sizes and shapes before it allocates anything."""

from __future__ import annotations

import pytest
import torch

import flowsim.flows.persist as persist
from flowsim.analysis.signal_classifier import ClassifierSettings, load_classifier, save_classifier
from flowsim.classifier import MLPClassifier
from flowsim.flows import FLOWS, build_flow
from flowsim.flows.persist import load_flow, save_flow
from flowsim.flows.registry import PEERS
from flowsim.model_files import ModelFileError, read_model_file
from tests.flows.conftest import tiny_hyper

FEATURES = ["a", "b", "c"]


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.pt"
    params = {"blocks": 2, "hidden": 8, "residual_blocks": 1}
    save_flow(path, build_flow("maf", 3, **params), model="maf", params=params, features=FEATURES)
    return path


def _tampered(path, **fields):
    payload = read_model_file(path)
    for key, value in fields.items():
        target = payload["params"] if key in payload["params"] else payload
        target[key] = value
    torch.save(payload, path)
    return path


@pytest.fixture
def builds(monkeypatch):
    """The default device of every flow build during the test."""
    seen = []
    real = persist.build_flow

    def spy(*args, **kwargs):
        seen.append(torch.get_default_device().type)
        return real(*args, **kwargs)

    monkeypatch.setattr(persist, "build_flow", spy)
    return seen


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("hidden", 100_000_000, "hidden = 100000000 is not an integer between 0 and 65536"),
        ("blocks", 10**9, "blocks = 1000000000 is not an integer between 0 and 256"),
        ("hidden", 8.0, "hidden = 8.0 is not an integer"),
        ("hidden", True, "hidden = True is not an integer"),
        ("residual_blocks", -1, "residual_blocks = -1 is not an integer"),
        ("n_features", 10**6, "n_features = 1000000 is not an integer"),
    ],
)
def test_sizes_beyond_sane_bounds_are_refused_before_any_build(model_file, builds, field, value, problem):
    with pytest.raises(ModelFileError, match=rf"m\.pt: {problem}"):
        load_flow(_tampered(model_file, **{field: value}))
    assert builds == []


def test_too_many_layers_are_refused_before_any_build(model_file, builds):
    with pytest.raises(ModelFileError, match=r"blocks x \(residual_blocks \+ 1\) = 2100 layers, more than 1024"):
        load_flow(_tampered(model_file, blocks=100, residual_blocks=20))
    assert builds == []


def test_a_file_claiming_a_larger_model_than_its_weights_builds_only_shapes(model_file, builds):
    # within the bounds, but 4096 wide: the real flow would take ~1 GB; its shapes take nothing
    expected = r"weight '.*' has shape \(\d+, \d+\) in the file, but the architecture it names has \(\d*4096"
    with pytest.raises(ModelFileError, match=expected):
        load_flow(_tampered(model_file, hidden=4096))
    assert builds == ["meta"]


def test_other_inconsistencies_are_named(model_file):
    payload = read_model_file(model_file)
    payload["state_dict"]["extra.weight"] = torch.zeros(2)
    torch.save(payload, model_file)
    with pytest.raises(ModelFileError, match=r"do not fit the architecture .*unexpected: \['extra.weight'\]"):
        load_flow(model_file)
    del payload["state_dict"]["extra.weight"]
    payload["n_features"] = 4
    torch.save(payload, model_file)
    with pytest.raises(ModelFileError, match="n_features = 4 but 3 features are named"):
        load_flow(model_file)
    payload["n_features"], payload["model"] = 3, "nope"
    torch.save(payload, model_file)
    with pytest.raises(ModelFileError, match="cannot build the architecture it names: unknown flow model 'nope'"):
        load_flow(model_file)


def test_an_untampered_file_loads_and_builds_once_for_real(model_file, builds):
    flow, info = load_flow(model_file)
    assert builds == ["meta", "cpu"] and info["features"] == FEATURES
    assert flow.log_prob(torch.randn(5, 3)).shape == (5,)


@pytest.mark.parametrize("model", sorted(set(FLOWS) - set(PEERS)))
def test_every_family_builds_its_shapes_on_the_meta_device(model):
    """flowsim's families; zuko's masks do not build on meta (their files are sized instead)."""
    real = build_flow(model, 4, **tiny_hyper(model))
    with torch.device("meta"):
        skeleton = build_flow(model, 4, **tiny_hyper(model))
    assert {k: v.shape for k, v in skeleton.state_dict().items()} == {k: v.shape for k, v in real.state_dict().items()}


def test_the_classifier_file_is_checked_the_same_way(tmp_path):
    settings = ClassifierSettings.from_mapping({"hidden": 8, "residual_blocks": 1})
    save_classifier(tmp_path / "c.pt", MLPClassifier(3, hidden=8, residual_blocks=1), settings, features=FEATURES)
    load_classifier(tmp_path / "c.pt")
    payload = read_model_file(tmp_path / "c.pt")
    payload["params"]["hidden"] = 20_000
    torch.save(payload, tmp_path / "c.pt")
    with pytest.raises(ModelFileError, match=r"c\.pt: weight 'net.0.weight' has shape \(8, 3\)"):
        load_classifier(tmp_path / "c.pt")
