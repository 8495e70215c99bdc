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

Weighted MC (``reference_weights``, ``candidate_weights``; negative NLO weights allowed): the AUC
and the accuracy are those of the weighted samples (:func:`~flowsim.metrics.roc.weighted_auc`,
each class's weights scaled to mean 1), with errors from the effective (Kish) sizes, which the
result reports. The classifiers are *trained* on ``|w|``: with negative weights the empirical
cross-entropy is unbounded below (a flexible classifier can send ``D → 1`` on a negative-weight
MC event and gain without limit), and gradient boosting's Newton steps divide by sums of
hessians that signed weights can make zero or negative (scikit-learn accepts them silently).
Training on ``|w|`` costs power only where the negative weights matter; the test stays valid,
since any classifier fixed before the test part is scored gives a weighted AUC of ½ in
expectation when the signed-weighted MC and the candidate have the same distribution.
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
from flowsim.weights import check_weights, effective_sample_size, normalised

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
    """Outcome of one C2ST; test-part scores kept for plots of D and r = D/(1−D).

    ``n_test_effective`` is the test part's effective size, the sum of both classes' Kish sizes
    (Σw)²/Σw² (``n_test`` for unweighted samples)."""

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
    n_test_effective: float = math.nan


def _equal_size(
    n_reference: int, n_candidate: int, max_events: int | None, rng: np.random.Generator
) -> tuple[np.ndarray | slice, np.ndarray | slice]:
    """Which events of each sample to keep so that both have the same size."""
    n = min(n_reference, n_candidate, max_events or math.inf)
    pick = lambda m: rng.choice(m, size=int(n), replace=False) if m > n else slice(None)  # noqa: E731
    return pick(n_reference), pick(n_candidate)


def _class_weights(weights: np.ndarray | None, n_events: int, pick: np.ndarray | slice, name: str) -> np.ndarray:
    """The kept events' weights scaled to mean 1 (ones when unweighted): scale-free, so that MC
    weights in picobarn and a unit-weight candidate count alike."""
    if weights is None:
        return np.ones(n_events)[pick]
    kept = check_weights(weights, n_events, name=name)[pick]
    return normalised(check_weights(kept, len(kept), name=f"{name} (the events kept)"))


def _training_weights(signed: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``|w|`` scaled to mean 1 within each class (see the module's docstring for why ``|w|``)."""
    w = np.abs(signed)
    for label in (0, 1):
        w[y == label] /= w[y == label].mean()
    return w.astype(np.float32)


def classifier_two_sample_test(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    settings: C2STSettings = C2STSettings(),
    seed: int = 0,
    name: str = "c2st",
    reference_weights: np.ndarray | None = None,
    candidate_weights: np.ndarray | None = None,
) -> C2STResult:
    """Train a classifier to separate ``candidate`` (label 1) from ``reference`` (label 0).

    Both arrays are (n, D) in the same scaled space. Returns AUC ± DeLong error and accuracy ±
    binomial error on the held-out part. With event weights of either sample (weighted MC) the
    classifier is trained on ``|w|`` and the AUC ± its sandwich error and the accuracy are the
    weighted ones, with the effective test size (see the module's docstring); the events kept
    are the same as without weights.
    """
    if reference.ndim != 2 or candidate.ndim != 2 or reference.shape[1] != candidate.shape[1]:
        raise ValueError(f"samples must be (n, D) alike, got {reference.shape} and {candidate.shape}")
    rng = np.random.default_rng(seed)
    pick_ref, pick_cand = _equal_size(len(reference), len(candidate), settings.max_events, rng)
    ref, cand = reference[pick_ref], candidate[pick_cand]
    n = len(ref)
    weighted = reference_weights is not None or candidate_weights is not None
    if weighted:  # signed, each class scaled to mean 1
        w = np.concatenate([
            _class_weights(reference_weights, len(reference), pick_ref, f"{name}: reference"),
            _class_weights(candidate_weights, len(candidate), pick_cand, f"{name}: candidate"),
        ])  # fmt: skip
    x = np.concatenate([ref, cand]).astype(np.float32)
    y = np.concatenate([np.zeros(n), np.ones(n)]).astype(np.float32)
    order = rng.permutation(2 * n)
    n_test = int(round(settings.test_fraction * 2 * n))
    n_val = int(round(settings.val_fraction * (2 * n - n_test)))
    test, val, fit = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    if min(len(test), len(val), len(fit)) < 2 or len(np.unique(y[test])) < 2:
        raise ValueError(f"{name}: too few events for a two-sample test ({n} per sample)")

    config = TrainConfig(**{**TWO_SAMPLE_TRAINING, "seed": seed, **settings.training})
    if weighted:
        w_train = _training_weights(w, y)
        fit_data, val_data = (x[fit], y[fit], w_train[fit]), (x[val], y[val], w_train[val])
    else:
        fit_data, val_data = (x[fit], y[fit]), (x[val], y[val])
    model, history = fit_classifier(
        fit_data, val_data, config, hidden=settings.hidden,
        residual_blocks=settings.residual_blocks, dropout=settings.dropout, name=name,
    )  # fmt: skip

    d = predict_proba(model, x[test])
    d_ref, d_cand = d[y[test] == 0], d[y[test] == 1]
    if weighted:
        w_ref, w_cand = w[test][y[test] == 0], w[test][y[test] == 1]
        estimate = weighted_auc(d_cand, d_ref, w_cand, w_ref)
        # Σ w · [call is right] / Σ w, over the signed weights of both classes
        correct = np.r_[d_ref < 0.5, d_cand >= 0.5]
        accuracy = float(np.dot(np.r_[w_ref, w_cand], correct) / (w_ref.sum() + w_cand.sum()))
        n_effective = effective_sample_size(w_ref) + effective_sample_size(w_cand)
    else:
        estimate = auc_delong(d_cand, d_ref)
        accuracy = accuracy_at_threshold(d_cand, d_ref, 0.5)
        n_effective = float(len(test))
    result = C2STResult(
        auc=estimate.auc,
        auc_err=estimate.std,
        accuracy=accuracy,
        accuracy_err=math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n_effective),
        n_train=len(fit) + len(val),
        n_test=len(test),
        roc=roc_curve(d_cand, d_ref),
        d_reference=d_ref,
        d_candidate=d_cand,
        test_candidate=x[test][y[test] == 1],
        training=history,
        n_test_effective=n_effective,
    )
    log.info(
        "%s: AUC %.4f ± %.4f, accuracy %.4f ± %.4f (%d train+val, %d test events, effectively %.1f)",
        name, result.auc, result.auc_err, result.accuracy, result.accuracy_err,
        result.n_train, result.n_test, result.n_test_effective,
    )  # fmt: skip
    return result


def tree_two_sample_test(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    candidate_weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
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
    (:func:`~flowsim.metrics.roc.weighted_auc`). ``reference_weights`` (weighted MC, negative
    ones allowed) enter alike, except that the fit uses ``|w|`` (see the module's docstring).
    Returns the AUC with its (weighted) DeLong error and the effective (Kish) sizes of the test
    part's classes as ``n_pos``, ``n_neg``.
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
    pick_ref = rng.choice(len(reference), size=n, replace=False)
    ref = reference[pick_ref]
    pick = rng.choice(len(candidate), size=n, replace=False)
    cand, cand_w = candidate[pick], np.asarray(candidate_weights, dtype=np.float64)[pick]
    x = np.concatenate([ref, cand])
    y = np.r_[np.zeros(n), np.ones(n)]
    ref_w = _class_weights(reference_weights, len(reference), pick_ref, "reference")
    w = np.r_[ref_w, cand_w * n / cand_w.sum()]
    order = rng.permutation(2 * n)
    n_test = int(round(test_fraction * 2 * n))
    test, fit = order[:n_test], order[n_test:]
    model = HistGradientBoostingClassifier(
        max_iter=500, learning_rate=0.1, early_stopping=True, validation_fraction=0.1,
        n_iter_no_change=20, random_state=seed,
    )  # fmt: skip
    # non-negative weights as they are (bit for bit as before weights of the reference existed)
    model.fit(x[fit], y[fit], sample_weight=w[fit] if (w >= 0).all() else _training_weights(w, y)[fit])
    d = model.predict_proba(x[test])[:, 1]
    is_cand = y[test] == 1
    return weighted_auc(d[is_cand], d[~is_cand], w[test][is_cand], w[test][~is_cand])


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
