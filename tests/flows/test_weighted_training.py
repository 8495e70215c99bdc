"""Flows trained on weighted events (weighted MC, some weights negative), against independent
computations: the weighted likelihood's minimiser is the density the weights describe."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowsim import io
from flowsim.data.scaling import fit_scaler, load_scaler
from flowsim.data.splits import nested_subset
from flowsim.flows import build_flow
from flowsim.flows.bayesian import elbo_loss, frozen_draw, kl_divergence
from flowsim.flows.symmetry import RandomSignFlip, flip_signs
from flowsim.runs import RunSpec
from flowsim.stages.flows import _bootstrap_replica, _training_subset, negative_log_likelihood, train_flow_model
from flowsim.training import TrainConfig, evaluate, train
from flowsim.weights import WeightError, normalised


def normal_log_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))


def weighted_fit(model: str, hyper: dict, x, w, x_val, w_val, epochs: int) -> torch.nn.Module:
    """``model`` on 1 feature, trained by the workflow's trainer on the batches ``(x, w̃)``."""
    torch.manual_seed(0)
    flow = build_flow(model, 1, **hyper)
    config = TrainConfig(lr=1e-2, batch_size=256, max_epochs=epochs, patience=epochs, scheduler="constant",
                         seed=0, device="cpu")  # fmt: skip
    train_data = (x, torch.from_numpy(normalised(w)))
    val_data = (x_val, torch.from_numpy(normalised(w_val)))
    train(flow, negative_log_likelihood, train_data, val_data, config, name=model)
    return flow.eval()


def test_a_weighted_fit_recovers_the_density_the_weights_describe():
    """Events of N(0, 1) weighted by N(1, 0.8²)/N(0, 1) describe N(1, 0.8²): the fit must find it
    (the unweighted fit finds N(0, 1), 1 and 0.2 away in mean and std)."""
    generator = torch.Generator().manual_seed(0)
    x, x_val = torch.randn(4000, 1, generator=generator), torch.randn(1000, 1, generator=generator)

    def ratio(z: torch.Tensor) -> np.ndarray:
        z = z[:, 0].numpy()
        return np.exp(normal_log_pdf(z, 1.0, 0.8) - normal_log_pdf(z, 0.0, 1.0))

    flow = weighted_fit("maf", {"blocks": 2, "hidden": 8}, x, ratio(x), x_val, ratio(x_val), epochs=20)
    with torch.no_grad():
        sample = flow.sample(20_000, generator=torch.Generator().manual_seed(1))
        grid = np.linspace(-1.0, 3.0, 41)
        log_p = flow.log_prob(torch.from_numpy(grid)[:, None]).numpy()
    # about 3000 effective events: statistical errors of ~0.015 on the mean and ~0.01 on the std
    assert sample.mean().item() == pytest.approx(1.0, abs=0.05)
    assert sample.std().item() == pytest.approx(0.8, abs=0.04)
    np.testing.assert_allclose(log_p, normal_log_pdf(grid, 1.0, 0.8), atol=0.15)


def test_negative_weights_recover_a_difference_of_densities():
    """p = (1 + c) N(0, 1) − c N(0, 0.5²), c = ½: events of the first density weigh +1, of the
    second −1, in the ratio (1 + c) : c. p dips at 0 (p(0) ≈ 0.20, p(±0.81) ≈ 0.32); the fit
    that ignores the signs would peak there (≈ 0.50)."""
    c, generator = 0.5, torch.Generator().manual_seed(0)

    def sample(n: int) -> tuple[torch.Tensor, np.ndarray]:
        n_minus = round(n * c / (1 + 2 * c))
        plus, minus = torch.randn(n - n_minus, 1, generator=generator), torch.randn(n_minus, 1, generator=generator)
        x = torch.cat([plus, 0.5 * minus])
        return x, np.r_[np.ones(n - n_minus), -np.ones(n_minus)]

    (x, w), (x_val, w_val) = sample(8000), sample(2000)
    hyper = {"blocks": 1, "hidden": 8, "bins": 8, "tail_bound": 4.0}
    flow = weighted_fit("rqs", hyper, x, w, x_val, w_val, epochs=30)
    grid = np.linspace(-2.5, 2.5, 51)
    target = (1 + c) * np.exp(normal_log_pdf(grid, 0.0, 1.0)) - c * np.exp(normal_log_pdf(grid, 0.0, 0.5))
    with torch.no_grad():
        density = flow.log_prob(torch.from_numpy(grid)[:, None]).exp().numpy()
    np.testing.assert_allclose(density, target, atol=0.08)
    at = {t: density[np.argmin(np.abs(grid - t))] for t in (-0.8, 0.0, 0.8)}
    assert at[0.0] < 0.9 * min(at[-0.8], at[0.8]), at


def test_the_weighted_nll_is_the_weighted_mean_over_the_split(make_flow):
    """evaluate() of batches (x, w / mean(w)) is −Σ wᵢ log p(xᵢ) / Σ wᵢ for any batch size,
    negative weights included; the Bayesian ELBO weights its NLL alike."""
    flow = make_flow("maf", 2)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(100, 2, generator=generator)
    w = np.random.default_rng(1).uniform(-0.5, 2.0, size=100)
    with torch.no_grad():
        log_p = flow.log_prob(x).numpy()
    expected = -np.sum(w * log_p) / np.sum(w)
    for batch_size in (7, 100, 1000):
        assert evaluate(flow, negative_log_likelihood, (x, torch.from_numpy(normalised(w))), batch_size) == (
            pytest.approx(expected, rel=1e-12)
        )

    bayes = build_flow("maf", 2, blocks=2, hidden=8, bayesian={"init_std": 0.1})
    loss = elbo_loss(len(x))
    batch = (x, torch.from_numpy(normalised(w)))
    with frozen_draw(bayes.train(), 3), torch.no_grad():  # one draw: the training-mode loss is deterministic
        log_p = bayes.log_prob(x).numpy()
        expected_elbo = -np.sum(w * log_p) / np.sum(w) + kl_divergence(bayes).item() / len(x)
        assert loss(bayes, batch).item() == pytest.approx(expected_elbo, rel=1e-12)
    bayes.eval()
    with torch.no_grad():
        expected_nll = -np.sum(w * bayes.log_prob(x).numpy()) / np.sum(w)
    assert evaluate(bayes, loss, batch, 13) == pytest.approx(expected_nll, rel=1e-12)


def test_all_ones_weights_train_the_unweighted_model_bit_for_bit(make_flow):
    """w̃ = 1 multiplies each log p(x) by exactly 1, and the batch order and the augmentation's
    draws depend on the number of events only: the same losses and weights, bit for bit."""
    generator = torch.Generator().manual_seed(2)
    x, x_val = torch.randn(600, 2, generator=generator), torch.randn(200, 2, generator=generator)
    ones, ones_val = torch.from_numpy(normalised(np.ones(600))), torch.from_numpy(normalised(np.ones(200)))
    flow = make_flow("rqs", 2, perturb=False)
    assert negative_log_likelihood(flow, (x, ones)).item() == pytest.approx(
        negative_log_likelihood(flow, (x,)).item(), abs=1e-6
    )
    config = TrainConfig(lr=1e-2, batch_size=64, max_epochs=3, seed=1, device="cpu")
    augment = RandomSignFlip(flip_signs(2, [0]))
    trained = []
    for train_data, val_data in (((x,), (x_val,)), ((x, ones), (x_val, ones_val))):
        torch.manual_seed(0)
        flow = build_flow("rqs", 2, blocks=2, hidden=8, bins=5)
        result = train(flow, negative_log_likelihood, train_data, val_data, config, augment=augment)
        trained.append((flow.state_dict(), [(r["train_loss"], r["val_loss"]) for r in result.history]))
    (plain, plain_history), (weighted, weighted_history) = trained
    assert plain_history == weighted_history
    for name in plain:
        assert torch.equal(plain[name], weighted[name]), name


def test_the_sign_flip_augmentation_passes_the_weights_through():
    x, w = torch.randn(200, 3), torch.rand(200)
    flipped_x, flipped_w = RandomSignFlip(flip_signs(3, [1]))((x, w), torch.Generator().manual_seed(0))
    assert flipped_w is w
    changed = (flipped_x != x).any(dim=1)
    assert 50 < int(changed.sum()) < 150
    assert torch.equal(flipped_x[:, 1].abs(), x[:, 1].abs()) and torch.equal(flipped_x[:, [0, 2]], x[:, [0, 2]])


def test_the_training_subset_and_the_bootstrap_replica_carry_each_events_weight():
    spec = RunSpec(name="r", model="maf", params={}, training=TrainConfig(seed=4), n_generated="1x", train_events=60)
    x = torch.arange(100.0)[:, None].repeat(1, 2)
    w = 1000.0 + np.arange(100.0)  # event i weighs 1000 + i: the rows say which weight is theirs
    x_sub, w_sub = _training_subset(x, spec, w)
    np.testing.assert_array_equal(w_sub, 1000.0 + x_sub[:, 0].numpy())
    assert len(w_sub) == 60
    x_boot, w_boot = _bootstrap_replica(x_sub, spec, w_sub)
    np.testing.assert_array_equal(w_boot, 1000.0 + x_boot[:, 0].numpy())
    assert len(np.unique(w_boot)) < len(w_boot)  # some events repeated, each with its weight
    assert _training_subset(x, spec)[1] is None and _bootstrap_replica(x, spec)[1] is None


# --- the flow stage ----------------------------------------------------------------------------

FEATURES = ["eta", "b"]


def _write_splits(directory, weights: dict[str, np.ndarray | None], n: dict[str, int] | None = None) -> dict:
    """train/val ROOT files of a 2-D Gaussian (``eta`` symmetric) with the given weight branches,
    the scaler (odd in ``eta``) and the checkpoint path: the keyword arguments of train_flow_model."""
    rng = np.random.default_rng(0)
    n = n or {"train": 400, "val": 150}
    for split, count in n.items():
        values = rng.multivariate_normal([0.0, 1.0], [[1.0, 0.0], [0.0, 0.5]], size=count)
        columns = dict(zip(FEATURES, values.T))
        if weights.get(split) is not None:
            columns[io.WEIGHT] = weights[split]
        io.write_events(directory / f"{split}.root", columns)
    x = io.read_matrix(directory / "train.root", FEATURES)
    fit_scaler(x, FEATURES, "gauss_rank", odd=["eta"]).save(directory / "scaler.npz")
    return {
        "train_events": directory / "train.root", "val_events": directory / "val.root",
        "scaler": directory / "scaler.npz", "checkpoint": directory / "checkpoint.pt",
    }  # fmt: skip


def _spec(**kwargs) -> RunSpec:
    training = TrainConfig(batch_size=100, max_epochs=2, patience=2, device="cpu", seed=3)
    return RunSpec(name="w", model="maf", params={"blocks": 2, "hidden": 8}, training=training, n_generated="1x",
                   **kwargs)  # fmt: skip


@pytest.fixture
def float32():
    torch.set_default_dtype(torch.float32)  # the workflow's dtype (the autouse fixture restores float64)


def test_the_stage_validates_on_the_weighted_nll_of_the_split_and_its_mirror_image(tmp_path, float32):
    rng = np.random.default_rng(5)
    weights = {"train": rng.uniform(-0.3, 2.0, 400), "val": rng.uniform(-0.3, 2.0, 150)}
    paths = _write_splits(tmp_path, weights)
    trained = train_flow_model(_spec(train_events=300, bootstrap=True), **paths)

    scaler = load_scaler(paths["scaler"])
    x = torch.from_numpy(scaler.transform(io.read_matrix(paths["val_events"], FEATURES)))
    w = io.read_weights(paths["val_events"])  # the float32 branch, as float64
    with torch.no_grad():
        log_p = trained.flow.eval().log_prob(x).double().numpy()
        log_p_mirror = trained.flow.log_prob(x * torch.tensor([-1.0, 1.0])).double().numpy()
    # early stopping: the flow's weighted NLL over the split and its mirror image, each event's
    # image with its weight; the model's val_nll: that of the symmetric mixture
    expected_stop = -np.sum(w * (log_p + log_p_mirror)) / (2 * np.sum(w))
    expected_mixture = -np.sum(w * (np.logaddexp(log_p, log_p_mirror) - math.log(2))) / np.sum(w)
    assert trained.result.best_val_loss == pytest.approx(expected_stop, rel=1e-5)
    assert trained.val_nll == pytest.approx(expected_mixture, rel=1e-5)
    assert trained.sign_flip == ["eta"]


def test_the_stage_with_all_ones_weights_trains_the_unweighted_flow(tmp_path, float32):
    """Through the training subset, the bootstrap replica, the sign-flip augmentation and the
    mirror images: the same flow bit for bit, the same losses (the checkpoints differ: their
    fingerprint covers the weights)."""
    runs = []
    for weights in ({}, {"train": np.ones(400), "val": np.ones(150)}):
        directory = tmp_path / ("weighted" if weights else "plain")
        directory.mkdir()
        runs.append(train_flow_model(_spec(train_events=300, bootstrap=True), **_write_splits(directory, weights)))
    plain, weighted = runs
    assert plain.result.history[-1]["val_loss"] == weighted.result.history[-1]["val_loss"]
    assert [r["train_loss"] for r in plain.result.history] == [r["train_loss"] for r in weighted.result.history]
    assert plain.val_nll == weighted.val_nll
    for name, value in plain.flow.state_dict().items():
        assert torch.equal(value, weighted.flow.state_dict()[name]), name


def test_the_stage_refuses_weights_that_do_not_sum_to_a_positive_number(tmp_path, float32):
    weights = {"train": np.r_[-np.ones(300), 0.5 * np.ones(100)], "val": np.ones(150)}
    paths = _write_splits(tmp_path, weights)
    with pytest.raises(WeightError, match=r"train\.root: the event weights sum to -250"):
        train_flow_model(_spec(), **paths)


def test_the_stage_refuses_a_training_subset_whose_weights_do_not_sum_to_a_positive_number(tmp_path, float32):
    # every event weighs −1 but one left out of the subset, which outweighs them all
    spec = _spec(train_events=100)
    weights = -np.ones(400)
    left_out = np.setdiff1d(np.arange(400), nested_subset(400, 100, seed=spec.training.seed))[0]
    weights[left_out] = 1000.0
    paths = _write_splits(tmp_path, {"train": weights, "val": np.ones(150)})
    subset = r"train\.root \(the 100 events run w trains on\)"
    with pytest.raises(WeightError, match=subset + ": the event weights sum to -100 over 100 events"):
        train_flow_model(spec, **paths)


def test_the_stage_refuses_splits_weighted_unlike(tmp_path, float32):
    paths = _write_splits(tmp_path, {"train": np.ones(400)})
    with pytest.raises(WeightError, match=r"train\.root has event weights but .*val\.root has none"):
        train_flow_model(_spec(), **paths)
