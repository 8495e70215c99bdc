r"""The signal-vs-background classifier of the final selection: training, saving, scoring.

The classifier (:class:`flowsim.classifier.MLPClassifier`, residual blocks with batch norm) is
trained by the shared trainer on the ML set: MC signal (label 1) against MC background (label 0)
of the ``train`` splits, early-stopped on the ``val`` splits. Its score
:math:`D(x) = \sigma(f(x))` estimates :math:`P(\text{signal} \mid x)` for the training class mix.

Every sample it scores — MC signal, MC background and each flow's generated background — first
passes the *same* scaler, fitted on the classifier's training events (signal and background
together), so generated events are scored exactly like the MC they replace (one of the authors'
pitfalls was a scaler per sample).

Scores are written as ROOT friend trees (:mod:`flowsim.analysis.selection`), the selection
counts at the cut as JSON beside them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from flowsim import io
from flowsim.analysis.selection import SCORE_BRANCH, SelectionCounts
from flowsim.classifier import MLPClassifier, balanced_weights, fit_classifier, predict_proba
from flowsim.data.scaling import Scaler
from flowsim.errors import ConfigError
from flowsim.model_files import build_like_stored, check_sizes, read_model_file, save_model_file
from flowsim.training import TrainConfig, TrainResult, resolve_device
from flowsim.weights import check_weights, normalised

__all__ = [
    "ClassifierSettings",
    "labelled_sample",
    "load_classifier",
    "save_classifier",
    "score_file",
    "train_signal_classifier",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: Version of the classifier file layout (a plain dict, loaded with ``weights_only=True``).
FORMAT_VERSION = 1
#: Training defaults of the signal classifier (the config's ``training`` overrides them).
TRAINING_DEFAULTS: dict[str, Any] = {"batch_size": 512, "max_epochs": 20, "patience": 4, "lr": 1e-3}


@dataclass(frozen=True)
class ClassifierSettings:
    """Settings of the signal classifier (config section ``analysis.classifier``).

    Attributes:
        hidden: width of the hidden layers, defaults to 128.
        residual_blocks: residual blocks, defaults to 2.
        dropout: dropout inside the blocks, defaults to 0.
        max_events: at most this many events per class and split (None: all), defaults to None.
        balance_classes: weight events so both classes count equally in the loss, defaults to
            True (the score then does not depend on the sample's signal fraction; see
            :func:`flowsim.classifier.balanced_weights`).
        seed: seed of the subsampling, initialisation and batches, defaults to 0.
        training: overrides of :data:`TRAINING_DEFAULTS` (keys of :class:`TrainConfig`).
    """

    hidden: int = 128
    residual_blocks: int = 2
    dropout: float = 0.0
    max_events: int | None = None
    balance_classes: bool = True
    seed: int = 0
    training: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any] | None) -> ClassifierSettings:
        """Build from ``analysis.classifier``; a bad key or value raises ConfigError naming it."""
        section = dict(section or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(
                "analysis.classifier", f"unknown key(s) {unknown}; expected {sorted(known)}"
            )
        settings = cls(**section)
        try:
            settings.train_config()
            MLPClassifier(1, settings.hidden, settings.residual_blocks, settings.dropout)
        except (TypeError, ValueError) as exc:
            raise ConfigError("analysis.classifier", str(exc)) from None
        return settings

    def train_config(self) -> TrainConfig:
        """The trainer's settings: defaults, then the section's ``training``, seeded by ``seed``."""
        return TrainConfig(**{**TRAINING_DEFAULTS, "seed": self.seed, **dict(self.training)})


def _subsample(
    x: np.ndarray, max_events: int | None, rng: np.random.Generator, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    if max_events is None or len(x) <= max_events:
        return x, weights
    keep = np.sort(rng.choice(len(x), size=max_events, replace=False))
    return x[keep], None if weights is None else weights[keep]


def labelled_sample(
    signal: np.ndarray,
    background: np.ndarray,
    *,
    max_events: int | None = None,
    seed: int = 0,
    signal_weights: np.ndarray | None = None,
    background_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """Stack signal (label 1) and background (label 0) events: float32 ``x`` (n, D) and ``y`` (n,).

    ``max_events`` caps each class (a seeded random subset; None keeps all). With event weights
    of either class, float64 weights ``w`` (n,) follow as a third array, ones for an unweighted
    class (each of its events stands for one); without any, ``(x, y)`` as before.
    """
    rng = np.random.default_rng(seed)
    signal_weights = check_weights(signal_weights, len(signal), name="signal events")
    background_weights = check_weights(background_weights, len(background), name="background events")
    signal, signal_weights = _subsample(signal, max_events, rng, signal_weights)
    background, background_weights = _subsample(background, max_events, rng, background_weights)
    if len(signal) == 0 or len(background) == 0:
        raise ValueError(
            f"the classifier needs both classes, got {len(signal)} signal and "
            f"{len(background)} background events"
        )
    x = np.concatenate([signal, background]).astype(np.float32)
    y = np.concatenate([np.ones(len(signal)), np.zeros(len(background))]).astype(np.float32)
    if signal_weights is None and background_weights is None:
        return x, y
    w = [np.ones(len(a)) if v is None else v for a, v in ((signal, signal_weights), (background, background_weights))]
    return x, y, np.concatenate(w)


def train_signal_classifier(
    train_xy: tuple[np.ndarray, np.ndarray],
    val_xy: tuple[np.ndarray, np.ndarray],
    settings: ClassifierSettings,
    *,
    name: str = "signal classifier",
    train_weights: np.ndarray | None = None,
    val_weights: np.ndarray | None = None,
) -> tuple[MLPClassifier, TrainResult]:
    """Train the classifier on scaled, labelled events; returns it (best epoch) and its history.

    Minimises the binary cross-entropy with the shared trainer (AdamW, cosine restarts,
    gradient clipping, early stopping on the validation loss), class-balanced when
    ``settings.balance_classes``: each split's events are weighted by
    :func:`~flowsim.classifier.balanced_weights`. Event weights (weighted MC; given for both
    splits or for neither) multiply each event's cross-entropy: the balancing weights then
    balance the classes' sums of event weights, and without balancing the loss weights are
    ``w / mean(w)`` of the split.
    """
    config = settings.train_config()
    if (train_weights is None) != (val_weights is None):
        raise ValueError(f"{name}: event weights for one split only; give them for both or for neither")

    def weighted(xy: tuple[np.ndarray, np.ndarray], w: np.ndarray | None) -> tuple[np.ndarray, ...]:
        if settings.balance_classes:
            return (*xy, balanced_weights(xy[1], w))
        if w is None:
            return xy
        return (*xy, normalised(check_weights(w, len(xy[1]), name=f"{name} event weights")).astype(np.float32))

    log.info(
        "%s: %d training / %d validation events (signal fraction %.3f / %.3f), device %s",
        name, len(train_xy[1]), len(val_xy[1]), train_xy[1].mean(), val_xy[1].mean(),
        resolve_device(config.device),
    )  # fmt: skip
    return fit_classifier(
        weighted(train_xy, train_weights), weighted(val_xy, val_weights), config, hidden=settings.hidden,
        residual_blocks=settings.residual_blocks, dropout=settings.dropout, name=name,
    )


def save_classifier(
    path: PathLike,
    model: MLPClassifier,
    settings: ClassifierSettings,
    *,
    features: list[str] | tuple[str, ...],
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Write the classifier as a plain dict of its architecture and weights, atomically."""
    save_model_file(
        path, model, format_version=FORMAT_VERSION, model="mlp_classifier", features=list(features),
        params={
            "hidden": settings.hidden,
            "residual_blocks": settings.residual_blocks,
            "dropout": settings.dropout,
        },
        metadata=dict(metadata or {}),
    )


def load_classifier(
    path: PathLike, device: str | torch.device = "cpu"
) -> tuple[MLPClassifier, dict[str, Any]]:
    """Rebuild a classifier written by :func:`save_classifier` (``weights_only=True``), eval mode."""
    payload = read_model_file(path)
    if payload.get("format_version") != FORMAT_VERSION or payload.get("model") != "mlp_classifier":
        raise ValueError(
            f"{path}: not a signal-classifier file of format {FORMAT_VERSION} "
            f"(model {payload.get('model')!r}, format {payload.get('format_version')!r})"
        )
    features, params = payload["features"], payload["params"]
    check_sizes(path, {"n_features": len(features), **params})
    model = build_like_stored(path, lambda: MLPClassifier(len(features), **params), payload["state_dict"])
    model.to(device).eval()
    return model, {k: v for k, v in payload.items() if k != "state_dict"}


def load_classifier_and_scaler(
    model: PathLike, scaler: PathLike, device: str | torch.device = "cpu"
) -> tuple[MLPClassifier, Scaler]:
    """The classifier of ``model`` (:func:`load_classifier`) and the scaler it applies, refused
    if the scaler maps other features than the classifier was trained on."""
    from flowsim.data.scaling import load_scaler

    classifier, info = load_classifier(model, device)
    scaler_obj = load_scaler(scaler)
    if list(scaler_obj.features) != list(info["features"]):
        raise ValueError(f"{scaler} scales {list(scaler_obj.features)} but {model} expects {info['features']}")
    return classifier, scaler_obj


def score_file(
    model: nn.Module,
    scaler: Scaler,
    events: PathLike,
    out: PathLike,
    *,
    cut: float,
    chunk_size: int = 1_000_000,
) -> SelectionCounts:
    """Score every event of ``events`` into the friend tree ``out``; count those above ``cut``.

    Reads and scores ``chunk_size`` events at a time, so memory is bounded for any file size.
    Events with a non-finite score would be neither selected nor rejected honestly, so they
    stop the job with an error naming the file.
    """
    features = list(scaler.features)
    n_total = n_selected = 0
    start = time.perf_counter()
    with io.event_writer(out, [SCORE_BRANCH]) as writer:
        for chunk in io.iter_matrix(events, features, step=chunk_size):
            score = predict_proba(model, scaler.transform(chunk)).astype(np.float32)
            bad = int(np.count_nonzero(~np.isfinite(score)))
            if bad:
                raise ValueError(
                    f"{events}: {bad} events got a non-finite classifier score "
                    f"(entries {n_total}..{n_total + len(chunk) - 1})"
                )
            writer.extend({SCORE_BRANCH: score})
            n_total += len(score)
            n_selected += int(np.count_nonzero(score > cut))
            log.info("%s: scored %d events (%.0f events/s)", events, n_total,
                     n_total / max(time.perf_counter() - start, 1e-9))  # fmt: skip
    counts = SelectionCounts(n_total, n_selected, float(cut))
    log.info(
        "%s: %d of %d events pass score > %g (efficiency %.4f ± %.4f)",
        events, n_selected, n_total, cut, counts.efficiency, counts.efficiency_error,
    )  # fmt: skip
    return counts
