"""The jobs of the evaluation stage, called by the workflow's scripts.

* :func:`eval_distances_job`: per-feature χ², KL, Hellinger and Wasserstein-1 of the generated
  sample against MC test_a, with the MC test_a vs test_b baseline, and the distribution plots.
* :func:`c2st_null_job`: the classifier two-sample test on MC test_a vs MC test_b (the noise
  floor), computed once and shared by every run.
* :func:`c2st_job`: the same test on MC test_a vs one run's generated events, with the ROC,
  the density ratio r = D/(1−D) and the features of the events in its tails.
* :func:`eval_weighted_job`: with the optional classifier weights (:mod:`flowsim.reweighting`),
  the tree C2ST and the KS distances of the sample unweighted and weighted, side by side.

Every sample that enters a classifier is mapped by the one scaler fitted on the background
training split, so MC and generated events are compared in the same space.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from flowsim import io
from flowsim.data.scaling import Scaler, load_scaler
from flowsim.metrics.copula import copula_pair_table, mean_chi2_per_dof, write_copula_pairs_tsv
from flowsim.metrics.distances import distance_table, ks_distance, write_distances_tsv
from flowsim.metrics.roc import density_ratio, roc_curve

# The classifiers need torch (~1.3 s to import); the distances job does not, so the jobs that
# train a classifier import them themselves.
if TYPE_CHECKING:
    from flowsim.metrics.c2st import C2STResult

__all__ = ["C2ST_ROWS", "WEIGHTED_COLUMNS", "c2st_job", "c2st_null_job", "eval_distances_job", "eval_weighted_job"]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
C2ST_ROWS = ("auc", "auc_null", "accuracy", "accuracy_null", "n_train", "n_test")
#: Columns of ``weighted.tsv``: each figure of merit of the unweighted and the weighted sample.
WEIGHTED_COLUMNS = ("metric", "unweighted", "weighted")


def eval_weighted_job(
    *, test_a: PathLike, generated: PathLike, weights: PathLike, features: Sequence[str], seed: int,
    table_out: PathLike, plot_out: PathLike,
) -> list[dict[str, Any]]:  # fmt: skip
    """The generated sample against MC test_a without and with its classifier weights.

    Rows: the tree C2ST AUC and its error (:func:`~flowsim.metrics.c2st.tree_two_sample_test`),
    the largest and the mean per-feature KS distance, and the number of events (effective
    number (Σw)²/Σw² when weighted). Plot: every feature, MC vs the weighted sample.
    """
    from flowsim.metrics.c2st import tree_two_sample_test
    from flowsim.plots.distributions import plot_feature_grid
    from flowsim.reweighting import WEIGHT_BRANCH, effective_size

    features = list(features)
    mc, gen = io.read_matrix(test_a, features), io.read_matrix(generated, features)
    w = io.read_matrix(weights, [WEIGHT_BRANCH])[:, 0].astype(np.float64)
    if len(w) != len(gen):
        raise ValueError(f"{weights} has {len(w)} weights but {generated} has {len(gen)} events")
    figures = {}
    for label, weight in (("unweighted", None), ("weighted", w)):
        tree = tree_two_sample_test(mc, gen, candidate_weights=weight, seed=seed)
        ks = [ks_distance(mc[:, j], gen[:, j], weight) for j in range(len(features))]
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
    io.write_tsv(table_out, rows, WEIGHTED_COLUMNS)
    plot_feature_grid(mc, gen, features, plot_out, weights=w.astype(np.float32), gen_label="generated, weighted")
    return rows


def eval_distances_job(
    *,
    test_a: PathLike,
    test_b: PathLike,
    generated: PathLike,
    features: Sequence[str],
    n_bins: int,
    n_resamples: int,
    seed: int,
    table_out: PathLike,
    summary_plot: PathLike,
    linear_plot: PathLike,
    log_plot: PathLike,
    corner_plot: PathLike,
    copula_table_out: PathLike,
    copula_plot: PathLike,
    n_jobs: int = 1,
) -> None:
    """Distances per feature with their MC baseline (``n_jobs`` threads), every feature pair's
    copula χ² with its MC baseline, and the distribution plots."""
    from flowsim.plots.distributions import plot_copula_pairs, plot_corner, plot_distance_summary, plot_feature_grid

    features = list(features)
    mc_a, mc_b = io.read_matrix(test_a, features), io.read_matrix(test_b, features)
    gen = io.read_matrix(generated, features)
    rows = distance_table(
        mc_a, gen, mc_b, features, n_bins=n_bins, n_resamples=n_resamples, seed=seed, n_jobs=n_jobs
    )
    write_distances_tsv(table_out, rows)
    for row in rows:
        if row.feature == "mean":
            log.info("mean %s: %.4g ± %.2g (MC baseline %.4g)", row.metric, row.value, row.std, row.baseline)
    plot_distance_summary(rows, summary_plot)
    pairs = copula_pair_table(mc_a, gen, mc_b, features, seed=seed)
    write_copula_pairs_tsv(copula_table_out, pairs)
    if pairs:
        mean_gen, mean_base = mean_chi2_per_dof(pairs)
        log.info("copula chi2/dof over %d pairs: %.3f (MC baseline %.3f); worst: %s", len(pairs), mean_gen,
                 mean_base, ", ".join(f"{r.feature_1}-{r.feature_2} {r.chi2 / r.dof:.2f}" for r in pairs[:3]))
    plot_copula_pairs(pairs, features, copula_plot)
    plot_feature_grid(mc_a, gen, features, linear_plot, log=False)
    plot_feature_grid(mc_a, gen, features, log_plot, log=True)
    plot_corner(mc_a, gen, features, corner_plot)


def _read_pair(
    scaler_path: PathLike, first: PathLike, second: PathLike
) -> tuple[Scaler, np.ndarray, np.ndarray]:
    """The fitted scaler and two samples' model features in data units."""
    scaler = load_scaler(scaler_path)
    features = list(scaler.features)
    return scaler, io.read_matrix(first, features), io.read_matrix(second, features)


def _run_c2st(reference: np.ndarray, candidate: np.ndarray, section: Mapping[str, Any], name: str) -> C2STResult:
    from flowsim.metrics.c2st import C2STSettings, classifier_two_sample_test

    settings = {k: v for k, v in section.items() if k != "seed"}
    return classifier_two_sample_test(
        reference, candidate, settings=C2STSettings.from_mapping(settings), seed=section.get("seed", 0), name=name
    )


def c2st_null_job(
    *, test_a: PathLike, test_b: PathLike, scaler: PathLike, section: Mapping[str, Any],
    table_out: PathLike, scores_out: PathLike,
) -> None:  # fmt: skip
    """C2ST of MC test_a (label 0) vs MC test_b (label 1): the floor every flow is judged against."""
    scaler_obj, reference, candidate = _read_pair(scaler, test_a, test_b)
    result = _run_c2st(
        scaler_obj.transform(reference), scaler_obj.transform(candidate), section,
        "c2st null (MC test_a vs test_b)",
    )  # fmt: skip
    rows = [
        {"metric": "auc", "value": result.auc, "error": result.auc_err},
        {"metric": "accuracy", "value": result.accuracy, "error": result.accuracy_err},
        {"metric": "n_train", "value": result.n_train, "error": 0},
        {"metric": "n_test", "value": result.n_test, "error": 0},
    ]
    io.write_tsv(table_out, rows, ["metric", "value", "error"])
    with io.atomic_output(scores_out, suffix=".npz") as tmp:
        np.savez(tmp, d_reference=result.d_reference, d_candidate=result.d_candidate)


def c2st_job(
    *,
    test_a: PathLike,
    generated: PathLike,
    scaler: PathLike,
    null_table: PathLike,
    null_scores: PathLike,
    section: Mapping[str, Any],
    run: str,
    table_out: PathLike,
    history_out: PathLike,
    history_plot: PathLike,
    roc_plot: PathLike,
    scores_plot: PathLike,
    ratio_plot: PathLike,
    tails_plot: PathLike,
) -> None:
    """C2ST of MC test_a (label 0) vs the run's generated events (label 1), with its plots."""
    from flowsim.plots.c2st import plot_density_ratio, plot_ratio_tails, plot_roc, plot_score_distributions
    from flowsim.plots.training import plot_history
    from flowsim.training import write_history

    scaler_obj, mc, generated_events = _read_pair(scaler, test_a, generated)
    result = _run_c2st(
        scaler_obj.transform(mc), scaler_obj.transform(generated_events), section, f"c2st {run}"
    )
    null = {row["metric"]: row for row in io.read_tsv(null_table)}
    rows = [
        {"metric": "auc", "value": result.auc, "error": result.auc_err},
        {"metric": "auc_null", "value": float(null["auc"]["value"]), "error": float(null["auc"]["error"])},
        {"metric": "accuracy", "value": result.accuracy, "error": result.accuracy_err},
        {"metric": "accuracy_null", "value": float(null["accuracy"]["value"]),
         "error": float(null["accuracy"]["error"])},
        {"metric": "n_train", "value": result.n_train, "error": 0},
        {"metric": "n_test", "value": result.n_test, "error": 0},
    ]  # fmt: skip
    io.write_tsv(table_out, rows, ["metric", "value", "error"])
    write_history(history_out, result.training.history)
    plot_history(
        result.training.history, history_plot,
        title=f"C2ST classifier, {run} vs MC", ylabel="binary cross-entropy",
    )  # fmt: skip

    with np.load(null_scores, allow_pickle=False) as f:
        null_curve = roc_curve(f["d_candidate"], f["d_reference"])
    plot_roc(
        result.roc, roc_plot, auc=result.auc, auc_err=result.auc_err,
        curve_null=null_curve, auc_null=float(null["auc"]["value"]), auc_null_err=float(null["auc"]["error"]),
    )  # fmt: skip
    plot_score_distributions(result.d_reference, result.d_candidate, scores_plot)
    r_mc, clipped_mc = density_ratio(result.d_reference)
    r_gen, clipped_gen = density_ratio(result.d_candidate)
    if clipped_mc or clipped_gen:
        log.info("density ratio: %d MC and %d generated scores clipped away from 0 and 1", clipped_mc, clipped_gen)
    plot_density_ratio(r_mc, r_gen, ratio_plot)
    plot_ratio_tails(
        mc, scaler_obj.inverse(result.test_candidate), r_gen, list(scaler_obj.features), tails_plot
    )
