"""The evaluation stage (``workflow/rules/evaluate.smk``): how close is each run's generated
background to the MC it must replace?

* :func:`eval_distances`: per-feature χ², KL, Hellinger and Wasserstein-1 of the generated
  sample against MC test_a, with the MC test_a vs test_b baseline, every feature pair's copula
  χ² with its baseline, and the distribution plots.
* :func:`c2st_null`: the classifier two-sample test on MC test_a vs MC test_b (the noise
  floor), computed once and shared by every run.
* :func:`c2st`: the same test on MC test_a vs one run's generated events, with the ROC, the
  density ratio r = D/(1−D) and the features of the events in its tails.
* :func:`reweight` (optional): classifier weights w = D/(1−D) for each generated event
  (:mod:`flowsim.reweighting`), as a friend tree of the sample.
* :func:`eval_weighted` (optional): the tree C2ST and the KS distances of the sample
  unweighted and weighted, side by side.

Every sample that enters a classifier is mapped by the one scaler fitted on the background
training split, so MC and generated events are compared in the same space. Weighted MC (a
``weight`` branch in test_a or test_b, :func:`flowsim.io.read_weights`) enters the distances and
the classifier tests with its weights; generated samples are unweighted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from flowsim import io
from flowsim.data.scaling import Scaler, load_scaler
from flowsim.metrics.copula import PairRow, copula_pair_table, mean_chi2_per_dof, write_copula_pairs_tsv
from flowsim.metrics.distances import DistanceRow, distance_table, ks_distance, write_distances_tsv
from flowsim.metrics.roc import density_ratio, roc_curve
from flowsim.stages import PathLike

# The classifiers need torch (~1.3 s to import); the distances job does not, so the rules that
# train a classifier import them themselves.
if TYPE_CHECKING:
    from flowsim.metrics.c2st import C2STResult

__all__ = [
    "C2ST_ROWS",
    "WEIGHTED_COLUMNS",
    "C2STOutputs",
    "C2STNullOutputs",
    "DistancesOutputs",
    "ReweightOutputs",
    "WeightedOutputs",
    "c2st",
    "c2st_null",
    "eval_distances",
    "eval_weighted",
    "reweight",
]

log = logging.getLogger(__name__)

#: Rows of a run's ``c2st.tsv``.
C2ST_ROWS = ("auc", "auc_null", "accuracy", "accuracy_null", "n_train", "n_test")
#: Columns of ``weighted.tsv``: each figure of merit of the unweighted and the weighted sample.
WEIGHTED_COLUMNS = ("metric", "unweighted", "weighted")
_METRIC_COLUMNS = ["metric", "value", "error"]


# --- eval_distances --------------------------------------------------------------------------


@dataclass(frozen=True)
class DistancesOutputs:
    """The outputs of rule ``eval_distances``."""

    table: PathLike
    summary: PathLike
    linear: PathLike
    log: PathLike
    corner: PathLike
    copula_table: PathLike
    copula: PathLike


@dataclass(frozen=True)
class Distances:
    """The three samples in data units (rows: events, columns: ``features``) and their figures."""

    features: list[str]
    mc: np.ndarray
    generated: np.ndarray
    rows: list[DistanceRow]
    pairs: list[PairRow]
    mc_weights: np.ndarray | None = None


def compute_distances(
    *, test_a: PathLike, test_b: PathLike, generated: PathLike, features: Sequence[str],
    n_bins: int, n_resamples: int, seed: int, n_jobs: int = 1,
) -> Distances:  # fmt: skip
    """Distances per feature with their MC baseline (``n_jobs`` threads) and every feature
    pair's copula χ² with its MC baseline (:mod:`flowsim.metrics.distances`, :mod:`flowsim.metrics.copula`)."""
    features = list(features)
    mc_a, mc_b = io.read_matrix(test_a, features), io.read_matrix(test_b, features)
    weights_a, weights_b = io.read_weights(test_a), io.read_weights(test_b)
    gen = io.read_matrix(generated, features)
    rows = distance_table(
        mc_a, gen, mc_b, features, n_bins=n_bins, n_resamples=n_resamples, seed=seed, n_jobs=n_jobs,
        weights_a=weights_a, weights_b=weights_b,
    )  # fmt: skip
    for row in rows:
        if row.feature == "mean":
            log.info("mean %s: %.4g ± %.2g (MC baseline %.4g)", row.metric, row.value, row.std, row.baseline)
    pairs = copula_pair_table(mc_a, gen, mc_b, features, seed=seed)
    if pairs:
        mean_gen, mean_base = mean_chi2_per_dof(pairs)
        log.info("copula chi2/dof over %d pairs: %.3f (MC baseline %.3f); worst: %s", len(pairs), mean_gen,
                 mean_base, ", ".join(f"{r.feature_1}-{r.feature_2} {r.chi2 / r.dof:.2f}" for r in pairs[:3]))
    return Distances(features, mc_a, gen, rows, pairs, weights_a)


def write_distances(result: Distances, outputs: DistancesOutputs) -> None:
    """The distance and copula tables, and the distribution plots."""
    from flowsim.plots.distributions import plot_distance_summary, plot_feature_grid
    from flowsim.plots.pairs import plot_copula_pairs, plot_corner

    write_distances_tsv(outputs.table, result.rows)
    plot_distance_summary(result.rows, outputs.summary)
    write_copula_pairs_tsv(outputs.copula_table, result.pairs)
    plot_copula_pairs(result.pairs, result.features, outputs.copula)
    weights = result.mc_weights
    plot_feature_grid(result.mc, result.generated, result.features, outputs.linear, log=False, mc_weights=weights)
    plot_feature_grid(result.mc, result.generated, result.features, outputs.log, log=True, mc_weights=weights)
    plot_corner(result.mc, result.generated, result.features, outputs.corner)


def eval_distances(outputs: DistancesOutputs, *, units: Mapping[str, str] | None = None, **inputs: Any) -> Distances:
    """Rule ``eval_distances``: :func:`compute_distances` of ``inputs``, then :func:`write_distances`
    (axis labels with the features' ``units``, :func:`~flowsim.plots.labels.declare_units`)."""
    from flowsim.plots.labels import declare_units

    declare_units(units)
    result = compute_distances(**inputs)
    write_distances(result, outputs)
    return result


# --- c2st_null and c2st ----------------------------------------------------------------------


@dataclass(frozen=True)
class C2STNullOutputs:
    """The outputs of rule ``c2st_null``."""

    table: PathLike
    scores: PathLike


@dataclass(frozen=True)
class C2STOutputs:
    """The outputs of rule ``c2st``."""

    table: PathLike
    history: PathLike
    loss: PathLike
    roc: PathLike
    scores: PathLike
    ratio: PathLike
    tails: PathLike


@dataclass(frozen=True)
class TwoSampleTest:
    """A C2ST of MC test_a (label 0) vs a candidate (label 1), with the scaler of both."""

    scaler: Scaler
    reference: np.ndarray  # data units
    result: C2STResult


def _read_pair(scaler_path: PathLike, first: PathLike, second: PathLike) -> tuple[Scaler, np.ndarray, np.ndarray]:
    """The fitted scaler and two samples' model features in data units."""
    scaler = load_scaler(scaler_path)
    features = list(scaler.features)
    return scaler, io.read_matrix(first, features), io.read_matrix(second, features)


def compute_c2st(
    *, reference: PathLike, candidate: PathLike, scaler: PathLike, section: Mapping[str, Any], name: str
) -> TwoSampleTest:
    """The C2ST (:func:`~flowsim.metrics.c2st.classifier_two_sample_test`, settings of the config
    section ``c2st``) of ``reference`` vs ``candidate``, both mapped by ``scaler``, each with its
    event weights if it has any (MC test_a and test_b may; a generated sample has none)."""
    from flowsim.metrics.c2st import C2STSettings, classifier_two_sample_test

    scaler_obj, x_ref, x_cand = _read_pair(scaler, reference, candidate)
    settings = C2STSettings.from_mapping({k: v for k, v in section.items() if k != "seed"})
    result = classifier_two_sample_test(
        scaler_obj.transform(x_ref), scaler_obj.transform(x_cand), settings=settings,
        seed=section.get("seed", 0), name=name, reference_weights=io.read_weights(reference),
        candidate_weights=io.read_weights(candidate),
    )  # fmt: skip
    return TwoSampleTest(scaler_obj, x_ref, result)


def _metric_rows(result: C2STResult, null: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The rows of a C2ST table; with ``null`` (the null table by metric) those of a run."""
    rows = [
        {"metric": "auc", "value": result.auc, "error": result.auc_err},
        {"metric": "accuracy", "value": result.accuracy, "error": result.accuracy_err},
        {"metric": "n_train", "value": result.n_train, "error": 0},
        {"metric": "n_test", "value": result.n_test, "error": 0},
    ]
    if null is not None:
        for index, metric in ((1, "auc"), (3, "accuracy")):
            value, error = float(null[metric]["value"]), float(null[metric]["error"])
            rows.insert(index, {"metric": f"{metric}_null", "value": value, "error": error})
    return rows


def write_c2st_null(test: TwoSampleTest, outputs: C2STNullOutputs) -> None:
    """The null's table and its test-part scores (for the null ROC of every run's plot)."""
    io.write_tsv(outputs.table, _metric_rows(test.result), _METRIC_COLUMNS)
    with io.atomic_output(outputs.scores, suffix=".npz") as tmp:
        np.savez(tmp, d_reference=test.result.d_reference, d_candidate=test.result.d_candidate)


def c2st_null(
    outputs: C2STNullOutputs, *, test_a: PathLike, test_b: PathLike, scaler: PathLike,
    section: Mapping[str, Any], threads: int = 1,
) -> TwoSampleTest:  # fmt: skip
    """Rule ``c2st_null``: C2ST of MC test_a vs MC test_b, the floor every flow is judged against."""
    from flowsim.training import configure_torch

    configure_torch(threads)
    test = compute_c2st(
        reference=test_a, candidate=test_b, scaler=scaler, section=section, name="c2st null (MC test_a vs test_b)"
    )
    write_c2st_null(test, outputs)
    return test


def write_c2st(
    test: TwoSampleTest, outputs: C2STOutputs, *, run: str, null_table: PathLike, null_scores: PathLike
) -> None:
    """A run's C2ST table (with the null's rows), the classifier's history and the plots."""
    from flowsim.plots.c2st import plot_density_ratio, plot_ratio_tails, plot_roc, plot_score_distributions
    from flowsim.plots.training import plot_history
    from flowsim.training import write_history

    result = test.result
    null = {row["metric"]: row for row in io.read_tsv(null_table)}
    io.write_tsv(outputs.table, _metric_rows(result, null), _METRIC_COLUMNS)
    write_history(outputs.history, result.training.history)
    plot_history(
        result.training.history, outputs.loss, title=f"C2ST classifier, {run} vs MC", ylabel="binary cross-entropy"
    )
    with np.load(null_scores, allow_pickle=False) as f:
        null_curve = roc_curve(f["d_candidate"], f["d_reference"])
    plot_roc(
        result.roc, outputs.roc, auc=result.auc, auc_err=result.auc_err,
        curve_null=null_curve, auc_null=float(null["auc"]["value"]), auc_null_err=float(null["auc"]["error"]),
    )  # fmt: skip
    plot_score_distributions(result.d_reference, result.d_candidate, outputs.scores)
    r_mc, clipped_mc = density_ratio(result.d_reference)
    r_gen, clipped_gen = density_ratio(result.d_candidate)
    if clipped_mc or clipped_gen:
        log.info("density ratio: %d MC and %d generated scores clipped away from 0 and 1", clipped_mc, clipped_gen)
    plot_density_ratio(r_mc, r_gen, outputs.ratio)
    plot_ratio_tails(
        test.reference, test.scaler.inverse(result.test_candidate), r_gen, list(test.scaler.features), outputs.tails
    )


def c2st(
    outputs: C2STOutputs, *, run: str, test_a: PathLike, generated: PathLike, scaler: PathLike,
    null_table: PathLike, null_scores: PathLike, section: Mapping[str, Any], threads: int = 1,
    units: Mapping[str, str] | None = None,
) -> TwoSampleTest:  # fmt: skip
    """Rule ``c2st``: C2ST of MC test_a (label 0) vs the run's generated events (label 1); the
    plots label the features with their ``units``."""
    from flowsim.plots.labels import declare_units
    from flowsim.training import configure_torch

    declare_units(units)
    configure_torch(threads)
    test = compute_c2st(reference=test_a, candidate=generated, scaler=scaler, section=section, name=f"c2st {run}")
    write_c2st(test, outputs, run=run, null_table=null_table, null_scores=null_scores)
    return test


# --- reweight and eval_weighted --------------------------------------------------------------


@dataclass(frozen=True)
class ReweightOutputs:
    """The outputs of rule ``reweight``."""

    weights: PathLike
    info: PathLike


def reweight(
    outputs: ReweightOutputs, *, model: PathLike, scaler: PathLike, reference: PathLike,
    generated: PathLike, section: Mapping[str, Any], chunk_size: int = 200_000, threads: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """Rule ``reweight``: weights for every event of a run's generated sample, as a friend tree.

    The classifier separates ``reference`` (MC background val: the flow saw it only for early
    stopping, and the evaluation and the analysis use test_a and test_b) from a *second* sample
    of the flow of the same size, drawn with the section's seed
    (:func:`~flowsim.reweighting.fit_flow_reweighter`); the weighted sample is the run's
    ``generated.root``, which the classifier never saw. Entry i of the friend tree weighs entry
    i of the sample; the weights are streamed chunk by chunk.
    """
    from flowsim.reweighting import ReweightSettings, fit_flow_reweighter, write_weights
    from flowsim.training import configure_torch

    configure_torch(threads)
    settings = ReweightSettings.from_section(section)
    reweighter = fit_flow_reweighter(
        model, scaler, reference, settings=settings, seed=int(section.get("seed", 0))
    )
    info = write_weights(reweighter, generated, outputs.weights, chunk_size=chunk_size)
    io.write_json(outputs.info, info)
    return info


@dataclass(frozen=True)
class WeightedOutputs:
    """The outputs of rule ``eval_weighted``."""

    table: PathLike
    features: PathLike


@dataclass(frozen=True)
class WeightedComparison:
    """The generated sample against MC test_a without and with its weights."""

    features: list[str]
    mc: np.ndarray
    generated: np.ndarray
    weights: np.ndarray
    rows: list[dict[str, Any]]


def compare_weighted(
    *, test_a: PathLike, generated: PathLike, weights: PathLike, features: Sequence[str], seed: int
) -> WeightedComparison:
    """The tree C2ST AUC and its error (:func:`~flowsim.metrics.c2st.tree_two_sample_test`), the
    largest and the mean per-feature KS distance, and the number of events (effective number
    (Σw)²/Σw² when weighted), of the sample unweighted and weighted; MC test_a with its event
    weights if it has any."""
    from flowsim.metrics.c2st import tree_two_sample_test
    from flowsim.reweighting import WEIGHT_BRANCH, effective_size

    features = list(features)
    mc, gen = io.read_matrix(test_a, features), io.read_matrix(generated, features)
    mc_weights = io.read_weights(test_a)
    w = io.read_matrix(weights, [WEIGHT_BRANCH])[:, 0].astype(np.float64)
    if len(w) != len(gen):
        raise ValueError(f"{weights} has {len(w)} weights but {generated} has {len(gen)} events")
    figures = {}
    for label, weight in (("unweighted", None), ("weighted", w)):
        tree = tree_two_sample_test(mc, gen, candidate_weights=weight, reference_weights=mc_weights, seed=seed)
        ks = [ks_distance(mc[:, j], gen[:, j], weight, weights_x=mc_weights) for j in range(len(features))]
        figures[label] = {
            "tree_c2st_auc": tree.auc, "tree_c2st_auc_err": tree.std, "max_ks": max(ks),
            "mean_ks": float(np.mean(ks)),
            "events": float(len(gen)) if weight is None else effective_size(weight),
        }  # fmt: skip
        log.info("%s: tree C2ST AUC %.4f ± %.4f, max KS %.4f", label, tree.auc, tree.std, max(ks))
    rows = [
        {"metric": m, "unweighted": figures["unweighted"][m], "weighted": figures["weighted"][m]}
        for m in figures["unweighted"]
    ]
    return WeightedComparison(features, mc, gen, w, rows)


def write_weighted(result: WeightedComparison, outputs: WeightedOutputs) -> None:
    """The side-by-side table, and every feature: MC vs the weighted sample."""
    from flowsim.plots.distributions import plot_feature_grid

    io.write_tsv(outputs.table, result.rows, WEIGHTED_COLUMNS)
    plot_feature_grid(
        result.mc, result.generated, result.features, outputs.features,
        weights=result.weights.astype(np.float32), gen_label="generated, weighted",
    )  # fmt: skip


def eval_weighted(outputs: WeightedOutputs, **inputs: Any) -> list[dict[str, Any]]:
    """Rule ``eval_weighted``: :func:`compare_weighted` of ``inputs``, then :func:`write_weighted`."""
    result = compare_weighted(**inputs)
    write_weighted(result, outputs)
    return result.rows
