"""One trainer for every model of the workflow (flows and classifiers).

AdamW, cosine annealing with warm restarts (stepped per batch, so restarts fall at fractional
epochs too), gradient-norm clipping, optionally a moving average of the weights (then the
average is what is validated, kept and returned), early stopping on the validation loss with the
best weights restored, a checkpoint after every epoch that a restarted job resumes from (only
if it was written with the same settings on the same data, compared by sha256), and a guard
that stops on a non-finite loss while keeping the last good checkpoint.

Reproducibility: the batch order of epoch ``e`` comes from a generator seeded with
``(seed, e)``, and the global RNG state (dropout) is checkpointed, so on CPU an interrupted and
resumed run ends bit-identical to an uninterrupted one.

Checkpoints hold only tensors, numbers, strings and lists: they load with
``torch.load(..., weights_only=True)`` and never unpickle code.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from flowsim.io import atomic_output, write_tsv

__all__ = [
    "HISTORY_COLUMNS",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "configure_torch",
    "evaluate",
    "resolve_device",
    "tensor_digest",
    "train",
    "write_history",
]

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, Sequence[Tensor]], Tensor]
Augment = Callable[[Sequence[Tensor], torch.Generator], Sequence[Tensor]]
OnEpoch = Callable[[int, nn.Module], None]

_CHECK_EVERY = 16  # batches between looks at the running loss for NaN/inf

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds", "events_per_s")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (keys of a run's config entry).

    ``restart_epochs`` is the first period of the warm restarts (T_0, in epochs), each next
    period ``restart_mult`` times longer; ``scheduler`` ``"constant"`` keeps ``lr`` fixed.
    ``device`` ``"auto"`` takes CUDA when present, else the CPU. ``average_epochs`` τ > 0 keeps
    an exponential moving average of the weights with a time constant of τ epochs (see
    :class:`_WeightAverage`); 0 trains without one.
    """

    lr: float = 1e-3
    weight_decay: float = 1e-6
    batch_size: int = 1024
    max_epochs: int = 100
    patience: int = 10
    scheduler: str = "cosine_restarts"
    restart_epochs: float = 10.0
    restart_mult: int = 1
    min_lr: float = 1e-6
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    eval_batch_size: int = 65536
    average_epochs: float = 0.0

    def __post_init__(self) -> None:
        positive = ("lr", "batch_size", "max_epochs", "restart_epochs", "grad_clip", "eval_batch_size")
        for key in positive:
            if not getattr(self, key) > 0:
                raise ValueError(f"training setting '{key}' must be positive, got {getattr(self, key)}")
        if not self.average_epochs >= 0:
            raise ValueError(f"training setting 'average_epochs' must be >= 0, got {self.average_epochs}")
        if self.patience < 1:
            raise ValueError(f"training setting 'patience' must be at least 1, got {self.patience}")
        if self.scheduler not in ("cosine_restarts", "constant"):
            raise ValueError(
                f"training setting 'scheduler' must be 'cosine_restarts' or 'constant', got {self.scheduler!r}"
            )


@dataclass
class TrainResult:
    """What training produced: the model holds the best weights when this is returned."""

    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)


def configure_torch(threads: int) -> None:
    """Settings of every torch job: ``threads`` intra-op threads, denormals flushed to zero.

    Subnormal floats (below ~1e-38 in float32) are processed tens of times slower by x86 CPUs;
    flushing them to zero changes nothing that matters to these models and was measured to
    halve the sampling time of a paper-sized MAF on the CPU.
    """
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA if available, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{device}' was asked for but CUDA is not available here")
    return resolved


def tensor_digest(tensors: Sequence[Tensor]) -> str:
    """sha256 of the dtypes, shapes and bytes of ``tensors`` (moved to the CPU to be read)."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _fingerprint(
    config: TrainConfig, extra: dict[str, Any], train_data: Sequence[Tensor], val_data: Sequence[Tensor]
) -> dict[str, str]:
    """Identifies a training set-up: its settings and the content of the data it trains and
    validates on. A checkpoint is only resumed by the same set-up; each part is kept, so a
    discarded checkpoint can say what changed."""
    settings = json.dumps({"train": asdict(config), **extra}, sort_keys=True, default=str)
    return {
        "settings": hashlib.sha256(settings.encode()).hexdigest()[:16],
        "training data": tensor_digest(train_data)[:16],
        "validation data": tensor_digest(val_data)[:16],
    }


def _batches(n: int, batch_size: int, seed: int, epoch: int, device: torch.device) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator).to(device)
    # drop a last batch smaller than half a batch: batch-norm layers dislike tiny batches
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < batch_size // 2:
        batches.pop()
    return batches


def _augment_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    # a stream of its own (not the batch order's, not the global one that dropout draws from)
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch + 500_009)


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: LossFn, data: Sequence[Tensor], batch_size: int) -> float:
    """Mean loss over ``data`` in eval mode, weighted by batch size."""
    model.eval()
    n = len(data[0])
    total = 0.0
    for start in range(0, n, batch_size):
        batch = [t[start : start + batch_size] for t in data]
        total += float(loss_fn(model, batch)) * len(batch[0])
    return total / n


class _WeightAverage:
    """Exponential moving average of a model's floating-point state (parameters and buffers).

    After optimisation step t the average is ā_t = β_t ā_{t−1} + (1 − β_t) w_t with
    β_t = min(β, (t − 1)/t) and β = exp(−1/(τ · steps per epoch)): the plain mean of all steps
    so far until that reaches β, then an average over the last ~τ epochs. The average sits in
    a copy of the model, so it is validated and saved like the model itself; integer buffers
    (batch counts) are copied as they are.
    """

    def __init__(self, model: nn.Module, epochs: float, steps_per_epoch: int) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.beta = math.exp(-1.0 / (epochs * steps_per_epoch))
        self.steps = 0
        self._pairs = list(
            zip(self.module.state_dict(keep_vars=True).values(), model.state_dict(keep_vars=True).values())
        )

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        weight = 1.0 - min(self.beta, (self.steps - 1) / self.steps)
        for average, live in self._pairs:
            if average.is_floating_point():
                average.lerp_(live, weight)
            else:
                average.copy_(live)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.steps = int(state["steps"])


class _Checkpoint:
    """Epoch checkpoints in one file, replaced atomically, with the best weights alongside."""

    def __init__(self, path: Path | None, fingerprint: dict[str, str]) -> None:
        self.path = path
        self.fingerprint = fingerprint

    def load(self, device: torch.device) -> dict[str, Any] | None:
        """The checkpoint's state if it was written by this set-up; any other one is removed
        with a log line saying why."""
        if self.path is None or not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location=device, weights_only=True)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:
            return self._discard(f"it cannot be read ({exc})")
        stored = state.get("fingerprint") if isinstance(state, dict) else None
        if stored == self.fingerprint:
            return state
        if not isinstance(stored, dict):
            return self._discard("it was written by an earlier version, which did not record its data")
        changed = [part for part in self.fingerprint if stored.get(part) != self.fingerprint[part]]
        return self._discard(
            f"its {' and '.join(changed)} differ from this job's (after epoch {state.get('epoch')})"
        )

    def _discard(self, reason: str) -> None:
        log.warning("discarding the checkpoint %s and starting afresh: %s", self.path, reason)
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def save(self, state: dict[str, Any]) -> None:
        if self.path is None:
            return
        with atomic_output(self.path, suffix=".pt") as tmp:
            torch.save({**state, "fingerprint": self.fingerprint}, tmp)


def train(
    model: nn.Module,
    loss_fn: LossFn,
    train_data: Sequence[Tensor],
    val_data: Sequence[Tensor],
    config: TrainConfig,
    *,
    name: str = "model",
    checkpoint: str | os.PathLike[str] | None = None,
    fingerprint_extra: dict[str, Any] | None = None,
    augment: Augment | None = None,
    on_epoch: OnEpoch | None = None,
) -> TrainResult:
    """Train ``model`` to minimise ``loss_fn(model, batch)``; restore and return the best epoch.

    ``train_data``/``val_data`` are tuples of tensors with events along dim 0 (e.g. ``(x,)``
    for a flow, ``(x, w̃)`` for one trained on weighted events, ``(x, y)`` for a classifier),
    moved to the model's device by the caller or here. ``checkpoint`` names the file written
    after each epoch; if it exists and was made by
    the same set-up (``config``, ``fingerprint_extra``, e.g. the model's hyperparameters, and
    the content of ``train_data`` and ``val_data``, by sha256), training resumes from it; a
    checkpoint of any other set-up is removed with a log line naming what differs.
    ``augment(batch, generator)``, if given, maps every training batch (never the validation
    data) at random, drawing from a generator seeded per epoch, so that a resumed run stays
    reproducible (e.g.
    :class:`~flowsim.flows.symmetry.RandomSignFlip`). With ``config.average_epochs`` > 0 the
    weight average is validated instead of the live weights, and the best average is returned.
    ``on_epoch(epoch, validated_model)``, if given, sees the validated weights after each epoch
    (e.g. to score them by another criterion); it runs with the RNG states forked, so whatever
    it draws leaves the training bit-identical, and it must not change the weights.

    Raises :class:`NonFiniteLossError` naming ``name`` and the epoch if the loss becomes NaN or
    infinite; the checkpoint then still holds the last good epoch.
    """
    device = next(model.parameters()).device
    train_data = [t.to(device) for t in train_data]
    val_data = [t.to(device) for t in val_data]
    n_train = len(train_data[0])
    if n_train == 0 or len(val_data[0]) == 0:
        raise ValueError(f"{name}: empty training or validation data")

    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = len(_batches(n_train, config.batch_size, config.seed, 0, torch.device("cpu")))
    scheduler = _make_scheduler(optimizer, config, steps_per_epoch)
    step_fn = torch.compile(model) if config.compile else model
    average = _WeightAverage(model, config.average_epochs, steps_per_epoch) if config.average_epochs > 0 else None
    validated = average.module if average is not None else model

    ckpt = _Checkpoint(
        Path(checkpoint) if checkpoint is not None else None,
        _fingerprint(config, fingerprint_extra or {}, train_data, val_data) if checkpoint is not None else {},
    )
    state = ckpt.load(device)
    history: list[dict[str, float]] = []
    best = {"epoch": 0, "val_loss": math.inf, "weights": copy.deepcopy(model.state_dict())}
    start_epoch, stale = 1, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"].cpu())
        if average is not None:
            average.load_state_dict(state["average"])
        history = state["history"]
        best = {"epoch": state["best_epoch"], "val_loss": state["best_val_loss"], "weights": state["best_model"]}
        start_epoch, stale = state["epoch"] + 1, state["stale"]
        log.info("%s: resuming after epoch %d from %s", name, state["epoch"], ckpt.path)

    epoch = start_epoch - 1
    while epoch < config.max_epochs and stale < config.patience:
        epoch += 1
        started = time.perf_counter()
        model.train()
        total = torch.zeros((), device=device)
        seen = 0
        augment_rng = _augment_generator(config.seed, epoch, device) if augment is not None else None
        for i, index in enumerate(_batches(n_train, config.batch_size, config.seed, epoch, device)):
            batch = [t[index] for t in train_data]
            if augment is not None:
                batch = list(augment(batch, augment_rng))
            loss = loss_fn(step_fn, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if average is not None:
                average.update()
            total += loss.detach() * len(index)
            seen += len(index)
            # a host sync per batch would stall a GPU: look at the running sum now and then
            if i % _CHECK_EVERY == 0 and not torch.isfinite(total):
                _raise_non_finite(name, "training", float(total), epoch, ckpt.path)
        train_loss = float(total) / seen
        if not math.isfinite(train_loss):
            _raise_non_finite(name, "training", train_loss, epoch, ckpt.path)
        val_loss = evaluate(validated, loss_fn, val_data, config.eval_batch_size)
        if not math.isfinite(val_loss):
            _raise_non_finite(name, "validation", val_loss, epoch, ckpt.path)
        seconds = time.perf_counter() - started
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "events_per_s": seen / seconds,
        }
        history.append(row)
        if val_loss < best["val_loss"]:
            best = {"epoch": epoch, "val_loss": val_loss, "weights": copy.deepcopy(validated.state_dict())}
            stale = 0
        else:
            stale += 1
        log.info(
            "%s epoch %3d/%d  train %.5f  val %.5f%s  lr %.2e  %.0f events/s  %.1f s",
            name, epoch, config.max_epochs, row["train_loss"], val_loss,
            " *" if stale == 0 else "  ", row["lr"], row["events_per_s"], seconds,
        )  # fmt: skip
        if on_epoch is not None:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                on_epoch(epoch, validated)
        ckpt.save(
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "rng": torch.get_rng_state(),
                "history": history,
                "best_epoch": best["epoch"],
                "best_val_loss": best["val_loss"],
                "best_model": best["weights"],
                "stale": stale,
                **({"average": average.state_dict()} if average is not None else {}),
            }
        )

    model.load_state_dict(best["weights"])
    model.eval()
    stopped_early = stale >= config.patience
    log.info(
        "%s: best validation loss %.5f at epoch %d of %d%s",
        name, best["val_loss"], best["epoch"], epoch,
        " (early stop)" if stopped_early else "",
    )  # fmt: skip
    return TrainResult(best["epoch"], best["val_loss"], epoch, stopped_early, history)


def _raise_non_finite(name: str, which: str, value: float, epoch: int, path: Path | None) -> None:
    kept = f"{path} (epoch {epoch - 1})" if path is not None and epoch > 1 else "none"
    raise NonFiniteLossError(
        f"{name}: the {which} loss became {value} in epoch {epoch}; last good checkpoint: {kept}"
    )


def _make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if config.scheduler == "constant":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer,
        T_0=max(1, round(config.restart_epochs * steps_per_epoch)),
        T_mult=config.restart_mult,
        eta_min=config.min_lr,
    )


def write_history(path: str | os.PathLike[str], history: Sequence[dict[str, float]]) -> None:
    """Write the per-epoch history as a TSV with :data:`HISTORY_COLUMNS`."""
    write_tsv(path, history, HISTORY_COLUMNS)
