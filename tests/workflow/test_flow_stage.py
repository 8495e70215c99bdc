"""The flow stage run by Snakemake: two tiny runs trained and sampled end to end."""

from __future__ import annotations

import numpy as np
import torch

from flowsim import io
from flowsim.flows.persist import load_flow

RUNS = ("tiny_maf", "tiny_mademog")


def test_each_run_has_a_model_history_plot_and_sample(tiny_run):
    features = io.read_json(tiny_run / "results/data/manifest.json")  # exists: data stage ran
    assert features
    n_test = io.root_entries(tiny_run / "results/data/bkg_test_a.root")
    for run in RUNS:
        folder = tiny_run / "results/flows" / run
        flow, info = load_flow(folder / "model.pt")
        assert info["metadata"]["run"] == run
        history = io.read_tsv(folder / "history.tsv")
        assert 1 <= len(history) <= 3
        assert float(history[-1]["val_loss"]) == float(history[-1]["val_loss"])  # not NaN
        assert (folder / "loss.png").stat().st_size > 10_000
        assert not (folder / "checkpoint.pt").exists()
        events = io.read_events(folder / "generated.root")
        assert list(events) == info["features"]
        timing = io.read_tsv(folder / "sampling.tsv")[0]
        assert int(timing["n_requested"]) == n_test  # "1x" the MC test_a size
        assert len(events[info["features"][0]]) == int(timing["n_written"])
        assert int(timing["n_written"]) + int(timing["n_nonfinite"]) == n_test
        assert float(timing["us_per_event"]) > 0


def test_generated_events_are_in_data_units(tiny_run):
    mc = io.read_matrix(tiny_run / "results/data/bkg_test_a.root", ["lepton_pt", "m_lv"])
    gen = io.read_matrix(tiny_run / "results/flows/tiny_maf/generated.root", ["lepton_pt", "m_lv"])
    # medians of momenta and masses in file units are O(1) for MC and generated alike
    assert np.allclose(np.median(gen, axis=0), np.median(mc, axis=0), rtol=0.5)


def test_model_file_loads_without_unpickling(tiny_run):
    payload = torch.load(tiny_run / "results/flows/tiny_maf/model.pt", weights_only=True)
    assert payload["model"] == "maf" and payload["params"]["blocks"] == 2


def test_training_on_cpu_is_reproducible(tiny_run, tmp_path):
    """Retraining a run with the same seed gives bit-identical weights."""
    from tests.workflow.runner import TINY_CONFIG, snakemake

    import shutil

    shutil.copytree(tiny_run / "results/data", tmp_path / "results/data")
    snakemake(tmp_path, "results/flows/tiny_maf/model.pt", "--configfile", str(TINY_CONFIG))
    a = torch.load(tiny_run / "results/flows/tiny_maf/model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "results/flows/tiny_maf/model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
