"""The shared trainer: learns, averages weights, stops early, resumes bit-identically, refuses NaN."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from flowsim.training import NonFiniteLossError, TrainConfig, _WeightAverage, evaluate, train


def regression_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def mse(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.1), nn.Tanh(), nn.Linear(16, 1))


CONFIG = TrainConfig(lr=1e-2, batch_size=64, max_epochs=6, patience=10, restart_epochs=2, seed=3, device="cpu")


def test_loss_decreases_and_best_weights_are_restored():
    model = make_model()
    train_data, val_data = regression_data(1000, 1), regression_data(300, 2)
    result = train(model, mse, train_data, val_data, CONFIG)
    losses = [row["val_loss"] for row in result.history]
    assert losses[-1] < 0.2 * losses[0]
    assert result.best_val_loss == min(losses)
    model.eval()
    with torch.no_grad():
        assert mse(model, val_data).item() == pytest.approx(result.best_val_loss, rel=1e-5)


def test_early_stopping_after_patience_epochs_without_improvement():
    # a learning rate of ~0 cannot improve after the first epoch
    config = TrainConfig(lr=1e-12, batch_size=64, max_epochs=50, patience=3, seed=1, device="cpu",
                         scheduler="constant")  # fmt: skip
    result = train(make_model(), mse, regression_data(500, 1), regression_data(100, 2), config)
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 3


def test_same_seed_gives_bit_identical_models():
    a, b = make_model(), make_model()
    data = regression_data(500, 1), regression_data(100, 2)
    train(a, mse, *data, CONFIG)
    train(b, mse, *data, CONFIG)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)


class _Kill(Exception):
    pass


def noisy_inputs(batch, generator):
    """An augmentation that draws from its generator: jitter the inputs."""
    x, y = batch
    return [x + 0.1 * torch.randn(x.shape, generator=generator), y]


def test_augmentation_touches_training_batches_only_and_is_reproducible():
    seen = []

    def recording(batch, generator):
        seen.append(len(batch[0]))
        return noisy_inputs(batch, generator)

    data = regression_data(500, 1), regression_data(100, 2)
    a, b, plain = make_model(), make_model(), make_model()
    result = train(a, mse, *data, CONFIG, augment=recording)
    train(b, mse, *data, CONFIG, augment=noisy_inputs)
    train(plain, mse, *data, CONFIG)
    assert sum(seen) == 6 * 500  # every training event of 6 epochs, no validation event
    assert len(result.history) == 6
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pp) for pa, pp in zip(a.state_dict().values(), plain.state_dict().values()))


def test_epoch_hook_sees_the_validated_weights_and_leaves_training_unchanged():
    """The hook gets every epoch's validated weights (here the average) and may draw random
    numbers and switch modes without changing the trained model (dropout draws from the same
    global RNG)."""
    data = regression_data(500, 1), regression_data(100, 2)
    config = dataclasses.replace(CONFIG, average_epochs=1.0)
    seen = []

    def hook(epoch: int, module: nn.Module) -> None:
        module.eval()
        with torch.no_grad():
            seen.append((epoch, mse(module, data[1]).item()))
        torch.randn(100)  # would shift every later dropout mask without the forked RNG

    hooked, plain = make_model(), make_model()
    result = train(hooked, mse, *data, config, on_epoch=hook)
    train(plain, mse, *data, config)
    assert [epoch for epoch, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert [loss for _, loss in seen] == pytest.approx([row["val_loss"] for row in result.history], rel=1e-6)
    for pa, pp in zip(hooked.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(pa, pp)


def test_weight_average_is_the_running_mean_then_an_exponential_window():
    model = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    steps_per_epoch, epochs = 4, 2.0
    average = _WeightAverage(model, epochs, steps_per_epoch)
    beta = math.exp(-1 / 8)
    # the running mean's weight (t-1)/t first exceeds beta at t = 9: the mean of steps 1..8
    values = torch.arange(1.0, 9.0)
    for value in values:
        nn.init.constant_(model[0].weight, float(value))
        model[1].num_batches_tracked.fill_(int(value))
        average.update()
    assert torch.allclose(average.module[0].weight, values.mean().expand(1, 2))
    assert average.module[1].num_batches_tracked.item() == 8  # integer buffers are copied
    # from then on an impulse decays geometrically: step s has weight (1 - beta) beta^(T - s)
    nn.init.constant_(model[0].weight, 0.0)
    before = average.module[0].weight.clone()
    nn.init.constant_(model[0].weight, 1.0)
    average.update()
    nn.init.constant_(model[0].weight, 0.0)
    for _ in range(5):
        average.update()
    expected = before * beta**6 + (1 - beta) * beta**5
    assert torch.allclose(average.module[0].weight, expected, rtol=1e-6)


def test_averaged_weights_beat_the_noisy_last_iterate_and_are_what_is_returned():
    # a large constant step leaves SGD bouncing around the optimum; the average sits nearer it
    config = TrainConfig(lr=0.3, batch_size=8, max_epochs=8, patience=10, scheduler="constant", seed=2,
                         device="cpu", weight_decay=0.0)  # fmt: skip
    data = regression_data(800, 1), regression_data(2000, 2)

    def linear() -> nn.Module:
        torch.manual_seed(0)
        return nn.Linear(3, 1)

    live, averaged = linear(), linear()
    live_result = train(live, mse, *data, config)
    averaged_result = train(averaged, mse, *data, TrainConfig(**{**config.__dict__, "average_epochs": 1.0}))
    # the noise floor is 0.1² = 0.01: the live weights are ~0.003 above it, the average ~10x nearer
    assert averaged_result.best_val_loss < live_result.best_val_loss - 0.002
    assert evaluate(averaged, mse, data[1], 4096) == pytest.approx(averaged_result.best_val_loss, rel=1e-6)


AVERAGED = TrainConfig(**{**CONFIG.__dict__, "average_epochs": 1.5})


@pytest.mark.parametrize(
    "augment, config",
    [(None, CONFIG), (noisy_inputs, CONFIG), (None, AVERAGED)],
    ids=["plain", "augmented", "averaged"],
)
def test_resume_after_kill_reaches_the_same_state(tmp_path, monkeypatch, augment, config):
    data = regression_data(500, 1), regression_data(100, 2)
    reference = make_model()
    ref_result = train(reference, mse, *data, config, augment=augment)

    # kill the run when it starts epoch 4 (three epochs checkpointed)
    killed = make_model()
    real_batches = __import__("flowsim.training", fromlist=["_batches"])._batches

    def dying_batches(n, batch_size, seed, epoch, device):
        if epoch == 4:
            raise _Kill()
        return real_batches(n, batch_size, seed, epoch, device)

    monkeypatch.setattr("flowsim.training._batches", dying_batches)
    ckpt = tmp_path / "last.pt"
    with pytest.raises(_Kill):
        train(killed, mse, *data, config, checkpoint=ckpt, augment=augment)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 3
    monkeypatch.setattr("flowsim.training._batches", real_batches)

    resumed = make_model(seed=99)  # fresh weights: everything must come from the checkpoint
    result = train(resumed, mse, *data, config, checkpoint=ckpt, augment=augment)
    assert [r["val_loss"] for r in result.history] == [r["val_loss"] for r in ref_result.history]
    for pa, pb in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)


def test_checkpoint_of_another_setup_is_not_resumed(tmp_path):
    data = regression_data(300, 1), regression_data(100, 2)
    ckpt = tmp_path / "last.pt"
    train(make_model(), mse, *data, CONFIG, checkpoint=ckpt)
    other = TrainConfig(**{**CONFIG.__dict__, "lr": 5e-3})
    result = train(make_model(), mse, *data, other, checkpoint=ckpt)
    assert result.history[0]["epoch"] == 1 and len(result.history) == other.max_epochs


def test_nan_loss_stops_with_run_and_epoch_and_keeps_last_good_checkpoint(tmp_path):
    data = regression_data(300, 1), regression_data(100, 2)
    ckpt = tmp_path / "last.pt"

    def exploding(model, batch):
        loss = mse(model, batch)
        return loss * math.nan if exploding.epoch_calls > 5 * 2 else loss

    exploding.epoch_calls = 0

    def counting(model, batch):
        exploding.epoch_calls += model.training
        return exploding(model, batch)

    config = TrainConfig(lr=1e-2, batch_size=100, max_epochs=10, seed=0, device="cpu")
    expected = r"myrun: the training loss became nan in epoch 4; last good checkpoint: .*last.pt \(epoch 3\)"
    with pytest.raises(NonFiniteLossError, match=expected):
        train(make_model(), counting, *data, config, name="myrun", checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 3


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="'batch_size' must be positive"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="'scheduler' must be"):
        TrainConfig(scheduler="step")
    with pytest.raises(ValueError, match="'average_epochs' must be >= 0"):
        TrainConfig(average_epochs=-1.0)


def _killed_after(tmp_path, monkeypatch, data, epochs: int, config=CONFIG) -> Path:
    """Train until the start of epoch ``epochs + 1``, then die: the checkpoint it leaves."""
    real_batches = __import__("flowsim.training", fromlist=["_batches"])._batches

    def dying_batches(n, batch_size, seed, epoch, device):
        if epoch == epochs + 1:
            raise _Kill()
        return real_batches(n, batch_size, seed, epoch, device)

    ckpt = tmp_path / "last.pt"
    with monkeypatch.context() as m:
        m.setattr("flowsim.training._batches", dying_batches)
        with pytest.raises(_Kill):
            train(make_model(), mse, *data, config, checkpoint=ckpt)
    return ckpt


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda x, y: (x.flip(0), y.flip(0)), "training data"),  # same events, other order
        (lambda x, y: (x + 1e-6, y), "training data"),
    ],
    ids=["reordered", "perturbed"],
)
def test_a_checkpoint_of_other_training_data_is_discarded(tmp_path, monkeypatch, caplog, change, what):
    # same settings and the same numbers of events: only the content differs (another
    # splits.seed, data.path or scaling.method makes exactly this difference)
    train_data, val_data = regression_data(300, 1), regression_data(100, 2)
    ckpt = _killed_after(tmp_path, monkeypatch, (train_data, val_data), epochs=3)
    result = train(make_model(), mse, change(*train_data), val_data, CONFIG, checkpoint=ckpt)
    assert [r["epoch"] for r in result.history] == list(range(1, CONFIG.max_epochs + 1))
    assert f"discarding the checkpoint {ckpt} and starting afresh: its {what} differ" in caplog.text
    assert "after epoch 3" in caplog.text and "resuming" not in caplog.text


def test_a_checkpoint_of_other_validation_data_is_discarded(tmp_path, monkeypatch, caplog):
    train_data, val_data = regression_data(300, 1), regression_data(100, 2)
    ckpt = _killed_after(tmp_path, monkeypatch, (train_data, val_data), epochs=2)
    train(make_model(), mse, train_data, regression_data(100, 3), CONFIG, checkpoint=ckpt)
    assert "its validation data differ" in caplog.text


def test_the_same_data_resumes(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO")
    data = regression_data(300, 1), regression_data(100, 2)
    ckpt = _killed_after(tmp_path, monkeypatch, data, epochs=3)
    copies = tuple(tuple(t.clone() for t in part) for part in data)  # equal content, new tensors
    result = train(make_model(), mse, *copies, CONFIG, checkpoint=ckpt)
    assert len(result.history) == CONFIG.max_epochs and "resuming after epoch 3" in caplog.text
    assert "discarding" not in caplog.text


def test_an_unreadable_checkpoint_is_discarded(tmp_path, caplog):
    data = regression_data(300, 1), regression_data(100, 2)
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"not a checkpoint")
    result = train(make_model(), mse, *data, CONFIG, checkpoint=ckpt)
    assert result.history[0]["epoch"] == 1 and "it cannot be read" in caplog.text
