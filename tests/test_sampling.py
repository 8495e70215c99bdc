"""Sampling to ROOT: chunking, inverse scaling, non-finite events counted, model files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from flowsim import io
from flowsim.data.scaling import fit_scaler
from flowsim.flows import build_flow
from flowsim.flows.persist import load_flow, save_flow
from flowsim.runs import n_generated_events
from flowsim.sampling import NonFiniteSampleError, generate_to_root

FEATURES = ("a", "b")


@pytest.fixture
def scaler():
    rng = np.random.default_rng(0)
    x = np.stack([rng.exponential(1.0, 5000), rng.normal(0, 2, 5000)], 1)
    return fit_scaler(x, FEATURES, "gauss_rank")


class ShiftedNormal(nn.Module):
    """A stand-in density: N(0, I) samples with a few planted NaNs."""

    def __init__(self, nan_every: int = 0):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.nan_every = nan_every

    def sample(self, n, generator=None):
        z = torch.randn(n, 2, generator=generator)
        if self.nan_every:
            z[:: self.nan_every, 1] = float("nan")
        return z


def test_chunks_add_up_and_values_are_unscaled(tmp_path, scaler):
    path = tmp_path / "gen.root"
    report = generate_to_root(ShiftedNormal(), scaler, 2500, path, chunk_size=1000, seed=1)
    events = io.read_events(path)
    assert report.n_written == 2500 == len(events["a"]) and report.n_nonfinite == 0
    # Φ(z) through the fitted CDF: the generated medians are the training medians
    assert np.median(events["a"]) == pytest.approx(np.log(2), rel=0.1)
    assert np.std(events["b"]) == pytest.approx(2.0, rel=0.1)


def test_same_seed_same_events_whatever_the_chunk_size_of_one_run(tmp_path, scaler):
    a = generate_to_root(ShiftedNormal(), scaler, 1000, tmp_path / "a.root", chunk_size=300, seed=5)
    b = generate_to_root(ShiftedNormal(), scaler, 1000, tmp_path / "b.root", chunk_size=300, seed=5)
    assert a.n_written == b.n_written
    np.testing.assert_array_equal(io.read_events(tmp_path / "a.root")["a"], io.read_events(tmp_path / "b.root")["a"])


def test_nonfinite_events_are_counted_not_written(tmp_path, scaler, caplog):
    report = generate_to_root(
        ShiftedNormal(nan_every=10), scaler, 1000, tmp_path / "g.root", chunk_size=250,
        max_nonfinite_fraction=0.1,
    )  # fmt: skip
    assert report.n_nonfinite == 100 and report.n_written == 900
    assert report.as_row()["nonfinite_fraction"] == 0.1
    assert "100 of 1000 generated events (a fraction of 0.1) had a non-finite value" in caplog.text
    assert io.root_entries(tmp_path / "g.root") == 900


def test_too_many_nonfinite_events_fail_naming_the_run_count_and_fraction(tmp_path, scaler):
    # 1 in 500 is non-finite: twice the default limit of 1e-3; found in the first chunk already
    with pytest.raises(
        NonFiniteSampleError,
        match=r"run r1: 2 of 10000 generated events are non-finite \(found in the first 1000\), "
        r"a fraction of at least 0.0002, above sampling.max_nonfinite_fraction = 0.0001",
    ):
        generate_to_root(
            ShiftedNormal(nan_every=500), scaler, 10_000, tmp_path / "g.root", chunk_size=1000,
            max_nonfinite_fraction=1e-4, name="run r1",
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # neither the sample nor its temporary file
    # at the limit it passes: 20 of 10000 is 2e-3
    report = generate_to_root(
        ShiftedNormal(nan_every=500), scaler, 10_000, tmp_path / "g.root", chunk_size=1000,
        max_nonfinite_fraction=2e-3,
    )  # fmt: skip
    assert report.n_nonfinite == 20


def test_an_empty_sample_is_never_written(tmp_path, scaler):
    with pytest.raises(NonFiniteSampleError, match="run r2: none of the 100 generated events is finite"):
        generate_to_root(
            ShiftedNormal(nan_every=1), scaler, 100, tmp_path / "g.root", chunk_size=30,
            max_nonfinite_fraction=1.0, name="run r2",
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_n_generated_absolute_or_multiple():
    assert n_generated_events(1234, 500) == 1234
    assert n_generated_events("2x", 500) == 1000
    assert n_generated_events("0.5x", 333) == 167


def test_saved_flow_reloads_identically_without_pickle(tmp_path):
    torch.manual_seed(0)
    flow = build_flow("maf", 2, blocks=2, hidden=8)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_flow(tmp_path / "m.pt", flow, model="maf", params={"blocks": 2, "hidden": 8}, features=FEATURES,
              metadata={"val_nll": 1.5})  # fmt: skip
    loaded, info = load_flow(tmp_path / "m.pt")
    x = torch.randn(10, 2)
    assert torch.equal(flow.eval().log_prob(x), loaded.log_prob(x))
    assert info["features"] == list(FEATURES) and info["metadata"]["val_nll"] == 1.5
