"""The jobs of the flow stage, called by the workflow's scripts: train a run, sample a run."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import torch

from flowsim import io
from flowsim.data.scaling import load_scaler
from flowsim.data.splits import nested_subset
from flowsim.flows.persist import load_flow, save_flow
from flowsim.flows.registry import build_flow
from flowsim.flows.symmetry import RandomSignFlip, SignFlipMixture, signs_of, with_mirror_images
from flowsim.plots.training import plot_history
from flowsim.runs import RunSpec, n_generated_events
from flowsim.sampling import generate_to_root
from flowsim.training import evaluate, resolve_device, train, write_history

__all__ = ["negative_log_likelihood", "sample_flow_job", "train_flow_job"]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def negative_log_likelihood(flow: torch.nn.Module, batch) -> torch.Tensor:
    """Mean NLL per event (nats, in the scaled space): the flows' training loss."""
    return -flow(batch[0]).mean()


def _scaled_tensor(path: PathLike, scaler, device: torch.device) -> torch.Tensor:
    x = scaler.transform(io.read_matrix(path, list(scaler.features)))
    return torch.from_numpy(x).to(device)


def _training_subset(x_train: torch.Tensor, spec: RunSpec) -> torch.Tensor:
    """The run's ``train_events`` of the training split, drawn with its training seed.

    Subsets are nested (see :func:`~flowsim.data.splits.nested_subset`): for one seed, the
    events of a smaller training set are part of every larger one, so a training-size study
    adds events instead of drawing new ones; over seeds, the spread includes the draw.
    """
    n = len(x_train)
    if spec.train_events > n:
        raise ValueError(
            f"run {spec.name}: train_events = {spec.train_events} but the background training "
            f"split has only {n} events; lower flows.{spec.name}.train_events or use null (all)"
        )
    keep = nested_subset(n, spec.train_events, seed=spec.training.seed)
    log.info("run %s: training on %d of the %d training events", spec.name, len(keep), n)
    return x_train[torch.from_numpy(keep).to(x_train.device)]


def train_flow_job(
    spec: RunSpec,
    *,
    train_events: PathLike,
    val_events: PathLike,
    scaler_path: PathLike,
    model_out: PathLike,
    history_out: PathLike,
    plot_out: PathLike,
    checkpoint: PathLike,
) -> None:
    """Train run ``spec`` on the scaled background splits; write model, history and plot.

    If the scaler is odd in some features (config ``symmetry.flip_signs``), the flow learns
    that sign-flip symmetry (:mod:`flowsim.flows.symmetry`): training events are flipped at
    random, early stopping watches the validation split and its mirror image, and the saved
    model is the symmetric mixture. Its ``val_nll`` is that mixture's on the validation split.

    The per-epoch ``checkpoint`` lets a killed job resume; it is removed once the model is
    written.
    """
    device = resolve_device(spec.training.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls: ~free accuracy-wise here
        torch.backends.cudnn.allow_tf32 = True
    scaler = load_scaler(scaler_path)
    features = list(scaler.features)
    x_train = _scaled_tensor(train_events, scaler, device)
    if spec.train_events is not None:
        x_train = _training_subset(x_train, spec)
    x_val = _scaled_tensor(val_events, scaler, device)
    flipped = list(scaler.odd_features)
    signs = signs_of(features, flipped).to(device)
    log.info(
        "run %s: %s %s on %d features, %d training / %d validation events, device %s",
        spec.name, spec.model, spec.params, len(features), len(x_train), len(x_val), device,
    )  # fmt: skip
    torch.manual_seed(spec.training.seed)
    flow = build_flow(spec.model, len(features), **spec.params).to(device)
    log.info("run %s: %d parameters", spec.name, sum(p.numel() for p in flow.parameters()))
    if flipped:
        log.info("run %s: symmetric under the sign flip of %s", spec.name, ", ".join(flipped))
    result = train(
        flow,
        negative_log_likelihood,
        (x_train,),
        (with_mirror_images(x_val, signs) if flipped else x_val,),
        spec.training,
        name=spec.name,
        checkpoint=checkpoint,
        fingerprint_extra={
            "model": spec.model,
            "params": spec.params,
            "features": features,
            "sign_flip": flipped,
        },  # the events themselves are fingerprinted by train(), by content
        augment=RandomSignFlip(signs) if flipped else None,
    )
    val_nll = result.best_val_loss
    if flipped:
        mixture = SignFlipMixture(flow, signs)
        val_nll = evaluate(mixture, negative_log_likelihood, (x_val,), spec.training.eval_batch_size)
        log.info(
            "run %s: validation NLL %.5f of the symmetric mixture (%.5f of the flow alone, "
            "on the split and its mirror image)", spec.name, val_nll, result.best_val_loss,
        )  # fmt: skip
    save_flow(
        model_out,
        flow,
        model=spec.model,
        params=spec.params,
        features=features,
        metadata={
            "run": spec.name,
            "best_epoch": result.best_epoch,
            "val_nll": val_nll,
            "epochs_run": result.epochs_run,
            "n_train": len(x_train),
            "training": asdict(spec.training),
        },
        sign_flip=flipped,
    )
    write_history(history_out, result.history)
    plot_history(result.history, plot_out, title=f"{spec.name} ({spec.model})", ylabel="NLL per event [nats]")
    Path(checkpoint).unlink(missing_ok=True)


def sample_flow_job(
    *,
    run: str,
    model_path: PathLike,
    scaler_path: PathLike,
    reference_events: PathLike,
    n_generated: int | str,
    out: PathLike,
    timing_out: PathLike,
    chunk_size: int,
    seed: int,
    device: str,
    max_nonfinite_fraction: float = 1e-3,
) -> None:
    """Generate events from a trained run into ``out`` and its timing into ``timing_out``.

    Fails, writing neither, when more than ``max_nonfinite_fraction`` of the events are
    non-finite or none is finite (:class:`~flowsim.sampling.NonFiniteSampleError`).
    """
    flow, info = load_flow(model_path, resolve_device(device))
    scaler = load_scaler(scaler_path)
    if list(scaler.features) != info["features"]:
        raise ValueError(
            f"{model_path} was trained on {info['features']}, the scaler {scaler_path} maps "
            f"{list(scaler.features)}"
        )
    if not set(info["sign_flip"]) <= set(scaler.odd_features):
        raise ValueError(
            f"{model_path} flips the signs of {info['sign_flip']}, but the scaler {scaler_path} "
            f"is odd only in {list(scaler.odd_features)}: refit the scaler with that symmetry"
        )
    n = n_generated_events(n_generated, io.root_entries(reference_events))
    log.info("sampling %d events from %s (%s)", n, model_path, info["model"])
    report = generate_to_root(
        flow, scaler, n, out, chunk_size=chunk_size, seed=seed,
        max_nonfinite_fraction=max_nonfinite_fraction, name=f"run {run}",
    )  # fmt: skip
    io.write_tsv(timing_out, [report.as_row()], list(report.as_row()))
