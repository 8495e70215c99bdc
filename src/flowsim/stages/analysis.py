"""The analysis stage (``workflow/rules/analysis.smk``): the signal classifier and its cut, then
luminosity scans of pyhf fits and limits with the MC background replaced by each run's
generated events (paper Sec. 4.4-4.6).

* :func:`train_classifier`: fit the scaler and the signal-vs-background classifier on the ML
  set; its AUC and balanced accuracy on the hold-out.
* :func:`score_and_cut`: one sample's classifier scores (a friend tree) and its selection
  counts at the cut.
* :func:`plot_selection`: score distributions of MC signal, MC and ML background with their
  ratio (paper Figs. 14-15) and the kinematics after the cut, MC vs ML (Fig. 16).
* :func:`lumi_scan`: the luminosity scan of one run, observable and signal fraction for the
  MC reference and the run's generated background: TSV, pyhf workspaces, plots (Figs. 19-22).

The hold-out samples have fixed roles (paper Sec. 4.4): MC signal (``sig_test_a`` +
``sig_test_b``) is the signal template; the Asimov pseudo-data are MC signal + MC background
``test_a``; the background prediction is MC ``test_b`` (the reference) or a run's generated events.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flowsim import io
from flowsim.analysis.config import AnalysisConfig, alpha_label
from flowsim.analysis.results import PointResult
from flowsim.analysis.selection import SampleFiles, SelectionCounts, read_scores, read_selected, read_selected_events
from flowsim.analysis.templates import Template, make_template
from flowsim.stages import PathLike

# torch (~1.3 s to import) only for the rules that train or apply the classifier
if TYPE_CHECKING:
    from flowsim.analysis.results import ScanResult
    from flowsim.analysis.signal_classifier import ClassifierSettings
    from flowsim.classifier import MLPClassifier
    from flowsim.data.scaling import Scaler
    from flowsim.training import TrainResult

__all__ = [
    "ClassifierOutputs",
    "LumiScanOutputs",
    "ScoreOutputs",
    "SelectionOutputs",
    "lumi_scan",
    "plot_selection",
    "score_and_cut",
    "train_classifier",
]

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


def fit_signal_classifier(
    *, signal_train: PathLike, background_train: PathLike, signal_val: PathLike, background_val: PathLike,
    signal_test: Sequence[PathLike], background_test: Sequence[PathLike], features: Sequence[str],
    scaling_method: str, section: Mapping[str, Any],
) -> TrainedClassifier:  # fmt: skip
    """Fit the scaler and train the classifier on the ML set; score the hold-out (``test_a`` +
    ``test_b`` of each class). The cut is not a training setting: changing it rescores, it
    never retrains."""
    from flowsim.analysis.signal_classifier import ClassifierSettings, labelled_sample, train_signal_classifier
    from flowsim.classifier import predict_proba
    from flowsim.data.scaling import fit_scaler

    features = list(features)
    settings = ClassifierSettings.from_mapping(section)
    x_train, y_train = labelled_sample(
        io.read_matrix(signal_train, features), io.read_matrix(background_train, features),
        max_events=settings.max_events, seed=settings.seed,
    )  # fmt: skip
    x_val, y_val = labelled_sample(
        io.read_matrix(signal_val, features), io.read_matrix(background_val, features),
        max_events=settings.max_events, seed=settings.seed + 1,
    )  # fmt: skip
    scaler = fit_scaler(x_train, features, scaling_method)
    log.info("fitted %s scaling on the %d classifier training events", scaling_method, len(x_train))
    model, result = train_signal_classifier(
        (scaler.transform(x_train), y_train), (scaler.transform(x_val), y_val), settings
    )
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
    from flowsim.analysis.signal_classifier import load_classifier, score_file
    from flowsim.data.scaling import load_scaler
    from flowsim.training import configure_torch, resolve_device

    configure_torch(threads)
    classifier, info = load_classifier(model, resolve_device(device))
    scaler_obj = load_scaler(scaler)
    if list(scaler_obj.features) != list(info["features"]):
        raise ValueError(f"{scaler} scales {list(scaler_obj.features)} but {model} expects {info['features']}")
    counts = score_file(classifier, scaler_obj, events, outputs.scores, cut=cut, chunk_size=chunk_size)
    io.write_json(outputs.counts, {"events": str(events), **counts.as_dict()})
    return counts


# --- plot_selection --------------------------------------------------------------------------


@dataclass(frozen=True)
class SelectionOutputs:
    """The outputs of rule ``plot_selection``."""

    scores: PathLike
    kinematics: PathLike


@dataclass(frozen=True)
class Selection:
    """The classifier scores of each sample, and the features of the background events that
    pass the cut (rows: events, columns: ``features``)."""

    run: str
    cut: float
    features: list[str]
    scores: dict[str, np.ndarray]
    mc: np.ndarray
    ml: np.ndarray


def read_selection(
    *, run: str, signal: SampleFiles, mc_background: SampleFiles, ml_background: SampleFiles,
    features: Sequence[str], cut: float,
) -> Selection:  # fmt: skip
    """The scores of MC signal, MC and ML background; the background events after ``score > cut``."""
    scores = {
        name: read_scores(files)
        for name, files in (("signal", signal), ("mc", mc_background), ("ml", ml_background))
    }
    features = list(features)
    mc = read_selected_events(mc_background, features, cut, name="MC background")
    ml = read_selected_events(ml_background, features, cut, name=run)
    log.info("after score > %g: %d MC and %d %s background events", cut, len(mc), len(ml), run)
    if len(mc) < 2 or len(ml) < 2:
        raise ValueError(
            f"too few events pass score > {cut} to plot ({len(mc)} MC, {len(ml)} {run}); "
            "lower analysis.cut or generate more events"
        )
    return Selection(run, cut, features, scores, mc, ml)


def write_selection_plots(selection: Selection, outputs: SelectionOutputs) -> None:
    """Score distributions with the ML/MC ratio, and the features after the cut, MC vs ML."""
    from flowsim.plots.analysis import plot_classifier_scores
    from flowsim.plots.distributions import plot_feature_grid

    s, cut, run = selection.scores, selection.cut, selection.run
    plot_classifier_scores(s["signal"], s["mc"], s["ml"], outputs.scores, cut=cut, run=run)
    plot_feature_grid(
        selection.mc, selection.ml, selection.features, outputs.kinematics,
        mc_label=f"MC background, score > {cut:g}", gen_label=f"{run}, score > {cut:g}",
    )  # fmt: skip


def plot_selection(outputs: SelectionOutputs, **inputs: Any) -> Selection:
    """Rule ``plot_selection``: :func:`read_selection` of ``inputs``, then :func:`write_selection_plots`."""
    selection = read_selection(**inputs)
    write_selection_plots(selection, outputs)
    return selection


# --- lumi_scan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LumiScanOutputs:
    """The outputs of rule ``lumi_scan``."""

    table: PathLike
    workspaces: PathLike
    mu: PathLike
    pvalues: PathLike
    limits: PathLike


@dataclass(frozen=True)
class LumiScan:
    """The scans of one run, observable and signal fraction: one per background prediction."""

    run: str
    observable: str
    config: AnalysisConfig
    scans: list[ScanResult]

    @property
    def points(self) -> list[PointResult]:
        return [p for scan in self.scans for p in scan.points]


def _template(files: SampleFiles, observable: str, config: AnalysisConfig, name: str) -> Template:
    values, n_total = read_selected(files, observable, config.cut, name=name)
    return make_template(values, n_total, config.edges(observable), name=name)


def _one_alpha(config: AnalysisConfig, observable: str, alpha: float) -> AnalysisConfig:
    """``config`` with only ``alpha`` of its signal fractions; unknown values are refused."""
    labels = [alpha_label(a) for a in config.alphas]
    if alpha_label(alpha) not in labels:
        raise ValueError(f"alpha {alpha_label(alpha)} is not one of analysis.alphas {labels}")
    if observable not in config.observables:
        raise ValueError(
            f"observable {observable!r} is not one of analysis.observables {list(config.observables)}"
        )
    return dataclasses.replace(config, alphas=(config.alphas[labels.index(alpha_label(alpha))],))


def scan_luminosity(
    *, run: str, observable: str, alpha: float, section: Mapping[str, Any], signal: SampleFiles,
    data_background: SampleFiles, mc_prediction: SampleFiles, ml_prediction: SampleFiles,
) -> LumiScan:  # fmt: skip
    """Scan the luminosity with the MC reference and the run's generated background
    (:func:`~flowsim.analysis.scan.scan_observable`)."""
    from flowsim.analysis.scan import scan_observable

    config = _one_alpha(AnalysisConfig.from_mapping(section), observable, alpha)
    signal_t = _template(signal, observable, config, "MC signal")
    data_t = _template(data_background, observable, config, "MC background test_a (data)")
    predictions = {
        "mc": _template(mc_prediction, observable, config, "MC background test_b (reference)"),
        "ml": _template(ml_prediction, observable, config, f"generated background ({run})"),
    }
    scans = scan_observable(signal_t, data_t, predictions, config=config, observable=observable)
    return LumiScan(run, observable, config, list(scans))


def write_lumi_scan(scan: LumiScan, outputs: LumiScanOutputs) -> None:
    """One TSV row per (luminosity, background), every point's pyhf workspace under
    ``outputs.workspaces`` and the plots of μ̂, the p-values and the limits against L."""
    from flowsim.analysis.scan import write_scan_tsv, write_workspaces
    from flowsim.plots.analysis import plot_mu_hat, plot_pvalues, plot_upper_limits, scan_title

    Path(outputs.workspaces).mkdir(parents=True, exist_ok=True)
    for one in scan.scans:
        write_workspaces(outputs.workspaces, one)
    points = scan.points
    write_scan_tsv(outputs.table, points)
    config = scan.config
    title = scan_title(scan.observable, config.alphas[0], scan.run)
    plot_mu_hat(points, outputs.mu, title=title)
    plot_pvalues(points, outputs.pvalues, title=title, cl=config.cl)
    plot_upper_limits(points, outputs.limits, title=title, cl=config.cl)


def lumi_scan(outputs: LumiScanOutputs, **inputs: Any) -> list[PointResult]:
    """Rule ``lumi_scan``: :func:`scan_luminosity` of ``inputs``, then :func:`write_lumi_scan`."""
    scan = scan_luminosity(**inputs)
    write_lumi_scan(scan, outputs)
    return scan.points
