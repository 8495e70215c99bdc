"""The worth stage (``workflow/rules/worth.smk``): what a generated event is worth.

* :func:`amplification`: how many MC events each of a run's templates is worth
  (:mod:`flowsim.metrics.amplification`), the fit observables after the cut and every
  feature's quantile-binned marginal before it, with the MC reference ``test_b`` judged the same
  way beside it as the estimator's own check (it must be worth its own size).
* :func:`spurious_signal`: the signal the run's background model fits to background-only data
  (the truth), at every luminosity, with the MC reference beside it.
* :func:`coverage`: the fraction of replicas whose 68% interval on μ covers the injected μ = 1,
  with and without the ensemble's surrogate uncertainty.

The truth is a large toy sample on the toy (``worth.truth: toy``) and the MC background hold-out
``test_a`` on real data (``holdout``). The toy data, the truth and the coverage replicas'
training sets, are the data stage's (:func:`flowsim.stages.data.make_truth`,
:func:`flowsim.stages.data.make_replica_data`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowsim import io
from flowsim.analysis import worth as analysis_worth
from flowsim.analysis.config import AnalysisConfig, alpha_label
from flowsim.analysis.selection import SampleFiles, selected_template
from flowsim.analysis.template_files import BinnedCounts
from flowsim.analysis.templates import EnsembleTemplate, Template
from flowsim.stages import PathLike

__all__ = [
    "AMPLIFICATION_COLUMNS",
    "COVERAGE_COLUMNS",
    "SPURIOUS_COLUMNS",
    "WorthPlotOutputs",
    "amplification",
    "amplification_rows",
    "coverage",
    "refuse_weighted_mc",
    "spurious_signal",
]

log = logging.getLogger(__name__)

#: Columns of ``amplification.tsv``: one row per template.
AMPLIFICATION_COLUMNS = (
    "template", "kind", "n_cells", "n_train", "n_generated", "n_members", "n_truth", "n_equiv",
    "n_equiv_low", "n_equiv_high", "n_equiv_limit", "G", "G_low", "G_high", "G_error",
    "mc_events", "mc_n_equiv", "mc_ratio",
)  # fmt: skip
#: Template-name prefix of the marginals before the cut.
MARGINAL = "marginal:"


# --- amplification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cells:
    """A template as cells of a partition: counts per cell out of ``n`` events."""

    counts: np.ndarray
    n: int


def _cells(template: Template, *, with_flow: bool) -> _Cells:
    """The bins of ``template`` (after the cut: the fit's cells), or with ``with_flow`` its
    under- and overflow too (a marginal: every finite event in one cell)."""
    from flowsim.metrics.amplification import cells_with_flow

    counts = cells_with_flow(template.counts, template.n_below, template.n_above) if with_flow else template.counts
    return _Cells(np.asarray(counts, dtype=np.int64), int(template.n_total))


def _pooled(templates: Sequence[Template], *, with_flow: bool) -> _Cells:
    """The members' cells summed: the ensemble's pooled template."""
    parts = [_cells(t, with_flow=with_flow) for t in templates]
    return _Cells(np.sum([p.counts for p in parts], axis=0), sum(p.n for p in parts))


def _truth_templates(
    files: SampleFiles, config: AnalysisConfig, marginal_edges: Mapping[str, np.ndarray], name: str
) -> dict[str, Template]:
    """The after-cut templates of every observable, and every feature's marginal, of a sample."""
    out = {observable: selected_template(files, observable, config, name) for observable in config.observables}
    if marginal_edges:
        features = list(marginal_edges)
        x = np.concatenate([io.read_matrix(events, features) for events, _ in files])
        for j, feature in enumerate(features):
            # the marginal's under- and overflow are cells of its own, not events lost to a cut
            counts = BinnedCounts(marginal_edges[feature])
            counts.fill(x[:, j])
            out[MARGINAL + feature] = counts.template(len(x))
    return out


def refuse_weighted_mc(*samples: SampleFiles) -> None:
    """The worth stage's estimators count events (multinomial cells, Poisson pseudo-data):
    refuse MC with per-event weights, naming the file, rather than count weighted events as 1."""
    for files in samples:
        for events, _ in files:
            if io.read_weights(events) is not None:
                raise ValueError(
                    f"{events}: weighted MC (a '{io.WEIGHT}' branch); the worth stage counts events and "
                    "takes unweighted MC only, so the workflow leaves it out for weighted MC"
                )


def amplification_rows(
    members: Sequence[Mapping[str, Template]],
    truth: Mapping[str, Template],
    mc_reference: Mapping[str, Template],
    *,
    n_train: int,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per template of :data:`AMPLIFICATION_COLUMNS`: the pooled templates of the
    ``members`` (template name -> :class:`Template`, marginals named ``marginal:<feature>``)
    against the ``truth``'s, G = n_equiv / ``n_train``, and the MC reference judged alike
    (``mc_ratio`` = its n_equiv over its own size, 1 for an honest estimator)."""
    from flowsim.metrics.amplification import amplification as estimate

    rows = []
    for name in members[0]:
        with_flow = name.startswith(MARGINAL)
        ml = _pooled([m[name] for m in members], with_flow=with_flow)
        t = _cells(truth[name], with_flow=with_flow)
        mc = _cells(mc_reference[name], with_flow=with_flow)
        worth = estimate(ml.counts, ml.n, t.counts, t.n, n_bootstrap=n_bootstrap, seed=seed)
        check = estimate(mc.counts, mc.n, t.counts, t.n, n_bootstrap=n_bootstrap, seed=seed)
        gain, low, high = worth.gain(n_train)
        rows.append({
            "template": name, "kind": "marginal" if with_flow else "after_cut", "n_cells": worth.n_cells,
            "n_train": n_train, "n_generated": ml.n, "n_members": len(members), "n_truth": t.n,
            "n_equiv": worth.n_equiv, "n_equiv_low": worth.n_equiv_low, "n_equiv_high": worth.n_equiv_high,
            "n_equiv_limit": worth.n_equiv_limit, "G": gain, "G_low": low, "G_high": high,
            "G_error": 0.5 * (high - low), "mc_events": mc.n, "mc_n_equiv": check.n_equiv,
            "mc_ratio": check.n_equiv / mc.n,
        })  # fmt: skip
    return rows


def amplification(
    out: PathLike,
    *,
    run: str,
    ml_templates: Sequence[PathLike],
    train: PathLike,
    train_events: int | None,
    truth: SampleFiles,
    mc_reference: SampleFiles,
    section: Mapping[str, Any],
    n_bootstrap: int = 200,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rule ``amplification``: :func:`amplification_rows` of run ``run``'s template files (one
    per ensemble member) against the ``truth``, into ``out``.

    ``n_train`` is the MC events the flow learnt from: ``train_events``, or all of ``train``.

    Raises:
        ValueError: template files without marginals (filled before the marginals existed:
            rerun fill_templates) or whose members disagree on their bins, naming the file.
    """
    from flowsim.analysis.template_files import read_templates

    refuse_weighted_mc(truth, mc_reference)
    config = AnalysisConfig.from_mapping(section)
    members, edges = [], None
    for path in ml_templates:
        contents = read_templates(path)
        if not contents.marginals:
            raise ValueError(f"{path}: no marginals before the cut; refill it (rule fill_templates)")
        own = {name: t.edges for name, t in contents.marginals.items()}
        if edges is not None and (own.keys() != edges.keys() or any(not np.array_equal(own[k], edges[k]) for k in own)):
            raise ValueError(f"{path}: its marginals have other bins than {ml_templates[0]}'s; refill them")
        edges = own
        members.append({**{o: contents[o] for o in config.observables},
                        **{MARGINAL + f: t for f, t in contents.marginals.items()}})  # fmt: skip
    n_train = int(train_events or io.root_entries(train))
    reference = _truth_templates(truth, config, edges, "truth")
    mc = _truth_templates(mc_reference, config, edges, "MC background test_b")
    rows = amplification_rows(members, reference, mc, n_train=n_train, n_bootstrap=n_bootstrap, seed=seed)
    for row in rows:
        if row["kind"] == "after_cut":
            log.info(
                "run %s, %s after the cut: worth %.4g MC events (G = %.3g, 68%% [%.3g, %.3g]); MC test_b "
                "of %d events: worth %.4g", run, row["template"], row["n_equiv"], row["G"], row["G_low"],
                row["G_high"], row["mc_events"], row["mc_n_equiv"],
            )  # fmt: skip
    marginal = [row["G"] for row in rows if row["kind"] == "marginal"]
    if marginal:
        log.info("run %s: median G of the %d marginals before the cut: %.3g", run, len(marginal), np.median(marginal))
    io.write_tsv(out, rows, AMPLIFICATION_COLUMNS)
    return rows


# --- spurious signal and coverage ------------------------------------------------------------


@dataclass(frozen=True)
class WorthPlotOutputs:
    """The outputs of rules ``spurious_signal`` and ``coverage``: a table and its plot."""

    table: PathLike
    plot: PathLike


#: Columns of ``spurious.tsv``: one row per observable, signal fraction, background and luminosity.
SPURIOUS_COLUMNS = ("observable", "alpha", *analysis_worth.SPURIOUS_COLUMNS)
#: Columns of ``coverage.tsv``: one row per observable, signal fraction, background and luminosity.
COVERAGE_COLUMNS = ("observable", "alpha", *analysis_worth.COVERAGE_COLUMNS)


def _predictions(ml: Template | EnsembleTemplate, mc: Template) -> list[tuple[str, Template | EnsembleTemplate, bool]]:
    """(label, prediction, with its surrogate uncertainty) of each background model to fit."""
    out = [("mc", mc, False), ("ml", ml, False)]
    if isinstance(ml, EnsembleTemplate):
        out.append(("ml_surrogate", ml, True))
    return out


def spurious_signal(
    outputs: WorthPlotOutputs,
    *,
    run: str,
    section: Mapping[str, Any],
    signal: SampleFiles,
    truth: SampleFiles,
    mc_prediction: SampleFiles,
    ml_templates: Sequence[PathLike],
) -> list[dict[str, Any]]:
    """Rule ``spurious_signal``: the S+B fit of every observable and signal fraction with the
    run's background (and the MC reference's) to the truth's background-only yields at every
    luminosity of the analysis (:func:`~flowsim.analysis.worth.spurious_signal_scan`)."""
    from flowsim.analysis.scan import lumi_grid
    from flowsim.analysis.template_files import ml_prediction_templates
    from flowsim.plots.worth import plot_spurious_signal

    refuse_weighted_mc(signal, truth, mc_prediction)
    config = AnalysisConfig.from_mapping(section)
    lumis = lumi_grid(*config.lumi_fb)
    ml_all = ml_prediction_templates(ml_templates, {o: config.edges(o) for o in config.observables}, run=run)
    rows = []
    for observable in config.observables:
        signal_t = selected_template(signal, observable, config, "MC signal")
        truth_t = selected_template(truth, observable, config, "truth")
        mc_t = selected_template(mc_prediction, observable, config, "MC background test_b (reference)")
        for alpha in config.alphas:
            for label, prediction, with_surrogate in _predictions(ml_all[observable], mc_t):
                points = analysis_worth.spurious_signal_scan(
                    signal_t, truth_t, prediction, lumis=lumis, alpha=alpha, sigma_b_fb=config.sigma_b_fb,
                    shapesys_rel=config.shapesys_rel, background=label, with_surrogate=with_surrogate,
                )  # fmt: skip
                rows += [{"observable": observable, "alpha": alpha_label(alpha), **p.as_row()} for p in points]
                worst = max(points, key=lambda p: abs(p.significance) if math.isfinite(p.significance) else -1)
                log.info(
                    "run %s, %s, alpha %s, %s: largest |mu_spur|/sigma_mu %.3f at %.3g/fb (%.3g signal events)",
                    run, observable, alpha_label(alpha), label, abs(worst.significance), worst.lumi_fb,
                    worst.n_signal,
                )  # fmt: skip
    io.write_tsv(outputs.table, rows, SPURIOUS_COLUMNS)
    plot_spurious_signal(rows, outputs.plot, run=run)
    return rows


def coverage(
    outputs: WorthPlotOutputs,
    *,
    section: Mapping[str, Any],
    signal: SampleFiles,
    truth: SampleFiles,
    replica_mc: Mapping[str, SampleFiles],
    replicas: Mapping[str, Sequence[PathLike]],
    lumi_fb: Sequence[float],
    shapesys_rel: float,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rule ``coverage``: for every observable and signal fraction, the coverage of the 68%
    interval on μ over the ``replicas`` (replica -> its members' template files) at each
    luminosity of the ``lumi_fb`` grid (min, max, n), with pseudo-data around the truth plus
    μ = 1 signal (:func:`~flowsim.analysis.worth.coverage_scan`): the pooled template (``ml``),
    with the members' spread (``ml_surrogate``, ensembles only), and beside them the MC the
    replica learnt from (``mc_train``: its own training set, ``replica_mc``, as the template, the
    background it would fit without a flow). Each replica fits every background to the same
    pseudo-data.

    A single MC template shared by all replicas (test_b) would not do as the MC baseline: its one
    fluctuation would be common to every replica, so its "coverage" would be near 0 or 1 at
    high luminosity whatever its staterror."""
    from flowsim.analysis.scan import lumi_grid
    from flowsim.analysis.template_files import ml_prediction_templates
    from flowsim.plots.worth import plot_coverage

    config = AnalysisConfig.from_mapping(section)
    lumis = lumi_grid(*lumi_fb)
    edges = {o: config.edges(o) for o in config.observables}
    predictions = {name: ml_prediction_templates(files, edges, run=name) for name, files in replicas.items()}
    log.info("coverage: %d replicas, %d luminosities from %g to %g /fb", len(replicas), len(lumis), lumis[0], lumis[-1])
    rows = []
    for observable in config.observables:
        signal_t = selected_template(signal, observable, config, "MC signal")
        truth_t = selected_template(truth, observable, config, "truth")
        mc = [selected_template(replica_mc[name], observable, config, f"{name}'s training set") for name in replicas]
        ml = [predictions[name][observable] for name in replicas]
        models = [("mc_train", mc, False), ("ml", ml, False)]
        if all(isinstance(p, EnsembleTemplate) for p in ml):
            models.append(("ml_surrogate", ml, True))
        for alpha in config.alphas:
            for label, preds, with_surrogate in models:
                points = analysis_worth.coverage_scan(
                    signal_t, truth_t, preds, lumis=lumis, alpha=alpha, sigma_b_fb=config.sigma_b_fb,
                    shapesys_rel=shapesys_rel, seed=seed, with_surrogate=with_surrogate, background=label,
                )  # fmt: skip
                rows += [{"observable": observable, "alpha": alpha_label(alpha), **p.as_row()} for p in points]
                log.info(
                    "coverage of %s, alpha %s, %s: %s", observable, alpha_label(alpha), label,
                    ", ".join(f"{p.fraction:.2f} at {p.lumi_fb:.3g}/fb" for p in points),
                )  # fmt: skip
    io.write_tsv(outputs.table, rows, COVERAGE_COLUMNS)
    plot_coverage(rows, outputs.plot)
    return rows
