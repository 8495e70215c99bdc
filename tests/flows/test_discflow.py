"""Classifier feedback (DiscFlow) against independent computations: the weights are the known
ratio of two Gaussians, a round moves a wrong Gaussian to the closed-form weighted fit, and the
flow stage runs the rounds on tiny files and records them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowsim import io
from flowsim.data.scaling import load_scaler
from flowsim.discflow import (
    FeedbackSettings,
    discriminator_round,
    feedback_loop,
    feedback_weights,
    fit_discriminator,
    flow_sampler,
    parse_feedback,
)
from flowsim.errors import ConfigError
from flowsim.model_files import read_model_file
from flowsim.runs import RunSpec
from flowsim.stages.flows import (
    TrainFlowOutputs,
    feedback_checkpoint,
    negative_log_likelihood,
    train_flow,
    train_flow_model,
)
from flowsim.training import TrainConfig, evaluate, train
from flowsim.weights import WeightError, normalised
from tests.flows.test_weighted_training import FEATURES, _write_splits


def true_ratio(x: np.ndarray) -> np.ndarray:
    """N(½, 1) / N(0, 1) = exp(x/2 − 1/8)."""
    return np.exp(0.5 * x - 0.125)


@pytest.fixture(scope="module")
def gaussian_discriminator():
    """D of 'data' N(½, 1) against a 'flow sample' N(0, 1), 20000 events each, 1-D."""
    rng = np.random.default_rng(0)
    data, flow_sample = rng.normal(0.5, 1.0, (20_000, 1)), rng.normal(0.0, 1.0, (20_000, 1))
    return fit_discriminator(data, flow_sample, FeedbackSettings(), seed=0), flow_sample


def test_the_discriminator_weights_are_the_density_ratio_of_two_gaussians(gaussian_discriminator):
    classifier, flow_sample = gaussian_discriminator
    bulk = np.linspace(-1.0, 1.5, 26)[:, None]  # |x| < ~1.5σ of both: ~70% of the events
    w, n_clipped = feedback_weights(classifier, bulk, alpha=1.0, max_weight=10.0)
    assert n_clipped == 0
    # the trees' ratio is a step function: within 30% everywhere on the bulk, 10% on average
    relative = w / true_ratio(bulk[:, 0]) - 1
    assert np.abs(relative).max() < 0.3 and np.abs(relative).mean() < 0.1, relative
    # the ratio rises across the bulk as exp(x/2): a fitted log-slope of ½
    assert np.polyfit(bulk[:, 0], np.log(w), 1)[0] == pytest.approx(0.5, abs=0.1)
    # E_flow[p_data/p_flow] = 1, over the sample the classifier saw
    w_flow, _ = feedback_weights(classifier, flow_sample, alpha=1.0, max_weight=10.0)
    assert w_flow.mean() == pytest.approx(1.0, abs=0.05)
    # w^α is the same ratio to the power α
    for alpha in (0.25, 0.5):
        w_alpha, _ = feedback_weights(classifier, bulk, alpha=alpha, max_weight=10.0)
        np.testing.assert_allclose(w_alpha, w**alpha, rtol=1e-12)


def test_the_ratio_is_clipped_before_the_power(gaussian_discriminator):
    classifier, _ = gaussian_discriminator
    x = np.linspace(-2.0, 3.0, 51)[:, None]
    plain, _ = feedback_weights(classifier, x, alpha=1.0, max_weight=100.0)
    clipped, n_clipped = feedback_weights(classifier, x, alpha=0.5, max_weight=1.5)
    assert n_clipped == int(np.count_nonzero(plain > 1.5)) > 0
    np.testing.assert_allclose(clipped, np.minimum(plain, 1.5) ** 0.5, rtol=1e-12)


class Gaussian(torch.nn.Module):
    """A 1-D "flow" N(μ, σ²) with learnable μ, log σ: its weighted maximum-likelihood fit is
    the weighted mean and standard deviation, in closed form."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.mean = torch.nn.Parameter(torch.tensor(mean))
        self.log_std = torch.nn.Parameter(torch.tensor(math.log(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x[:, 0] - self.mean) / self.log_std.exp()
        return -0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mean + self.log_std.exp() * torch.randn(n, 1, generator=generator)


def _fine_tuner(model: torch.nn.Module, x: np.ndarray, seen: list):
    """A fine-tune by the workflow's trainer on the batches (x, w̃), to convergence."""
    # full batches, the learning rate annealed to nothing: the optimum to ~1e-3
    config = TrainConfig(lr=0.05, batch_size=len(x), max_epochs=300, patience=300, restart_epochs=300, min_lr=0.0,
                         seed=0, device="cpu")  # fmt: skip

    def fine_tune(round_: int, w_train: np.ndarray, w_val: np.ndarray) -> dict:
        seen.append((w_train, w_val))
        train_data = (torch.from_numpy(x), torch.from_numpy(normalised(w_train)))
        # kept is the epoch best on the training loss itself, so that the fit is the weighted MLE
        result = train(model, negative_log_likelihood, train_data, train_data, config, name="gaussian")
        return {"best_epoch": result.best_epoch}

    return fine_tune


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_a_round_moves_a_wrong_gaussian_to_the_fit_of_the_reweighted_data(alpha):
    """Flow N(0, 1), data N(½, 1): trained to convergence on the data weighted by w_D^α, the flow
    fits p_data^(1+α) / p_flow^α ∝ N((1 + α)/2, 1), mean ¾ for α = ½ (halfway from its error:
    toward the data), 1 for α = 1 (the error's sign swapped: why α < 1)."""
    rng = np.random.default_rng(1)
    x, x_val, x_test = (rng.normal(0.5, 1.0, (n, 1)) for n in (10_000, 3000, 20_000))
    model, seen = Gaussian(), []
    record = feedback_loop(
        flow_sampler(model), x, x_val, FeedbackSettings(rounds=1, alpha=alpha), _fine_tuner(model, x, seen),
        seed=2,
    )  # fmt: skip
    # the trainer found the weighted maximum-likelihood Gaussian of the weights it was given ...
    assert len(seen) == 1
    w = seen[0][0]
    mean = np.sum(w * x[:, 0]) / np.sum(w)
    std = math.sqrt(np.sum(w * (x[:, 0] - mean) ** 2) / np.sum(w))
    assert model.mean.item() == pytest.approx(mean, abs=0.01)
    assert model.log_std.exp().item() == pytest.approx(std, abs=0.01)
    # ... and those weights are p_data/p_flow to the power α: the fit the algebra predicts
    # (the trees flatten the ratio where the samples thin out, which pulls the mean in by ~0.03)
    assert model.mean.item() == pytest.approx((1 + alpha) / 2, abs=0.08)
    assert model.log_std.exp().item() == pytest.approx(1.0, abs=0.05)
    (row,) = record["rounds"]
    assert row["round"] == 1 and row["best_epoch"] >= 1 and 0 < row["ess_train_fraction"] < 1
    assert row["auc"] > 0.55  # a shift of ½σ: AUC Φ(½/√2) ≈ 0.64
    if alpha == 0.5:  # a quarter σ off instead of a half: closer to the data by the NLL and the classifier
        assert row["auc"] == pytest.approx(0.64, abs=0.03)
        assert record["auc_after"] < row["auc"] - 0.03
        with torch.no_grad():
            nll_after = -model(torch.from_numpy(x_test)).mean().item()
            nll_before = -Gaussian()(torch.from_numpy(x_test)).mean().item()
        assert nll_after < nll_before - 0.05  # the KL divergence falls from 1/8 to 1/32


def test_a_round_uses_fresh_flow_events_for_the_auc_and_is_seeded():
    rng = np.random.default_rng(3)
    x, x_val = rng.normal(0.0, 1.0, (2000, 1)), rng.normal(0.0, 1.0, (500, 1))
    calls: list[tuple[int, int]] = []

    def sample(n: int, seed: int) -> np.ndarray:
        calls.append((n, seed))
        return np.random.default_rng(seed).normal(0.0, 1.0, (n, 1))

    a = discriminator_round(sample, x, x_val, FeedbackSettings(), round_=1, seed=7)
    b = discriminator_round(sample, x, x_val, FeedbackSettings(), round_=1, seed=7)
    assert [n for n, _ in calls[:2]] == [2000, 500] and calls[0][1] != calls[1][1]
    assert calls[:2] == calls[2:]
    np.testing.assert_array_equal(a.w_train, b.w_train)
    assert a.auc == b.auc == pytest.approx(0.5, abs=0.05)  # the same density: nothing to tell apart


def test_the_flow_sampler_draws_in_chunks_from_one_seeded_generator():
    sample = flow_sampler(Gaussian(0.5, 2.0), chunk_size=300)
    a, b, c = sample(1000, 4), sample(1000, 4), sample(1000, 5)
    assert a.shape == (1000, 1) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(np.unique(a)) == 1000  # no chunk repeats another's draws
    assert a.mean() == pytest.approx(0.5, abs=0.2) and a.std() == pytest.approx(2.0, abs=0.2)


def test_feedback_settings_errors_name_the_key():
    assert parse_feedback(None, key="flows.r.feedback") is None
    assert parse_feedback({}, key="flows.r.feedback") == FeedbackSettings()
    assert parse_feedback({"rounds": 3, "alpha": 1}, key="k") == FeedbackSettings(rounds=3, alpha=1)
    for section, key in (
        ({"rounds": 0}, "rounds"), ({"rounds": 1.5}, "rounds"), ({"alpha": 0}, "alpha"),
        ({"alpha": 1.5}, "alpha"), ({"classifier": "svm"}, "classifier"), ({"max_weight": 1}, "max_weight"),
        ({"round": 2}, "round"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=rf"'flows\.r\.feedback\.{key}'"):
            parse_feedback(section, key="flows.r.feedback")


# --- the flow stage ----------------------------------------------------------------------------


def _spec(feedback: FeedbackSettings | None) -> RunSpec:
    training = TrainConfig(batch_size=100, max_epochs=2, patience=2, device="cpu", seed=3)
    return RunSpec(name="d", model="maf", params={"blocks": 2, "hidden": 8}, training=training, n_generated="1x",
                   feedback=feedback)  # fmt: skip


@pytest.fixture
def float32():
    torch.set_default_dtype(torch.float32)  # the workflow's dtype (the autouse fixture restores float64)


def test_the_stage_fine_tunes_in_feedback_rounds_and_records_them(tmp_path, float32):
    paths = _write_splits(tmp_path, {})
    plain = train_flow_model(_spec(None), **paths)
    (tmp_path / "checkpoint.pt").unlink()
    spec = _spec(FeedbackSettings(rounds=2, alpha=0.5))
    trained = train_flow_model(spec, **paths)

    # the training before the rounds is the run without feedback, epoch for epoch
    assert trained.result.history[:2] == [
        {**row, "seconds": new["seconds"], "events_per_s": new["events_per_s"]}
        for row, new in zip(plain.result.history, trained.result.history)
    ]
    assert [row["epoch"] for row in trained.result.history] == [1, 2, 3, 4, 5, 6]
    assert plain.feedback is None
    record = trained.feedback
    assert record["settings"] == {"rounds": 2, "alpha": 0.5, "classifier": "tree", "max_weight": 10.0}
    assert [row["round"] for row in record["rounds"]] == [1, 2]
    for row in record["rounds"]:
        assert 0 <= row["auc"] <= 1 and 0 < row["ess_val_fraction"] <= 1 and row["epochs_run"] == 2
    assert 0 <= record["auc_after"] <= 1
    assert trained.result.best_epoch == 4 + record["rounds"][-1]["best_epoch"]
    # val_nll: the unweighted NLL of the final symmetric mixture on the validation split
    x = torch.from_numpy(load_scaler(paths["scaler"]).transform(io.read_matrix(paths["val_events"], FEATURES)))
    with torch.no_grad():
        flow = trained.flow.eval()
        log_p = np.logaddexp(flow.log_prob(x).numpy(), flow.log_prob(x * torch.tensor([-1.0, 1.0])).numpy())
    assert trained.val_nll == pytest.approx(-(log_p - math.log(2)).mean(), rel=1e-5)
    assert record["rounds"][-1]["val_nll"] == pytest.approx(trained.val_nll, rel=1e-6)
    assert evaluate(flow, negative_log_likelihood, (x,), 64) != pytest.approx(plain.val_nll, rel=1e-6)

    # every round checkpointed: a rerun resumes each and ends where this one did
    assert all(feedback_checkpoint(paths["checkpoint"], r).exists() for r in (1, 2))
    again = train_flow_model(spec, **paths)
    for name, value in trained.flow.state_dict().items():
        assert torch.equal(value, again.flow.state_dict()[name]), name


def test_the_rule_writes_the_rounds_into_the_model_and_removes_their_checkpoints(tmp_path, float32):
    paths = _write_splits(tmp_path, {})
    outputs = TrainFlowOutputs(tmp_path / "model.pt", tmp_path / "history.tsv", tmp_path / "loss.png")
    trained = train_flow(_spec(FeedbackSettings(rounds=1)), outputs, **paths)
    metadata = read_model_file(outputs.model)["metadata"]
    assert metadata["feedback"] == trained.feedback and len(metadata["feedback"]["rounds"]) == 1
    assert metadata["val_nll"] == trained.val_nll and metadata["epochs_run"] == 4
    assert len(io.read_tsv(outputs.history)) == 4
    assert not any(tmp_path.glob("checkpoint*.pt"))
    plain = train_flow(_spec(None), outputs, **paths)
    assert "feedback" not in read_model_file(outputs.model)["metadata"] and plain.feedback is None


def test_the_stage_refuses_feedback_on_weighted_splits(tmp_path, float32):
    paths = _write_splits(tmp_path, {"train": np.ones(400), "val": np.ones(150)})
    with pytest.raises(WeightError, match=r"flows\.d\.feedback needs unweighted splits"):
        train_flow_model(_spec(FeedbackSettings()), **paths)
