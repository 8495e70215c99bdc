"""The classifier stage (``workflow/rules/classifier.smk``): the signal-vs-background
classifier trained on the ML set, and every sample scored by it (paper Sec. 4.4).

* :func:`train_classifier`: fit the scaler and the signal-vs-background classifier on the ML
  set; its AUC and balanced accuracy on the hold-out.
* :func:`score_and_cut`: one sample's classifier scores (a friend tree) and its selection
  counts at the cut.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from flowsim import io
from flowsim.analysis.selection import SelectionCounts
from flowsim.stages import PathLike

# torch (~1.3 s to import) only inside the functions: --help and the tests stay fast
if TYPE_CHECKING:
    from flowsim.analysis.signal_classifier import ClassifierSettings
    from flowsim.classifier import MLPClassifier
    from flowsim.data.scaling import Scaler
    from flowsim.training import TrainResult

__all__ = ["ClassifierOutputs", "ScoreOutputs", "score_and_cut", "train_classifier"]

log = logging.getLogger(__name__)


# --- train_classifier ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierOutputs:
    """The outputs of rule ``train_classifier``."""

    model: PathLike
    scaler: PathLike
    history: PathLike
    metrics: PathLike
    loss: PathLike
    roc: PathLike


@dataclass(frozen=True)
class TrainedClassifier:
    """The signal classifier, its scaler and its scores on the hold-out of each class."""

    model: MLPClassifier
    settings: ClassifierSettings
    scaler: Scaler
    features: list[str]
    scaling_method: str
    result: TrainResult
    n_train: int
    n_val: int
    d_signal: np.ndarray
    d_background: np.ndarray


def _read_stacked(paths: Sequence[PathLike], features: list[str]) -> np.ndarray:
    return np.concatenate([io.read_matrix(p, features) for p in paths])


def _file_weights(path: PathLike) -> np.ndarray | None:
    """The event weights of ``path`` (None if unweighted; refused unless they sum to > 0), logged."""
    from flowsim.weights import weight_summary

    weights = io.read_weights(path)
    if weights is not None:
        weight_summary(weights, name=str(path))
    return weights


def _labelled_split(
    signal: PathLike, background: PathLike, features: list[str], settings: ClassifierSettings, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One split's labelled events (:func:`~flowsim.analysis.signal_classifier.labelled_sample`)
    and their event weights, None when neither file is weighted."""
    from flowsim.analysis.signal_classifier import labelled_sample

    x, y, *weights = labelled_sample(
        io.read_matrix(signal, features), io.read_matrix(background, features),
        max_events=settings.max_events, seed=seed,
        signal_weights=_file_weights(signal), background_weights=_file_weights(background),
    )  # fmt: skip
    return x, y, weights[0] if weights else None


def fit_signal_classifier(
    *, signal_train: PathLike, background_train: PathLike, signal_val: PathLike, background_val: PathLike,
    signal_test: Sequence[PathLike], background_test: Sequence[PathLike], features: Sequence[str],
    scaling_method: str, section: Mapping[str, Any],
) -> TrainedClassifier:  # fmt: skip
    """Fit the scaler and train the classifier on the ML set; score the hold-out (``test_a`` +
    ``test_b`` of each class). The cut is not a training setting: changing it rescores, it
    never retrains. Weighted MC files (a :data:`~flowsim.io.WEIGHT` branch) train on their event
    weights (:func:`~flowsim.analysis.signal_classifier.train_signal_classifier`)."""
    from flowsim.analysis.signal_classifier import ClassifierSettings, train_signal_classifier
    from flowsim.classifier import predict_proba
    from flowsim.data.scaling import fit_scaler

    features = list(features)
    settings = ClassifierSettings.from_mapping(section)
    x_train, y_train, w_train = _labelled_split(signal_train, background_train, features, settings, settings.seed)
    x_val, y_val, w_val = _labelled_split(signal_val, background_val, features, settings, settings.seed + 1)
    scaler = fit_scaler(x_train, features, scaling_method, weights=w_train)
    log.info("fitted %s scaling on the %d classifier training events", scaling_method, len(x_train))
    model, result = train_signal_classifier(
        (scaler.transform(x_train), y_train), (scaler.transform(x_val), y_val), settings,
        train_weights=w_train, val_weights=w_val,
    )  # fmt: skip
    d_sig = predict_proba(model, scaler.transform(_read_stacked(signal_test, features)))
    d_bkg = predict_proba(model, scaler.transform(_read_stacked(background_test, features)))
    return TrainedClassifier(
        model, settings, scaler, features, scaling_method, result, len(y_train), len(y_val), d_sig, d_bkg
    )


def write_classifier(trained: TrainedClassifier, outputs: ClassifierOutputs) -> None:
    """The model and its scaler; the metrics table: the hold-out AUC (DeLong error) and the
    balanced accuracy at D = ½ (the mean of the per-class rates, independent of the hold-out's
    class mix, with its binomial error); the history and the plots."""
    from flowsim.analysis.signal_classifier import save_classifier
    from flowsim.metrics.roc import auc_delong, roc_curve
    from flowsim.plots.c2st import plot_roc
    from flowsim.plots.training import plot_history
    from flowsim.training import write_history

    d_sig, d_bkg = trained.d_signal, trained.d_background
    estimate = auc_delong(d_sig, d_bkg)
    tpr, tnr = float(np.mean(d_sig >= 0.5)), float(np.mean(d_bkg < 0.5))
    accuracy = 0.5 * (tpr + tnr)
    accuracy_err = 0.5 * math.hypot(
        math.sqrt(tpr * (1 - tpr) / len(d_sig)), math.sqrt(tnr * (1 - tnr) / len(d_bkg))
    )
    log.info(
        "signal classifier on the hold-out: AUC %.4f ± %.4f, balanced accuracy %.4f",
        estimate.auc, estimate.std, accuracy,
    )  # fmt: skip
    rows = [
        {"metric": "auc", "value": estimate.auc, "error": estimate.std},
        {"metric": "balanced_accuracy", "value": accuracy, "error": accuracy_err},
        {"metric": "n_train", "value": trained.n_train, "error": 0},
        {"metric": "n_val", "value": trained.n_val, "error": 0},
        {"metric": "n_test_signal", "value": len(d_sig), "error": 0},
        {"metric": "n_test_background", "value": len(d_bkg), "error": 0},
    ]  # fmt: skip
    trained.scaler.save(outputs.scaler)
    save_classifier(
        outputs.model, trained.model, trained.settings, features=trained.features,
        metadata={"auc": estimate.auc, "best_epoch": trained.result.best_epoch,
                  "val_loss": trained.result.best_val_loss, "scaling": trained.scaling_method},
    )  # fmt: skip
    io.write_tsv(outputs.metrics, rows, ["metric", "value", "error"])
    write_history(outputs.history, trained.result.history)
    plot_history(trained.result.history, outputs.loss, title="signal classifier", ylabel="binary cross-entropy")
    plot_roc(
        roc_curve(d_sig, d_bkg), outputs.roc, auc=estimate.auc, auc_err=estimate.std,
        gen_label="signal vs background (hold-out)", positive="signal", negative="background",
    )  # fmt: skip


def train_classifier(outputs: ClassifierOutputs, *, threads: int = 1, **inputs: Any) -> TrainedClassifier:
    """Rule ``train_classifier``: :func:`fit_signal_classifier` of ``inputs``, then :func:`write_classifier`."""
    from flowsim.training import configure_torch

    configure_torch(threads)
    trained = fit_signal_classifier(**inputs)
    write_classifier(trained, outputs)
    return trained


# --- score_and_cut ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreOutputs:
    """The outputs of rule ``score_and_cut``."""

    scores: PathLike
    counts: PathLike


def score_and_cut(
    outputs: ScoreOutputs, *, model: PathLike, scaler: PathLike, events: PathLike, cut: float,
    chunk_size: int = 1_000_000, device: str = "auto", threads: int = 1,
) -> SelectionCounts:  # fmt: skip
    """Rule ``score_and_cut``: score every event of ``events`` into the friend tree
    ``outputs.scores`` (streamed, ``chunk_size`` events at a time); the counts at ``cut`` as JSON."""
    from flowsim.analysis.signal_classifier import load_classifier_and_scaler, score_file
    from flowsim.training import configure_torch, resolve_device

    configure_torch(threads)
    classifier, scaler_obj = load_classifier_and_scaler(model, scaler, resolve_device(device))
    counts = score_file(classifier, scaler_obj, events, outputs.scores, cut=cut, chunk_size=chunk_size)
    io.write_json(outputs.counts, {"events": str(events), **counts.as_dict()})
    return counts
