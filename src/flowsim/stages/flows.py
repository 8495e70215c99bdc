"""The flow stage (``workflow/rules/flows.smk``): train a run, sample a run.

* :func:`train_flow`: fit one run's flow to the scaled background training split, with early
  stopping on the validation split; write the model, its history and the loss curve.
* :func:`sample_flow`: draw a run's generated events (in data units) into a ROOT file, with
  the sampling speed and the count of non-finite events.
* :func:`fill_templates`: draw many more of them, score, cut and histogram them on the fly
  into the run's binned templates (no event file), with their cut flow and throughput.
* :func:`fill_signal_templates`: the same at label 1 of a run conditioned on the label, the
  signal's templates from its flow.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from flowsim import io
from flowsim.conditioning import build_run_flow, saved_params
from flowsim.data.scaling import Scaler, load_scaler
from flowsim.data.splits import nested_subset
from flowsim.discflow import feedback_loop, flow_sampler
from flowsim.flows.bayesian import elbo_loss, is_bayesian
from flowsim.flows.conditional import FixedContext
from flowsim.flows.persist import load_flow, save_flow
from flowsim.flows.symmetry import RandomSignFlip, SignFlipMixture, signs_of, with_mirror_images
from flowsim.runs import RunSpec, bootstrap_multiplicities, n_generated_events
from flowsim.sampling import GeneratedChunks, SamplingReport, generate_to_root
from flowsim.stages import PathLike
from flowsim.training import TrainResult, configure_torch, evaluate, resolve_device, train, write_history
from flowsim.weights import WeightError, check_weights, normalised, weight_summary

if TYPE_CHECKING:
    from flowsim.analysis.filling import FilledTemplates

__all__ = [
    "FillTemplatesOutputs",
    "SampleFlowOutputs",
    "TrainFlowOutputs",
    "TrainedFlow",
    "fill_signal_templates",
    "fill_templates",
    "negative_log_likelihood",
    "reference_quantile_edges",
    "sample_flow",
    "train_flow",
    "train_flow_model",
    "write_trained_flow",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainFlowOutputs:
    """The outputs of rule ``train_flow``."""

    model: PathLike
    history: PathLike
    loss: PathLike


@dataclass(frozen=True)
class SampleFlowOutputs:
    """The outputs of rule ``sample_flow``."""

    events: PathLike
    timing: PathLike


@dataclass(frozen=True)
class FillTemplatesOutputs:
    """The outputs of rule ``fill_templates``."""

    templates: PathLike
    summary: PathLike


@dataclass(frozen=True)
class TrainedFlow:
    """A trained run: the flow at its best epoch and what the model file records about it.

    ``val_nll`` is that of the sampled model: the flow, or with a sign-flip symmetry its
    symmetric mixture (:class:`~flowsim.flows.symmetry.SignFlipMixture`). ``feedback`` is the
    record of the classifier-feedback rounds (:func:`flowsim.discflow.feedback_loop`), None
    without them; ``result`` then chains the training and its rounds (see :func:`_chained`).
    """

    spec: RunSpec
    flow: torch.nn.Module
    features: list[str]
    sign_flip: list[str]
    result: TrainResult
    val_nll: float
    n_train: int
    feedback: dict | None = None


def negative_log_likelihood(flow: torch.nn.Module, batch) -> torch.Tensor:
    """Mean NLL per event (nats, in the scaled space): the flows' training loss.

    A weighted batch ``(x, w̃)`` gives ``mean(w̃ᵢ · (−log p(xᵢ)))`` with ``w̃ = w / mean(w)`` over
    the whole split (:func:`flowsim.weights.normalised`): summed over the split's batches that is
    the weighted likelihood's ``−Σ wᵢ log p(xᵢ) / Σ wᵢ``, which
    :func:`~flowsim.training.evaluate`'s batch-size-weighted mean gives exactly.
    """
    log_p = flow(batch[0])
    if len(batch) > 1:
        log_p = batch[1] * log_p
    return -log_p.mean()


def _own_training_loss(flow: torch.nn.Module, batch) -> torch.Tensor:
    """The loss of a family that does not train on the likelihood (``cfm``: flow matching),
    on batches ``(x,)`` or ``(x, w̃)`` as :func:`negative_log_likelihood`'s."""
    return flow.training_loss(batch)


def _scaled_tensor(path: PathLike, scaler: Scaler, device: torch.device) -> torch.Tensor:
    x = scaler.transform(io.read_matrix(path, list(scaler.features)))
    return torch.from_numpy(x).to(device)


def _training_subset(
    x_train: torch.Tensor, spec: RunSpec, weights: np.ndarray | None = None
) -> tuple[torch.Tensor, np.ndarray | None]:
    """The run's ``train_events`` of the training split, drawn with its training seed, and
    their event weights (None for an unweighted split).

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
    return x_train[torch.from_numpy(keep).to(x_train.device)], None if weights is None else weights[keep]


def _bootstrap_replica(
    x_train: torch.Tensor, spec: RunSpec, weights: np.ndarray | None = None
) -> tuple[torch.Tensor, np.ndarray | None]:
    """The training events repeated by their Poisson(1) multiplicities
    (:func:`~flowsim.runs.bootstrap_multiplicities`, seeded with the run's training seed), with
    their event weights repeated alike (None for an unweighted split).

    Repeating rows is the bootstrap exactly: an event drawn k times weighs k (k·w if weighted)
    in every epoch's loss, as Poisson(1) weights would, and the training loop needs no more."""
    counts = bootstrap_multiplicities(len(x_train), spec.training.seed)
    repeated = np.repeat(np.arange(len(x_train)), counts)
    index = torch.from_numpy(repeated).to(x_train.device)
    log.info(
        "run %s: bootstrap replica of %d events (%d distinct of %d, largest multiplicity %d)",
        spec.name, len(index), int(np.count_nonzero(counts)), len(x_train), int(counts.max(initial=0)),
    )  # fmt: skip
    return x_train[index], None if weights is None else weights[repeated]


def _split_weights(train_events: PathLike, val_events: PathLike) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The event weights of the training and validation splits (:func:`flowsim.io.read_weights`,
    which refuses a file whose weights do not sum to a positive number), both None if unweighted."""
    w_train, w_val = io.read_weights(train_events), io.read_weights(val_events)
    if (w_train is None) != (w_val is None):
        weighted, plain = (train_events, val_events) if w_val is None else (val_events, train_events)
        raise WeightError(
            f"{weighted} has event weights but {plain} has none: the splits of one sample are "
            "weighted alike; remake the splits"
        )
    if w_val is not None:
        weight_summary(w_val, name=str(val_events))
    return w_train, w_val


def _weight_tensor(weights: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``weights / mean(weights)`` (the batches' plain means are then weighted means over the
    split, see :func:`negative_log_likelihood`) in the dtype and on the device of ``like``."""
    return torch.from_numpy(normalised(weights)).to(device=like.device, dtype=like.dtype)


def _with_context(loss_fn: Callable) -> Callable:
    """``loss_fn`` on batches whose last tensor holds each event's context: the loss of the
    conditional flow at those contexts (:class:`~flowsim.flows.conditional.FixedContext`)."""

    def loss(flow: torch.nn.Module, batch) -> torch.Tensor:
        *events, context = batch
        return loss_fn(FixedContext(flow, context), events)

    return loss


def _labelled(
    background: tuple[torch.Tensor, ...], signal: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, ...]:
    """The background and signal events (with their weights, if any) as one set, with the
    label as the last tensor: 0 for background, 1 for signal."""
    x_b, x_s = background[0], signal[0]
    label = torch.cat([x_b.new_zeros(len(x_b), 1), x_s.new_ones(len(x_s), 1)])
    return (*(torch.cat([b, s]) for b, s in zip(background, signal, strict=True)), label)


def train_flow_model(
    spec: RunSpec,
    *,
    train_events: PathLike,
    val_events: PathLike,
    scaler: PathLike,
    checkpoint: PathLike,
    signal_train: PathLike | None = None,
    signal_val: PathLike | None = None,
) -> TrainedFlow:
    """Train run ``spec`` on the scaled background splits.

    If the scaler is odd in some features (config ``symmetry.flip_signs``), the flow learns
    that sign-flip symmetry (:mod:`flowsim.flows.symmetry`): training events are flipped at
    random, early stopping watches the validation split and its mirror image, and the model is
    the symmetric mixture.

    Weighted splits (a :data:`~flowsim.io.WEIGHT` branch) train on the weighted likelihood,
    ``−Σ wᵢ log p(xᵢ) / Σ wᵢ`` (:func:`negative_log_likelihood`), and validate on it; the
    weights follow the events into the training subset, the bootstrap replica and the mirror
    images. Their sum must be positive (:class:`~flowsim.weights.WeightError` naming the file).

    A Bayesian flow (``params.bayesian``, :mod:`flowsim.flows.bayesian`) trains on the negative
    ELBO per event, mean NLL + KL / N with N the number of training events
    (:func:`~flowsim.flows.bayesian.elbo_loss`; the history's ``train_loss`` is that), and
    validates, stops early and keeps the best epoch on the NLL of its mean weights: a
    deterministic number (one draw would make the stopping follow the draw's noise, and the KL
    does not depend on the validation events), comparable with the deterministic runs' and with
    the flow that is sampled by default.

    A run with ``feedback`` (:mod:`flowsim.discflow`) goes on after that training for
    ``feedback.rounds`` rounds: a classifier of the training events against a sample of the
    flow (the symmetric mixture, with a symmetry) gives w_D = D/(1 − D) ≈ p_data/p_flow, and the
    flow is fine-tuned from its current weights, with the run's training settings, on the
    training and validation events weighted by w_D^α (:func:`negative_log_likelihood` of the
    batches ``(x, w̃)``); each round has its own checkpoint next to ``checkpoint``
    (:func:`feedback_checkpoint`). Only the training and validation splits are used. The
    model's ``val_nll`` is then the unweighted NLL of the final flow on the validation split.

    A label-conditioned run (``condition: label``, :mod:`flowsim.conditioning`) trains one flow
    with the label as its context on the background and the signal splits together (each event
    its label; the signal subset, bootstrap and weights drawn as the background's), and stops
    early on both validation splits; its ``val_nll`` is the background's at label 0, the model
    that is sampled. A feature-conditioned run trains its
    :class:`~flowsim.flows.conditional.FeatureConditioned` density on the likelihood like any
    flow.

    Arguments:
        spec: The run.
        train_events: The background training split (ROOT).
        val_events: The background validation split (ROOT).
        scaler: The scaler fitted on the training split (``results/data/scaler.npz``).
        checkpoint: The per-epoch checkpoint that lets a killed job resume.
        signal_train, signal_val: The signal training and validation splits, for a
            label-conditioned run only.

    Returns:
        The flow at its best epoch, with its training history.
    """
    device = resolve_device(spec.training.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls: ~free accuracy-wise here
        torch.backends.cudnn.allow_tf32 = True
    scaler_obj = load_scaler(scaler)
    features = list(scaler_obj.features)
    train_data, val_data = _class_splits(spec, train_events, val_events, scaler_obj, device)
    x_train, x_val = train_data[0], val_data[0]
    if spec.feedback is not None and len(train_data) > 1:
        # the classifier would have to learn the weighted density (negative weights included)
        raise WeightError(
            f"run {spec.name}: flows.{spec.name}.feedback needs unweighted splits, but {train_events} "
            "has event weights; remove the run's feedback"
        )
    flipped = list(scaler_obj.odd_features)
    signs = signs_of(features, flipped).to(device)
    log.info(
        "run %s: %s %s on %d features, %d training / %d validation events, device %s",
        spec.name, spec.model, spec.params, len(features), len(x_train), len(x_val), device,
    )  # fmt: skip
    background_val = val_data
    by_label = spec.condition is not None and spec.condition.by_label
    if by_label:
        train_data, val_data = _with_signal(spec, train_data, val_data, signal_train, signal_val, scaler_obj)
    elif signal_train is not None or signal_val is not None:
        raise ValueError(f"run {spec.name}: signal splits given, but the run is not conditioned on the label")
    n_train = len(train_data[0])
    torch.manual_seed(spec.training.seed)
    flow = build_run_flow(spec.model, spec.params, features, spec.condition).to(device)
    log.info("run %s: %d parameters", spec.name, sum(p.numel() for p in flow.parameters()))
    if spec.condition is not None and not by_label:
        log.info("run %s: %s from its own 1-D %s, the other features conditioned on it", spec.name,
                 spec.condition.given, spec.condition.marginal["model"])  # fmt: skip
    if flipped:
        log.info("run %s: symmetric under the sign flip of %s", spec.name, ", ".join(flipped))
    # a flow-matching run trains (and stops early) on its own loss; its NLL is computed after
    own_loss = getattr(flow, "training_loss", None)
    loss_fn = elbo_loss(n_train) if is_bayesian(flow) else negative_log_likelihood
    if own_loss is not None:
        loss_fn = _own_training_loss
    if by_label:
        loss_fn = _with_context(loss_fn)

    def fit(train_data: tuple, val_data: tuple, checkpoint: PathLike, **extra) -> TrainResult:
        """Train the flow from its current weights on ``train_data``, stopping on ``val_data``."""
        stop_data = val_data
        if flipped:  # early stopping on the split and its mirror image, each image with its event's weight
            stop_data = (with_mirror_images(val_data[0], signs), *[torch.cat([w, w]) for w in val_data[1:]])
        return train(
            flow,
            loss_fn,
            train_data,
            stop_data,
            spec.training,
            name=spec.name,
            checkpoint=checkpoint,
            fingerprint_extra={
                "model": spec.model,
                "params": spec.params,
                "features": features,
                "sign_flip": flipped,
                **({"condition": spec.condition.as_params()} if spec.condition is not None else {}),
                **extra,
            },  # the events themselves are fingerprinted by train(), by content
            augment=RandomSignFlip(signs) if flipped else None,
        )

    result = fit(train_data, val_data, checkpoint)
    background = FixedContext(flow, torch.zeros(1, device=device)) if by_label else flow
    sampled = SignFlipMixture(background, signs) if flipped else background
    feedback = None
    if spec.feedback is not None:
        result, feedback = _train_with_feedback(spec, sampled, fit, x_train, x_val, result, checkpoint)
        val_nll = feedback["rounds"][-1]["val_nll"]  # the unweighted NLL after the last fine-tune
        log.info("run %s: validation NLL %.5f after %d feedback round(s)", spec.name, val_nll, spec.feedback.rounds)
        return TrainedFlow(spec, flow, features, flipped, result, val_nll, n_train, feedback)
    if by_label:
        val_nll = evaluate(sampled, negative_log_likelihood, background_val, spec.training.eval_batch_size)
        log.info(
            "run %s: validation NLL %.5f of the background at label 0 (%.5f %s of background and signal)",
            spec.name, val_nll, result.best_val_loss, "flow-matching loss" if own_loss is not None else "NLL",
        )  # fmt: skip
        return TrainedFlow(spec, flow, features, flipped, result, val_nll, n_train)
    val_nll = result.best_val_loss
    if flipped:
        mixture = SignFlipMixture(flow, signs)
        val_nll = evaluate(mixture, negative_log_likelihood, val_data, spec.training.eval_batch_size)
        log.info(
            "run %s: validation NLL %.5f of the symmetric mixture (%.5f %s of the flow alone, "
            "on the split and its mirror image)", spec.name, val_nll, result.best_val_loss,
            "flow-matching loss" if own_loss is not None else "NLL",
        )  # fmt: skip
    elif own_loss is not None:
        val_nll = evaluate(flow, negative_log_likelihood, val_data, spec.training.eval_batch_size)
        log.info("run %s: validation NLL %.5f (by the divergence along the ODE)", spec.name, val_nll)
    return TrainedFlow(spec, flow, features, flipped, result, val_nll, n_train)


def _class_splits(
    spec: RunSpec, train_events: PathLike, val_events: PathLike, scaler: Scaler, device: torch.device
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """One class's training and validation sets as run ``spec`` trains on them: scaled, the
    training split cut to the run's subset and bootstrap replica, each ``(x,)`` or, weighted,
    ``(x, w̃)`` (:func:`_weight_tensor`). A training subset whose weights do not sum to a positive
    number is refused (the file's sum is positive, a subset's need not be)."""
    x_train = _scaled_tensor(train_events, scaler, device)
    w_train, w_val = _split_weights(train_events, val_events)
    if spec.train_events is not None:
        x_train, w_train = _training_subset(x_train, spec, w_train)
    if spec.bootstrap:
        x_train, w_train = _bootstrap_replica(x_train, spec, w_train)
    x_val = _scaled_tensor(val_events, scaler, device)
    if w_train is None:
        return (x_train,), (x_val,)
    used = f"{train_events} (the {len(w_train)} events run {spec.name} trains on)"
    weight_summary(check_weights(w_train, len(x_train), name=used), name=used)
    return (x_train, _weight_tensor(w_train, x_train)), (x_val, _weight_tensor(w_val, x_val))


def _with_signal(
    spec: RunSpec,
    train_data: tuple[torch.Tensor, ...],
    val_data: tuple[torch.Tensor, ...],
    signal_train: PathLike | None,
    signal_val: PathLike | None,
    scaler: Scaler,
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The training and validation sets of a label-conditioned run: the background's
    ``train_data``/``val_data`` and the signal splits (:func:`_class_splits`, with the
    background's scaler), each event with its label (:func:`_labelled`)."""
    if signal_train is None or signal_val is None:
        raise ValueError(f"run {spec.name} is conditioned on the label: give the signal training and validation splits")
    signal_train_data, signal_val_data = _class_splits(spec, signal_train, signal_val, scaler, train_data[0].device)
    if len(signal_train_data) != len(train_data):
        raise WeightError(f"{signal_train}: the signal and background splits must both be weighted or both not")
    log.info("run %s: with the label as context, plus %d signal training / %d validation events", spec.name,
             len(signal_train_data[0]), len(signal_val_data[0]))  # fmt: skip
    return _labelled(train_data, signal_train_data), _labelled(val_data, signal_val_data)


def feedback_checkpoint(checkpoint: PathLike, round_: int) -> Path:
    """The checkpoint of feedback round ``round_`` next to the training's ``checkpoint``
    (``checkpoint.feedback1.pt``, ...): each round resumes from its own."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}.feedback{round_}{path.suffix}")


def _train_with_feedback(
    spec: RunSpec,
    sampled: torch.nn.Module,
    fit: Callable[..., TrainResult],
    x_train: torch.Tensor,
    x_val: torch.Tensor,
    result: TrainResult,
    checkpoint: PathLike,
) -> tuple[TrainResult, dict]:
    """The DiscFlow rounds of run ``spec`` after its training (``result``): each fine-tunes by
    ``fit`` on the splits weighted by w_D^α, from the flow's current weights. Returns the
    training and its rounds chained (:func:`_chained`) and the rounds' record, each with the
    round's best epoch, its weighted validation loss and the unweighted validation NLL after it."""
    settings = spec.feedback
    results = [result]

    def fine_tune(round_: int, w_train: np.ndarray, w_val: np.ndarray) -> dict[str, float]:
        log.info("run %s: feedback round %d of %d, fine-tuning on w_D^%g", spec.name, round_, settings.rounds,
                 settings.alpha)  # fmt: skip
        weighted = fit(
            (x_train, _weight_tensor(w_train, x_train)),
            (x_val, _weight_tensor(w_val, x_val)),
            feedback_checkpoint(checkpoint, round_),
            feedback_round=round_,
            feedback=asdict(settings),
        )
        results.append(weighted)
        nll = evaluate(sampled, negative_log_likelihood, (x_val,), spec.training.eval_batch_size)
        log.info("run %s: feedback round %d: validation NLL %.5f (unweighted)", spec.name, round_, nll)
        return {
            "best_epoch": weighted.best_epoch,
            "epochs_run": weighted.epochs_run,
            "weighted_val_loss": weighted.best_val_loss,
            "val_nll": nll,
        }

    # the classifier works on the CPU in float32 anyway: no float64 copy of the training split
    record = feedback_loop(
        flow_sampler(sampled), x_train.detach().cpu().numpy(), x_val.detach().cpu().numpy(), settings, fine_tune,
        seed=spec.training.seed, name=f"run {spec.name}",
    )  # fmt: skip
    return _chained(results), record


def _chained(results: list[TrainResult]) -> TrainResult:
    """A training and its feedback rounds as one result: the epochs numbered on through the
    rounds (so the history and loss curve show them one after the other; a round's validation
    loss is its weighted one), the best epoch and loss those of the last round, which is kept."""
    history, offset = [], 0
    for result in results:
        history += [{**row, "epoch": row["epoch"] + offset} for row in result.history]
        offset += result.epochs_run
    last = results[-1]
    best_epoch = offset - last.epochs_run + last.best_epoch
    return TrainResult(best_epoch, last.best_val_loss, offset, last.stopped_early, history)


def write_trained_flow(trained: TrainedFlow, outputs: TrainFlowOutputs) -> None:
    """Write the model file, the per-epoch history and the loss curve of a trained run."""
    from flowsim.plots.training import plot_history

    spec, result = trained.spec, trained.result
    save_flow(
        outputs.model,
        trained.flow,
        model=spec.model,
        params=saved_params(spec.params, spec.condition),
        features=trained.features,
        metadata={
            "run": spec.name,
            "best_epoch": result.best_epoch,
            "val_nll": trained.val_nll,
            "epochs_run": result.epochs_run,
            "n_train": trained.n_train,
            "training": asdict(spec.training),
            **({"feedback": trained.feedback} if trained.feedback is not None else {}),
        },
        sign_flip=trained.sign_flip,
        condition=spec.condition.record() if spec.condition is not None else None,
    )
    write_history(outputs.history, result.history)
    own_loss = hasattr(trained.flow, "training_loss")
    ylabel = "flow-matching loss per feature" if own_loss else "NLL per event [nats]"
    plot_history(result.history, outputs.loss, title=f"{spec.name} ({spec.model})", ylabel=ylabel)


def train_flow(
    spec: RunSpec,
    outputs: TrainFlowOutputs,
    *,
    train_events: PathLike,
    val_events: PathLike,
    scaler: PathLike,
    checkpoint: PathLike,
    signal_train: PathLike | None = None,
    signal_val: PathLike | None = None,
    threads: int = 1,
) -> TrainedFlow:
    """Rule ``train_flow``: train run ``spec`` and write its outputs; the checkpoints (with the
    feedback rounds') are removed once they are written. ``signal_train``/``signal_val``: the
    signal splits of a label-conditioned run."""
    configure_torch(threads)
    trained = train_flow_model(
        spec, train_events=train_events, val_events=val_events, scaler=scaler, checkpoint=checkpoint,
        signal_train=signal_train, signal_val=signal_val,
    )  # fmt: skip
    write_trained_flow(trained, outputs)
    Path(checkpoint).unlink(missing_ok=True)
    for round_ in range(1, spec.feedback.rounds + 1 if spec.feedback is not None else 1):
        feedback_checkpoint(checkpoint, round_).unlink(missing_ok=True)
    return trained


def _checked_model(
    model: PathLike, scaler: PathLike, device: str, label: str | None = None
) -> tuple[torch.nn.Module, dict, Scaler]:
    """The flow of ``model`` (a label-conditioned one at ``label``) and the scaler, refused if
    they do not belong together."""
    flow, info = load_flow(model, resolve_device(device), label=label)
    scaler_obj = load_scaler(scaler)
    if list(scaler_obj.features) != info["features"]:
        raise ValueError(
            f"{model} was trained on {info['features']}, the scaler {scaler} maps "
            f"{list(scaler_obj.features)}"
        )
    if not set(info["sign_flip"]) <= set(scaler_obj.odd_features):
        raise ValueError(
            f"{model} flips the signs of {info['sign_flip']}, but the scaler {scaler} "
            f"is odd only in {list(scaler_obj.odd_features)}: refit the scaler with that symmetry"
        )
    return flow, info, scaler_obj


def sample_flow(
    outputs: SampleFlowOutputs,
    *,
    run: str,
    model: PathLike,
    scaler: PathLike,
    reference: PathLike,
    n_generated: int | str,
    chunk_size: int,
    seed: int,
    device: str,
    max_nonfinite_fraction: float = 1e-3,
    threads: int = 1,
) -> SamplingReport:
    """Rule ``sample_flow``: generate events from a trained run.

    The events are streamed to ``outputs.events`` chunk by chunk (they need not fit in memory),
    the timing row then goes to ``outputs.timing``. Fails, writing neither, when more than
    ``max_nonfinite_fraction`` of the events are non-finite or none is finite
    (:class:`~flowsim.sampling.NonFiniteSampleError`).

    Arguments:
        n_generated: A number of events, or ``"Nx"``: N times the events of ``reference``
            (MC background test_a).
    """
    configure_torch(threads)
    flow, info, scaler_obj = _checked_model(model, scaler, device)
    n = n_generated_events(n_generated, io.root_entries(reference))
    log.info("sampling %d events from %s (%s)", n, model, info["model"])
    report = generate_to_root(
        flow, scaler_obj, n, outputs.events, chunk_size=chunk_size, seed=seed,
        max_nonfinite_fraction=max_nonfinite_fraction, name=f"run {run}",
    )  # fmt: skip
    io.write_tsv(outputs.timing, [report.as_row()], list(report.as_row()))
    return report


def reference_quantile_edges(reference: PathLike, features: list[str], n_bins: int) -> dict[str, np.ndarray]:
    """Each feature's ``n_bins`` equal-probability bin edges in the events of ``reference``."""
    from flowsim.metrics.amplification import quantile_edges

    x = io.read_matrix(reference, features)
    return {name: quantile_edges(x[:, j], n_bins) for j, name in enumerate(features)}


def _weights(flow: torch.nn.Module, weight_draw: int | None, model: PathLike) -> contextlib.AbstractContextManager:
    """The flow's weights to sample with: as trained, or one frozen draw of a Bayesian flow."""
    from flowsim.flows.bayesian import frozen_draw, is_bayesian

    if weight_draw is None:
        return contextlib.nullcontext()
    if not is_bayesian(flow):
        raise ValueError(f"{model}: weight draw {weight_draw} asked for, but the flow is not Bayesian")
    log.info("sampling weight draw %d of the Bayesian flow %s", weight_draw, model)
    return frozen_draw(flow, weight_draw)


def fill_templates(
    outputs: FillTemplatesOutputs,
    *,
    run: str,
    model: PathLike,
    scaler: PathLike,
    classifier: PathLike,
    classifier_scaler: PathLike,
    reference: PathLike,
    n_events: int | str,
    section: dict,
    chunk_size: int,
    seed: int,
    device: str,
    max_nonfinite_fraction: float = 1e-3,
    weight_draw: int | None = None,
    marginal_bins: int | None = None,
    label: str | None = None,
    threads: int = 1,
) -> FilledTemplates:
    """Rule ``fill_templates``: the run's after-cut templates of every observable of the
    ``analysis`` ``section``, filled from ``n_events`` generated events without storing them.

    The events are those :func:`sample_flow` would write with the same ``seed`` and
    ``chunk_size`` (:class:`~flowsim.sampling.GeneratedChunks`), scored by the signal
    classifier on the run's device. The templates go to ``outputs.templates`` (ROOT, see
    :mod:`flowsim.analysis.template_files`), the cut flow and throughput to ``outputs.summary``.

    Arguments:
        n_events: a number of events, or ``"Nx"``: N times the events of ``reference``.
        weight_draw: defaults to None (the flow as trained; a Bayesian flow's mean weights);
            else the seed of one frozen draw of a Bayesian flow's weights
            (:func:`~flowsim.flows.bayesian.frozen_draw`), an ensemble member.
        marginal_bins: defaults to None (no marginals); else every feature's marginal before
            the cut is filled too, in this many equal-probability bins of ``reference``
            (:func:`~flowsim.metrics.amplification.quantile_edges`).
        label: defaults to None (the run's background); ``signal`` fills the signal's templates
            from a label-conditioned run (:func:`fill_signal_templates`).
    """
    from flowsim.analysis.config import AnalysisConfig
    from flowsim.analysis.filling import fill_from_chunks
    from flowsim.analysis.signal_classifier import load_classifier_and_scaler
    from flowsim.analysis.template_files import write_templates

    configure_torch(threads)
    flow, info, scaler_obj = _checked_model(model, scaler, device, label)
    config = AnalysisConfig.from_mapping(section)
    net, net_scaler = load_classifier_and_scaler(classifier, classifier_scaler, resolve_device(device))
    n = n_generated_events(n_events, io.root_entries(reference))
    log.info(
        "filling the %stemplates of %s from %d events of %s (%s)",
        "signal " if label == "signal" else "", list(config.observables), n, model, info["model"],
    )  # fmt: skip
    chunks = GeneratedChunks(
        flow, scaler_obj, n, chunk_size=chunk_size, seed=seed,
        max_nonfinite_fraction=max_nonfinite_fraction, name=f"run {run}",
    )  # fmt: skip
    edges = {name: config.edges(name) for name in config.observables}
    marginal_edges = (
        None if marginal_bins is None else reference_quantile_edges(reference, chunks.features, marginal_bins)
    )
    with _weights(flow, weight_draw, model):
        filled = fill_from_chunks(chunks, net, net_scaler, cut=config.cut, edges=edges, marginal_edges=marginal_edges)
    write_templates(
        outputs.templates, filled.histograms, n_generated=filled.n_generated,
        n_finite=filled.n_finite, n_selected=filled.n_selected,
        title=f"run {run}" + (f", {label}" if label is not None else ""),
        marginals=filled.marginals,
    )  # fmt: skip
    io.write_json(outputs.summary, {"run": run, "model": str(model), **filled.summary()})
    return filled


def fill_signal_templates(outputs: FillTemplatesOutputs, **inputs) -> FilledTemplates:
    """Rule ``fill_signal_templates``: :func:`fill_templates` of a label-conditioned run at label
    1, the signal's templates from its flow (the scans' ``ml_signal`` prediction); the same
    arguments but ``weight_draw`` and ``marginal_bins``, which are the background's."""
    return fill_templates(outputs, label="signal", **inputs)
