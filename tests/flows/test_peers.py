"""zuko's flows as registry entries: the density interface, model files, and a clear error
where zuko is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from snakemake.utils import validate

from flowsim.config import check_config
from flowsim.errors import ConfigError
from flowsim.flows import FLOWS, build_flow, hyperparameters
from flowsim.flows.peers import MissingPackageError
from flowsim.flows.persist import load_flow, save_flow
from flowsim.flows.registry import PEERS
from flowsim.model_files import ModelFileError

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"blocks": 2, "hidden": 16, "layers": 2}


def test_the_peers_are_registry_entries_with_flowsims_size_names():
    assert set(PEERS) <= set(FLOWS)
    for peer in PEERS:
        assert {"blocks", "hidden", "layers"} <= set(hyperparameters(peer))
    assert hyperparameters("zuko_nsf")["bins"] == 8


def test_without_zuko_building_a_peer_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "zuko", None)  # import zuko now raises ImportError
    with pytest.raises(MissingPackageError, match=r"pip install 'flowsim\[bench\]'"):
        build_flow("zuko_maf", 3)
    build_flow("maf", 3, blocks=1, hidden=8)  # flowsim's own families need nothing


def test_without_zuko_the_config_check_names_the_run(monkeypatch):
    monkeypatch.setitem(sys.modules, "zuko", None)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["flows"]["peer"] = {"model": "zuko_nsf", "params": {"blocks": 2}}
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    with pytest.raises(ConfigError, match=r"flows\.peer\.model.*zuko_nsf: .*pip install 'flowsim\[bench\]'"):
        check_config(config)


zuko = pytest.importorskip("zuko")


@pytest.mark.parametrize("peer", PEERS)
def test_a_peer_density_integrates_to_one(peer):
    """∫ p(x) dx over a grid wide enough for the untrained flow's mass: 1 within the grid's error."""
    torch.manual_seed(0)
    flow = build_flow(peer, 2, **SMALL).double()
    edges = torch.linspace(-9, 9, 361, dtype=torch.float64)
    centres = 0.5 * (edges[1:] + edges[:-1])
    grid = torch.cartesian_prod(centres, centres)
    with torch.no_grad():
        density = flow.log_prob(grid).exp()
    assert float(density.sum() * (edges[1] - edges[0]) ** 2) == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("peer", PEERS)
def test_a_peer_samples_reproducibly_and_leaves_the_global_state(peer):
    torch.manual_seed(1)
    flow = build_flow(peer, 3, **SMALL)
    state = torch.random.get_rng_state()
    a = flow.sample(50, generator=torch.Generator().manual_seed(7))
    b = flow.sample(50, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.shape == (50, 3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not torch.equal(a, flow.sample(50, generator=torch.Generator().manual_seed(8)))


@pytest.mark.parametrize("peer", PEERS)
def test_a_peer_round_trips_through_a_model_file(tmp_path, peer):
    torch.manual_seed(2)
    flow = build_flow(peer, 3, **SMALL)
    with torch.no_grad():  # move the weights off their initial values
        for p in flow.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_flow(tmp_path / "m.pt", flow, model=peer, params=SMALL, features=["a", "b", "c"])
    loaded, info = load_flow(tmp_path / "m.pt")
    x = torch.randn(20, 3)
    np.testing.assert_array_equal(loaded.log_prob(x).detach(), flow.eval().log_prob(x).detach())
    assert info["model"] == peer


def test_a_peer_trains(tmp_path):
    """A few Adam steps lower the NLL of a shifted Gaussian: the gradients reach zuko's weights."""
    torch.manual_seed(3)
    flow = build_flow("zuko_nsf_coupling", 2, **SMALL)
    x = torch.randn(512, 2) * 0.5 + 2.0
    optimiser = torch.optim.Adam(flow.parameters(), lr=1e-2)
    before = -flow(x).mean().item()
    for _ in range(30):
        optimiser.zero_grad()
        loss = -flow(x).mean()
        loss.backward()
        optimiser.step()
    assert loss.item() < before - 0.5


@pytest.mark.parametrize("peer", PEERS)
def test_least_state_size_bounds_the_real_state(peer):
    sizes = ((3, SMALL), (18, {"blocks": 5, "hidden": 128, "layers": 2}), (5, {"blocks": 1, "hidden": 8, "layers": 1}))
    for n_features, hyper in sizes:
        flow = build_flow(peer, n_features, **hyper)
        held = sum(v.numel() for v in flow.state_dict().values())
        least = FLOWS[peer].least_state_size(n_features, **{**hyperparameters(peer), **hyper})
        assert 0.9 * held <= least <= held  # tight: the base distribution's buffers are all it leaves out


def test_a_peer_file_claiming_more_than_it_holds_is_refused_before_building(tmp_path, monkeypatch):
    flow = build_flow("zuko_maf", 3, **SMALL)
    save_flow(tmp_path / "m.pt", flow, model="zuko_maf", params={**SMALL, "hidden": 65536}, features=["a", "b", "c"])
    built = []
    monkeypatch.setattr(FLOWS["zuko_maf"], "__init__", lambda *a, **k: built.append(a))
    with pytest.raises(ModelFileError, match=r"ZukoMAF architecture needs at least \d+ numbers, the file holds 1688"):
        load_flow(tmp_path / "m.pt")
    assert not built
