"""The analysis stage (``workflow/rules/analysis.smk``): the selection after the classifier cut,
then luminosity scans of pyhf fits and limits with the MC background replaced by each run's
generated events (paper Sec. 4.5-4.6).

* :func:`plot_selection`: score distributions of MC signal, MC and ML background with their
  ratio (paper Figs. 14-15), the kinematics after the cut, MC vs ML (Fig. 16), and the fitted
  templates with the surrogate uncertainty.
* :func:`lumi_scan`: the luminosity scan of one run, observable and signal fraction for the
  MC reference and the run's generated background: TSV, pyhf workspaces, plots (Figs. 19-22).

The hold-out samples have fixed roles (paper Sec. 4.4): MC signal (``sig_test_a`` +
``sig_test_b``) is the signal template; the Asimov pseudo-data are MC signal + MC background
``test_a`` (the truth, for every prediction); the background prediction is MC ``test_b`` (the
reference) or a run's generated events, as the templates of rule ``fill_templates``
(``analysis.n_template_events`` events, not the stored sample). A run with an ``ensemble`` is
predicted by its members' pooled template, once as it is (``ml``) and once with the members'
spread as the surrogate uncertainty (``ml_surrogate``,
:class:`~flowsim.analysis.templates.EnsembleTemplate`). A run whose flow also generates the
signal (``ml_signal_templates``, the same file format) is fitted once more with its pooled ML
background and its own signal template in place of the MC signal (``ml_signal``: ML background
and ML signal, no surrogate uncertainty); the data stay MC.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flowsim.analysis.config import AnalysisConfig, alpha_label
from flowsim.analysis.results import PointResult
from flowsim.analysis.selection import (
    SampleFiles,
    read_scores,
    read_selected_events,
    read_selected_weights,
    selected_template,
)  # fmt: skip
from flowsim.analysis.template_files import ml_prediction_templates
from flowsim.analysis.templates import EnsembleTemplate, Template
from flowsim.stages import PathLike

if TYPE_CHECKING:
    from flowsim.analysis.results import ScanResult
    from flowsim.plots.analysis import TemplatePanel

__all__ = ["LumiScanOutputs", "SelectionOutputs", "lumi_scan", "plot_selection"]

log = logging.getLogger(__name__)


# --- plot_selection --------------------------------------------------------------------------


@dataclass(frozen=True)
class SelectionOutputs:
    """The outputs of rule ``plot_selection``."""

    scores: PathLike
    kinematics: PathLike
    templates: PathLike


@dataclass(frozen=True)
class Selection:
    """The classifier scores of each sample, the features of the background events that pass
    the cut (rows: events, columns: ``features``), and the fitted templates of each observable;
    ``mc_weights``: the weights of the ``mc`` rows, None for unweighted MC."""

    run: str
    cut: float
    features: list[str]
    scores: dict[str, np.ndarray]
    mc: np.ndarray
    ml: np.ndarray
    templates: list[TemplatePanel]
    mc_weights: np.ndarray | None = None


def template_panels(
    *, run: str, section: Mapping[str, Any], mc_prediction: SampleFiles, ml_templates: Sequence[PathLike]
) -> list[TemplatePanel]:
    """Each observable's MC reference template and the run's ML prediction (pooled over its
    ensemble, with the members' surrogate uncertainty), as the scans fit them."""
    from flowsim.plots.analysis import TemplatePanel

    config = AnalysisConfig.from_mapping(section)
    predictions = ml_prediction_templates(
        ml_templates, {name: config.edges(name) for name in config.observables}, run=run
    )
    panels = []
    for observable, ml in predictions.items():
        mc = selected_template(mc_prediction, observable, config, "MC background test_b (reference)")
        pooled = ml.pooled if isinstance(ml, EnsembleTemplate) else ml
        surrogate = ml.surrogate_error() if isinstance(ml, EnsembleTemplate) else None
        panels.append(TemplatePanel(
            observable, mc.edges, mc.efficiency, mc.error, pooled.efficiency, pooled.error, surrogate,
            mc.n_effective, pooled.n_total, ml.size if isinstance(ml, EnsembleTemplate) else 1,
        ))  # fmt: skip
    return panels


def read_selection(
    *, run: str, signal: SampleFiles, mc_background: SampleFiles, ml_background: SampleFiles,
    features: Sequence[str], cut: float, section: Mapping[str, Any], mc_prediction: SampleFiles,
    ml_templates: Sequence[PathLike],
) -> Selection:  # fmt: skip
    """The scores of MC signal, MC and ML background; the background events after ``score > cut``;
    the templates (:func:`template_panels`)."""
    scores = {
        name: read_scores(files)
        for name, files in (("signal", signal), ("mc", mc_background), ("ml", ml_background))
    }
    features = list(features)
    mc = read_selected_events(mc_background, features, cut, name="MC background")
    mc_weights = read_selected_weights(mc_background, cut, name="MC background")
    ml = read_selected_events(ml_background, features, cut, name=run)
    log.info("after score > %g: %d MC and %d %s background events", cut, len(mc), len(ml), run)
    if len(mc) < 2 or len(ml) < 2:
        raise ValueError(
            f"too few events pass score > {cut} to plot ({len(mc)} MC, {len(ml)} {run}); "
            "lower analysis.cut or generate more events"
        )
    panels = template_panels(run=run, section=section, mc_prediction=mc_prediction, ml_templates=ml_templates)
    return Selection(run, cut, features, scores, mc, ml, panels, mc_weights)


def write_selection_plots(selection: Selection, outputs: SelectionOutputs) -> None:
    """Score distributions with the ML/MC ratio, the features after the cut, MC vs ML, and the
    fitted templates."""
    from flowsim.plots.analysis import plot_classifier_scores, plot_templates
    from flowsim.plots.distributions import plot_feature_grid

    s, cut, run = selection.scores, selection.cut, selection.run
    plot_classifier_scores(s["signal"], s["mc"], s["ml"], outputs.scores, cut=cut, run=run)
    plot_feature_grid(
        selection.mc, selection.ml, selection.features, outputs.kinematics,
        mc_label=f"MC background, score > {cut:g}", gen_label=f"{run}, score > {cut:g}",
        mc_weights=selection.mc_weights,
    )  # fmt: skip
    plot_templates(selection.templates, outputs.templates, run=run)


def plot_selection(outputs: SelectionOutputs, *, units: Mapping[str, str] | None = None, **inputs: Any) -> Selection:
    """Rule ``plot_selection``: :func:`read_selection` of ``inputs``, then :func:`write_selection_plots`
    (axis labels with the features' ``units``, :func:`~flowsim.plots.labels.declare_units`)."""
    from flowsim.plots.labels import declare_units

    declare_units(units)
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


def _pooled(template: Template | EnsembleTemplate) -> Template:
    """The template itself, or an ensemble's pooled template."""
    return template.pooled if isinstance(template, EnsembleTemplate) else template


def scan_luminosity(
    *, run: str, observable: str, alpha: float, section: Mapping[str, Any], signal: SampleFiles,
    data_background: SampleFiles, mc_prediction: SampleFiles, ml_templates: Sequence[PathLike],
    ml_signal_templates: Sequence[PathLike] = (),
) -> LumiScan:  # fmt: skip
    """Scan the luminosity with the MC reference and the run's generated background
    (:func:`~flowsim.analysis.scan.scan_observable`); with ``ml_signal_templates`` (the flow's
    generated signal, files as ``ml_templates``, pooled over an ensemble's members), also with the
    run's pooled background and that signal (``ml_signal``). Defaults to none (no such scan)."""
    from flowsim.analysis.scan import scan_observable

    config = _one_alpha(AnalysisConfig.from_mapping(section), observable, alpha)
    edges = {observable: config.edges(observable)}
    signal_t = selected_template(signal, observable, config, "MC signal")
    data_t = selected_template(data_background, observable, config, "MC background test_a (data)")
    ml = ml_prediction_templates(ml_templates, edges, run=run)[observable]
    predictions = {
        "mc": selected_template(mc_prediction, observable, config, "MC background test_b (reference)"),
        "ml": ml,
    }
    signals: dict[str, Template] = {}
    if ml_signal_templates:
        predictions["ml_signal"] = _pooled(ml)
        signals["ml_signal"] = _pooled(ml_prediction_templates(ml_signal_templates, edges, run=run)[observable])
        log.info(
            "run %s: %s also fitted with the flow's signal template (ml_signal, %d file(s)); the data stay MC",
            run, observable, len(ml_signal_templates),
        )  # fmt: skip
    scans = scan_observable(signal_t, data_t, predictions, config=config, observable=observable, signals=signals)
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
    """Rule ``lumi_scan``: :func:`scan_luminosity` of ``inputs`` (``ml_signal_templates``
    optional), then :func:`write_lumi_scan`."""
    scan = scan_luminosity(**inputs)
    write_lumi_scan(scan, outputs)
    return scan.points
