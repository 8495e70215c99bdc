"""The jobs of the analysis stage that need no torch, called by the workflow's scripts.

(Training the classifier and scoring samples are in :mod:`flowsim.analysis.signal_classifier`.)

* :func:`plot_selection_job`: score distributions of MC signal, MC and ML background with their
  ratio (paper Figs. 14-15) and the kinematics after the cut, MC vs ML (Fig. 16).
* :func:`lumi_scan_job`: the luminosity scan of one run, observable and signal fraction for the
  MC reference and the run's generated background: TSV, pyhf workspaces, plots (Figs. 19-22).

The hold-out samples have fixed roles (paper Sec. 4.4): MC signal (``sig_test_a`` +
``sig_test_b``) is the signal template; the Asimov pseudo-data are MC signal + MC background
``test_a``; the background prediction is MC ``test_b`` (the reference) or a run's generated events.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flowsim.analysis.config import AnalysisConfig, alpha_label
from flowsim.analysis.results import PointResult
from flowsim.analysis.selection import (
    SampleFiles, read_scores, read_selected, read_selected_events,
)  # fmt: skip
from flowsim.analysis.templates import Template, make_template

__all__ = ["lumi_scan_job", "plot_selection_job"]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def plot_selection_job(
    *,
    run: str,
    signal: SampleFiles,
    mc_background: SampleFiles,
    ml_background: SampleFiles,
    features: Sequence[str],
    cut: float,
    scores_plot: PathLike,
    kinematics_plot: PathLike,
) -> None:
    """Score distributions with the ML/MC ratio, and the features after the cut, MC vs ML."""
    from flowsim.plots.analysis import plot_classifier_scores
    from flowsim.plots.distributions import plot_feature_grid

    scores = {
        name: read_scores(files)
        for name, files in (("signal", signal), ("mc", mc_background), ("ml", ml_background))
    }
    plot_classifier_scores(
        scores["signal"], scores["mc"], scores["ml"], scores_plot, cut=cut, run=run
    )
    features = list(features)
    mc = read_selected_events(mc_background, features, cut, name="MC background")
    ml = read_selected_events(ml_background, features, cut, name=run)
    log.info("after score > %g: %d MC and %d %s background events", cut, len(mc), len(ml), run)
    if len(mc) < 2 or len(ml) < 2:
        raise ValueError(
            f"too few events pass score > {cut} to plot ({len(mc)} MC, {len(ml)} {run}); "
            "lower analysis.cut or generate more events"
        )
    plot_feature_grid(
        mc, ml, features, kinematics_plot,
        mc_label=f"MC background, score > {cut:g}", gen_label=f"{run}, score > {cut:g}",
    )  # fmt: skip


def _template(files: SampleFiles, observable: str, config: AnalysisConfig, name: str) -> Template:
    values, n_total = read_selected(files, observable, config.cut, name=name)
    return make_template(values, n_total, config.edges(observable), name=name)


def lumi_scan_job(
    *,
    run: str,
    observable: str,
    alpha: float,
    section: Mapping[str, Any],
    signal: SampleFiles,
    data_background: SampleFiles,
    mc_prediction: SampleFiles,
    ml_prediction: SampleFiles,
    table_out: PathLike,
    workspaces_out: PathLike,
    mu_plot: PathLike,
    pvalue_plot: PathLike,
    limit_plot: PathLike,
) -> list[PointResult]:
    """Scan the luminosity with the MC reference and the run's generated background.

    Writes one TSV row per (luminosity, background), every point's pyhf workspace under
    ``workspaces_out`` and the plots of μ̂, the p-values and the limits against L.
    """
    from flowsim.analysis.scan import scan_observable, write_scan_tsv, write_workspaces
    from flowsim.plots.analysis import plot_mu_hat, plot_pvalues, plot_upper_limits, scan_title

    config = AnalysisConfig.from_mapping(section)
    labels = [alpha_label(a) for a in config.alphas]
    if alpha_label(alpha) not in labels:
        raise ValueError(f"alpha {alpha_label(alpha)} is not one of analysis.alphas {labels}")
    if observable not in config.observables:
        raise ValueError(
            f"observable {observable!r} is not one of analysis.observables {list(config.observables)}"
        )
    config = dataclasses.replace(config, alphas=(config.alphas[labels.index(alpha_label(alpha))],))
    signal_t = _template(signal, observable, config, "MC signal")
    data_t = _template(data_background, observable, config, "MC background test_a (data)")
    predictions = {
        "mc": _template(mc_prediction, observable, config, "MC background test_b (reference)"),
        "ml": _template(ml_prediction, observable, config, f"generated background ({run})"),
    }
    scans = scan_observable(signal_t, data_t, predictions, config=config, observable=observable)
    points = [p for scan in scans for p in scan.points]
    Path(workspaces_out).mkdir(parents=True, exist_ok=True)
    for scan in scans:
        write_workspaces(workspaces_out, scan)
    write_scan_tsv(table_out, points)
    title = scan_title(observable, config.alphas[0], run)
    plot_mu_hat(points, mu_plot, title=title)
    plot_pvalues(points, pvalue_plot, title=title, cl=config.cl)
    plot_upper_limits(points, limit_plot, title=title, cl=config.cl)
    return points
