"""The flow stage run by Snakemake: two tiny runs trained and sampled end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowsim import io
from flowsim.data.scaling import fit_scaler, load_scaler
from flowsim.flows.persist import load_flow
from flowsim.flows.symmetry import SignFlipMixture, signs_of, with_mirror_images
from flowsim.stages.flows import SampleFlowOutputs, TrainFlowOutputs, sample_flow

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


def test_model_file_holds_the_weights_of_the_best_validation_epoch(tiny_run):
    """tiny_maf validates a moving average of its weights, tiny_mademog its live weights: either
    way the file must hold exactly the weights whose validation NLL is the history's best."""
    scaler = load_scaler(tiny_run / "results/data/scaler.npz")
    val = io.read_matrix(tiny_run / "results/data/bkg_val.root", list(scaler.features))
    x_val = torch.from_numpy(scaler.transform(val))
    x_val = with_mirror_images(x_val, signs_of(scaler.features, scaler.odd_features))
    for run in RUNS:
        mixture, _ = load_flow(tiny_run / "results/flows" / run / "model.pt")
        history = io.read_tsv(tiny_run / "results/flows" / run / "history.tsv")
        best = min(float(row["val_loss"]) for row in history)
        with torch.no_grad():
            nll = -mixture.flow(x_val).mean().item()
        assert nll == pytest.approx(best, rel=1e-5), run


def test_generated_events_are_in_data_units(tiny_run):
    mc = io.read_matrix(tiny_run / "results/data/bkg_test_a.root", ["lepton_pt", "m_lv"])
    gen = io.read_matrix(tiny_run / "results/flows/tiny_maf/generated.root", ["lepton_pt", "m_lv"])
    # medians of momenta and masses in file units are O(1) for MC and generated alike
    assert np.allclose(np.median(gen, axis=0), np.median(mc, axis=0), rtol=0.5)


def test_runs_learn_the_configured_sign_flip_symmetry(tiny_run):
    etas = ["lepton_eta", "jet1_eta", "jet2_eta", "jet3_eta", "jet4_eta"]  # tests/configs/tiny.yaml
    assert load_scaler(tiny_run / "results/data/scaler.npz").odd_features == tuple(etas)
    for run in RUNS:
        flow, info = load_flow(tiny_run / "results/flows" / run / "model.pt")
        assert isinstance(flow, SignFlipMixture) and info["sign_flip"] == etas
    # the generated sample is symmetric: about half of the events have lepton_eta < 0
    eta = io.read_matrix(tiny_run / "results/flows/tiny_maf/generated.root", ["lepton_eta"])[:, 0]
    assert abs(np.mean(eta < 0) - 0.5) < 4 * np.sqrt(0.25 / len(eta))


def test_sampling_refuses_a_scaler_without_the_models_symmetry(tiny_run, tmp_path):
    features = load_scaler(tiny_run / "results/data/scaler.npz").features
    x = io.read_matrix(tiny_run / "results/data/bkg_train.root", list(features))
    plain = tmp_path / "plain_scaler.npz"
    fit_scaler(x, features, "gauss_rank").save(plain)
    with pytest.raises(ValueError, match=r"flips the signs of .*lepton_eta.*odd only in \[\]"):
        sample_flow(
            SampleFlowOutputs(events=tmp_path / "g.root", timing=tmp_path / "t.tsv"),
            run="tiny_maf", model=tiny_run / "results/flows/tiny_maf/model.pt", scaler=plain,
            reference=tiny_run / "results/data/bkg_test_a.root", n_generated=10, chunk_size=10, seed=0,
            device="cpu",
        )  # fmt: skip
    assert not (tmp_path / "g.root").exists()


def test_model_file_loads_without_unpickling(tiny_run):
    payload = torch.load(tiny_run / "results/flows/tiny_maf/model.pt", weights_only=True)
    assert payload["model"] == "maf" and payload["params"]["blocks"] == 2


def test_training_on_cpu_is_reproducible(tiny_run, tmp_path):
    """Retraining a run with the same seed gives bit-identical weights."""
    import shutil

    from tests.workflow.runner import TINY_CONFIG, snakemake

    shutil.copytree(tiny_run / "results/data", tmp_path / "results/data")
    snakemake(tmp_path, "results/flows/tiny_maf/model.pt", "--configfile", str(TINY_CONFIG))
    a = torch.load(tiny_run / "results/flows/tiny_maf/model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "results/flows/tiny_maf/model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_training_does_not_resume_on_other_splits(tiny_run, tmp_path, monkeypatch, caplog):
    """Kill train_flow after its epochs, re-split with the same counts (what another
    splits.seed does), rerun: the old checkpoint is discarded, not resumed."""
    import logging

    import yaml

    import flowsim.plots.training
    from flowsim.runs import run_spec
    from flowsim.stages.flows import train_flow
    from tests.workflow.runner import TINY_CONFIG

    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["flows"]["tiny_maf"]["training"] = {"max_epochs": 2, "patience": 2}
    spec = run_spec({"training": config["training"], **config}, "tiny_maf")
    data = tiny_run / "results/data"
    outputs = TrainFlowOutputs(
        model=tmp_path / "model.pt", history=tmp_path / "history.tsv", loss=tmp_path / "loss.png"
    )
    paths = {
        "train_events": data / "bkg_train.root", "val_events": data / "bkg_val.root",
        "scaler": data / "scaler.npz", "checkpoint": tmp_path / "checkpoint.pt",
    }  # fmt: skip

    class Killed(Exception):
        pass

    def killed(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(flowsim.plots.training, "plot_history", killed)  # dies after training, before the cleanup
        with pytest.raises(Killed):
            train_flow(spec, outputs, **paths)
    assert paths["checkpoint"].exists()

    # other splits of the same sizes: training events exchanged with test_a events
    train = io.read_events(data / "bkg_train.root")
    test_a = io.read_events(data / "bkg_test_a.root")
    half = len(test_a["label"]) // 2
    resplit = {k: np.concatenate([test_a[k][:half], train[k][half:]]) for k in train}
    io.write_events(tmp_path / "bkg_train.root", resplit)
    caplog.set_level(logging.INFO)
    train_flow(spec, outputs, **{**paths, "train_events": tmp_path / "bkg_train.root"})
    assert "resuming" not in caplog.text
    discarded = f"discarding the checkpoint {paths['checkpoint']} and starting afresh: its training data differ"
    assert discarded in caplog.text
    assert [int(r["epoch"]) for r in io.read_tsv(outputs.history)] == [1, 2]
    assert not paths["checkpoint"].exists()
