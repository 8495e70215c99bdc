"""Classifier two-sample test (C2ST): can a classifier tell generated events from Monte Carlo?

Both samples, already mapped by the *same* fitted scaler, are cut to equal size ``n``, labelled
0 (MC reference) and 1 (candidate), shuffled and split into a training part (with a validation
slice for early stopping) and a held-out test part. A residual MLP is trained with the shared
trainer; on the test part the ROC AUC (Mann–Whitney, with its DeLong standard error) and the
accuracy at ``D = ½`` (binomial error) measure how distinguishable the samples are: AUC = ½ when
the candidate is indistinguishable from MC, 1 when perfectly separable.

The classifier output ``D(x)`` estimates ``p_gen / (p_gen + p_MC)`` for balanced classes, so the
density ratio ``r(x) = D / (1 − D)`` estimates ``p_gen(x) / p_MC(x)``: events with large ``r``
are over-produced by the flow, events with small ``r`` under-produced.

The null reference is the same test on two independent MC samples (test_a vs test_b): its AUC is
the noise floor a perfect generator would reach at this sample size and classifier.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np

from flowsim.classifier import TWO_SAMPLE_TRAINING, fit_classifier, predict_proba
from flowsim.metrics.roc import (
    AucEstimate,
    RocCurve,
    accuracy_at_threshold,
    auc_delong,
    roc_curve,
    weighted_auc,
)  # fmt: skip
from flowsim.training import TrainConfig, TrainResult

__all__ = [
    "C2STResult", "C2STSettings", "CopulaMarginalTests", "classifier_two_sample_test",
    "copula_and_marginal_tests", "tree_two_sample_test", "with_marginals_of",
]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class C2STSettings:
    """Settings of the test (config section ``c2st``)."""

    test_fraction: float = 0.5
    val_fraction: float = 0.2
    max_events: int | None = None
    hidden: int = 128
    residual_blocks: int = 2
    dropout: float = 0.1
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("test_fraction", "val_fraction"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ValueError(f"c2st.{key} must lie in (0, 1), got {getattr(self, key)}")

    @classmethod
    def from_mapping(cls, section: dict[str, Any]) -> C2STSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"unknown c2st setting(s) {unknown}; known: {sorted(known)}")
        return cls(**section)


@dataclass(frozen=True)
class C2STResult:
    """Outcome of one C2ST; test-part scores kept for plots of D and r = D/(1−D)."""

    auc: float
    auc_err: float
    accuracy: float
    accuracy_err: float
    n_train: int
    n_test: int
    roc: RocCurve
    d_reference: np.ndarray
    d_candidate: np.ndarray
    test_candidate: np.ndarray
    training: TrainResult


def _equal_size(
    reference: np.ndarray, candidate: np.ndarray, max_events: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(reference), len(candidate), max_events or math.inf)
    pick = lambda a: a[rng.choice(len(a), size=int(n), replace=False)] if len(a) > n else a  # noqa: E731
    return pick(reference), pick(candidate)


def classifier_two_sample_test(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    settings: C2STSettings = C2STSettings(),
    seed: int = 0,
    name: str = "c2st",
) -> C2STResult:
    """Train a classifier to separate ``candidate`` (label 1) from ``reference`` (label 0).

    Both arrays are (n, D) in the same scaled space. Returns AUC ± DeLong error and accuracy ±
    binomial error on the held-out part.
    """
    if reference.ndim != 2 or candidate.ndim != 2 or reference.shape[1] != candidate.shape[1]:
        raise ValueError(f"samples must be (n, D) alike, got {reference.shape} and {candidate.shape}")
    rng = np.random.default_rng(seed)
    ref, cand = _equal_size(reference, candidate, settings.max_events, rng)
    n = len(ref)
    x = np.concatenate([ref, cand]).astype(np.float32)
    y = np.concatenate([np.zeros(n), np.ones(n)]).astype(np.float32)
    order = rng.permutation(2 * n)
    n_test = int(round(settings.test_fraction * 2 * n))
    n_val = int(round(settings.val_fraction * (2 * n - n_test)))
    test, val, fit = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    if min(len(test), len(val), len(fit)) < 2 or len(np.unique(y[test])) < 2:
        raise ValueError(f"{name}: too few events for a two-sample test ({n} per sample)")

    config = TrainConfig(**{**TWO_SAMPLE_TRAINING, "seed": seed, **settings.training})
    model, history = fit_classifier(
        (x[fit], y[fit]), (x[val], y[val]), config, hidden=settings.hidden,
        residual_blocks=settings.residual_blocks, dropout=settings.dropout, name=name,
    )  # fmt: skip

    d = predict_proba(model, x[test])
    d_ref, d_cand = d[y[test] == 0], d[y[test] == 1]
    estimate = auc_delong(d_cand, d_ref)
    accuracy = accuracy_at_threshold(d_cand, d_ref, 0.5)
    result = C2STResult(
        auc=estimate.auc,
        auc_err=estimate.std,
        accuracy=accuracy,
        accuracy_err=math.sqrt(accuracy * (1 - accuracy) / len(test)),
        n_train=len(fit) + len(val),
        n_test=len(test),
        roc=roc_curve(d_cand, d_ref),
        d_reference=d_ref,
        d_candidate=d_cand,
        test_candidate=x[test][y[test] == 1],
        training=history,
    )
    log.info(
        "%s: AUC %.4f ± %.4f, accuracy %.4f ± %.4f (%d train+val, %d test events)",
        name, result.auc, result.auc_err, result.accuracy, result.accuracy_err,
        result.n_train, result.n_test,
    )  # fmt: skip
    return result


def tree_two_sample_test(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    candidate_weights: np.ndarray | None = None,
    test_fraction: float = 0.5,
    max_events: int | None = None,
    seed: int = 0,
) -> AucEstimate:
    """The C2ST with a gradient-boosted-tree classifier instead of the MLP: a second opinion
    from a classifier of another kind, with no scaling (trees are invariant to monotone maps).

    Equal-size samples, ``test_fraction`` held out; scikit-learn's histogram gradient boosting
    with early stopping on an internal 10% split. With ``candidate_weights`` (e.g. the density
    ratio weights of :mod:`flowsim.reweighting`) the candidate is the weighted sample: the
    weights enter the fit (normalised so both classes carry equal weight) and the AUC
    (:func:`~flowsim.metrics.roc.weighted_auc`). Returns the AUC with its (weighted) DeLong error.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    if reference.ndim != 2 or candidate.ndim != 2 or reference.shape[1] != candidate.shape[1]:
        raise ValueError(f"samples must be (n, D) alike, got {reference.shape} and {candidate.shape}")
    rng = np.random.default_rng(seed)
    if candidate_weights is None:
        candidate_weights = np.ones(len(candidate))
    if len(candidate_weights) != len(candidate):
        raise ValueError(f"{len(candidate_weights)} weights for {len(candidate)} candidate events")
    n = int(min(len(reference), len(candidate), max_events or math.inf))
    ref = reference[rng.choice(len(reference), size=n, replace=False)]
    pick = rng.choice(len(candidate), size=n, replace=False)
    cand, cand_w = candidate[pick], np.asarray(candidate_weights, dtype=np.float64)[pick]
    x = np.concatenate([ref, cand])
    y = np.r_[np.zeros(n), np.ones(n)]
    w = np.r_[np.ones(n), cand_w * n / cand_w.sum()]
    order = rng.permutation(2 * n)
    n_test = int(round(test_fraction * 2 * n))
    test, fit = order[:n_test], order[n_test:]
    model = HistGradientBoostingClassifier(
        max_iter=500, learning_rate=0.1, early_stopping=True, validation_fraction=0.1,
        n_iter_no_change=20, random_state=seed,
    )  # fmt: skip
    model.fit(x[fit], y[fit], sample_weight=w[fit])
    d = model.predict_proba(x[test])[:, 1]
    is_cand = y[test] == 1
    return weighted_auc(d[is_cand], d[~is_cand], w[test][is_cand])


def with_marginals_of(sample: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """``sample``'s copula with ``donor``'s marginals.

    Column j of the result takes, for each event, the donor's order statistic at the event's
    rank in the sample: ``x'_ij = d_j,(k)`` with ``k = ⌊(r_ij + ½) m / n⌋``, ``r_ij ∈ {0, …, n−1}``
    the rank of ``x_ij`` in its column (ties in order of appearance), n and m the sizes of sample
    and donor. The ranks, and with them every rank statistic of the sample (its copula, Kendall's
    τ, Spearman's ρ), stay as they were; for m = n each column is a permutation of the donor's,
    so the marginals are exactly the donor's.
    """
    sample, donor = np.asarray(sample), np.asarray(donor)
    if sample.ndim != 2 or donor.ndim != 2 or sample.shape[1] != donor.shape[1]:
        raise ValueError(f"samples must be (n, D) alike, got {sample.shape} and {donor.shape}")
    n, m = len(sample), len(donor)
    ranks = np.argsort(np.argsort(sample, axis=0, kind="stable"), axis=0, kind="stable")
    order = ((ranks + 0.5) * m / n).astype(np.int64)
    return np.take_along_axis(np.sort(donor, axis=0), order, axis=0)


class CopulaMarginalTests(NamedTuple):
    """Tree C2STs of the candidate's correlations and of its marginals, each on its own."""

    copula: AucEstimate  #: the candidate's copula with the baseline's marginals
    marginals: AucEstimate  #: the baseline's copula with the candidate's marginals


def copula_and_marginal_tests(
    reference: np.ndarray, candidate: np.ndarray, baseline: np.ndarray, *, seed: int = 0
) -> CopulaMarginalTests:
    """Where a candidate differs from the reference: in its correlations or in its marginals.

    ``baseline`` is a second sample of the reference's distribution, independent of the
    reference (test_b when the reference is test_a). The tree C2ST
    (:func:`tree_two_sample_test`) of the reference against (a) the candidate's copula carrying
    the baseline's marginals and (b) the baseline's copula carrying the candidate's marginals
    (:func:`with_marginals_of`): (a) is at the null when the candidate's correlations are right,
    whatever its marginals, and (b) when its marginals are right, whatever its correlations.
    The two excesses need not add up to the plain test's; they say which of the two to work on.
    """
    return CopulaMarginalTests(
        copula=tree_two_sample_test(reference, with_marginals_of(candidate, baseline), seed=seed),
        marginals=tree_two_sample_test(reference, with_marginals_of(baseline, candidate), seed=seed),
    )
