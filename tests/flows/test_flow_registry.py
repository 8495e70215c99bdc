"""The registry: names, hyperparameters and error messages."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

from flowsim.flows import FLOWS, build_flow, hyperparameters
from flowsim.flows.registry import PEERS
from flowsim.flows.transforms import StackedFlow

EXPECTED = {
    "glow", "maf", "mademog", "mafmademog", "rqs", "nsf_coupling", "cfm", "zuko_maf", "zuko_nsf", "zuko_nsf_coupling",
}  # fmt: skip
BAD_VALUES = {
    "blocks": 0,
    "hidden": -4,
    "residual_blocks": 1.5,
    "layers": 0,
    "mixtures": 0,
    "bins": 1,
    "tail_bound": -1.0,
    "activation": "swish",
    "dropout": 1.0,
    "permutation": "shuffle",
    "batch_norm": "yes",
    "scale_bound": 0.0,
    "min_scale": -1.0,
    "time_features": -1,
    "sigma_min": 1.0,
    "solver": "euler",
    "steps": 0,
    "rtol": 0.0,
    "divergence": "trace",
    "context": -1,
}


def test_registry_keys():
    assert set(FLOWS) == EXPECTED


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="'nice'") as err:
        build_flow("nice", 3)
    for name in EXPECTED:
        assert name in str(err.value)


@pytest.mark.parametrize("model", list(FLOWS))
def test_unknown_hyperparameter_is_named(model):
    with pytest.raises(ValueError, match="'learning_rate'"):
        build_flow(model, 3, learning_rate=1e-3)


def test_hyperparameter_not_of_this_family_is_named():
    with pytest.raises(ValueError, match="'bins'.*'mademog'"):
        build_flow("mademog", 3, bins=8)


@pytest.mark.parametrize("model", list(FLOWS))
def test_invalid_values_name_the_key(model):
    valid = hyperparameters(model)
    checked = 0
    for key, value in BAD_VALUES.items():
        if key in valid:
            with pytest.raises(ValueError, match=key):
                build_flow(model, 3, **{key: value})
            checked += 1
    assert checked >= min(4, len(valid))
    with pytest.raises(ValueError, match="n_features"):
        build_flow(model, 0)


@pytest.mark.parametrize("model", list(FLOWS))
def test_defaults_build_an_18_feature_model(model):
    hyper = hyperparameters(model)
    peer = model in PEERS
    shared = {"hidden", "layers", "blocks"} if peer else {"hidden", "residual_blocks", "activation", "dropout"}
    assert shared <= set(hyper)
    flow = build_flow(model, 18)
    assert flow.log_prob(torch.randn(3, 18)).shape == (3,)


def test_documented_defaults():
    assert hyperparameters("rqs")["bins"] == 32 and hyperparameters("rqs")["tail_bound"] == 5.0
    assert hyperparameters("mademog")["activation"] == "gelu"
    assert hyperparameters("glow")["permutation"] == "lu" and hyperparameters("glow")["batch_norm"]


def test_a_family_overrides_its_blocks_defaults():
    # the coupling spline's own default is 8 bins; the family, like the paper's RQS, uses 32
    assert hyperparameters("nsf_coupling")["bins"] == 32
    assert build_flow("nsf_coupling", 4, blocks=1).transforms[-1].bins == 32


@pytest.mark.parametrize("model", [m for m in FLOWS if issubclass(FLOWS[m], StackedFlow)])
def test_every_hyperparameter_of_a_stacked_family_is_documented(model):
    arguments = FLOWS[model].__doc__.split("Arguments:")[1]
    for name in hyperparameters(model):
        assert f"\n        {name}:" in arguments, f"{FLOWS[model].__name__} does not document {name!r}"


def test_stacked_layouts_data_to_latent():
    """Autoregressive flows mix between blocks, coupling flows before every block."""
    names = lambda flow: [type(layer).__name__ for layer in flow.transforms]  # noqa: E731
    maf = build_flow("maf", 3, blocks=3, hidden=8)
    assert names(maf) == ["MaskedAffineTransform", "PermutationTransform"] * 2 + ["MaskedAffineTransform"]
    glow = build_flow("glow", 4, blocks=2, hidden=8)
    assert names(glow) == ["BatchNormTransform", "LULinearTransform", "AffineCouplingTransform"] * 2
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) 'mixtures' for Glow; valid: blocks, hidden"):
        FLOWS["glow"](4, mixtures=3)


MODULES = ["base", "nets", "made", "splines", "transforms", "glow", "maf", "mademog", "rqs",
           "nsf_coupling", "registry"]  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"flowsim.flows.{name}")
    assert module.__doc__ and sorted(module.__all__) == list(module.__all__)
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
