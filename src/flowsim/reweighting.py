r"""Classifier reweighting of generated events (Butter, Plehn et al., seeds/001, Sec. 2).

A classifier learns to tell the MC reference (label 1) from generated events (label 0). With
both classes given equal total weight, the minimiser of the cross-entropy is
:math:`D(x) = p_{MC}(x) / (p_{MC}(x) + p_{gen}(x))`, so

.. math:: w(x) = \frac{D(x)}{1 - D(x)} = \frac{p_{MC}(x)}{p_{gen}(x)}

and generated events weighted by :math:`w` follow the MC distribution wherever the classifier
learned the ratio; :math:`E_{gen}[w] = 1`. The classifier must be trained on samples that are
not the ones judged afterwards (another MC split, other generated events), or the weights
would fit the noise of the judged samples. Weights above ``max_weight`` are clipped to it and
the number clipped is logged and returned: a large count means the flow misses a region the
weights cannot repair.

A weighted sample is never the unweighted one: every figure of merit of a reweighted run is
to be shown next to the unweighted figure, and its effective size is (Σw)²/Σw².

The classifier is scikit-learn's histogram gradient boosting (``classifier: tree``, the
default; the kind of the tree C2ST) or an MLP like the C2ST's (``classifier: mlp``). On real
HIGGS, for the same flows, the tree's weights took up to 0.009 off the tree C2ST and the MLP's
added 0.002–0.015 to it (benchmarks/README.md, eleventh round).

:func:`accept_by_weight` turns the weights into an unweighted sample by rejection: event i is
kept with probability :math:`w_i / M`, so the kept events follow
:math:`p_{gen}(x)\,w(x) / E_{gen}[w]`, which is :math:`p_{MC}` wherever the ratio was learned
and not clipped, at an acceptance of :math:`E_{gen}[w] / M`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from flowsim.classifier import TWO_SAMPLE_TRAINING, balanced_weights, fit_classifier, predict_proba
from flowsim.training import TrainConfig, resolve_device

__all__ = [
    "WEIGHT_BRANCH",
    "ReweightSettings",
    "accept_by_weight",
    "density_ratio_weights",
    "effective_size",
    "FlowReweighter",
    "fit_flow_reweighter",
    "fit_reweighter",
    "write_weights",
]

#: Branch of the weight friend tree (``results/flows/{run}/weights.root``).
WEIGHT_BRANCH = "weight"

log = logging.getLogger(__name__)

#: the reweighting classifiers (``reweighting.classifier``)
CLASSIFIERS = ("mlp", "tree")

#: scikit-learn's HistGradientBoostingClassifier settings of ``classifier: tree``; a smaller
#: learning rate and fewer leaves than its defaults learn the ~1% differences of a good flow
#: without fitting the reference's noise (benchmarks/README.md, eleventh round)
TREE_DEFAULTS: dict[str, Any] = {"learning_rate": 0.05, "max_leaf_nodes": 15, "max_iter": 1000, "n_iter_no_change": 30}

#: a fitted classifier: (n, F) events in the scaled space to D(x) = P(reference | x)
Classifier = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ReweightSettings:
    """The reweighting classifier (an MLP like the C2ST's, or gradient-boosted trees) and the
    clipping of the weights."""

    classifier: str = "tree"
    hidden: int = 128
    residual_blocks: int = 2
    dropout: float = 0.1
    val_fraction: float = 0.2
    max_weight: float = 10.0
    training: dict[str, Any] = field(default_factory=dict)
    tree: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"reweighting.classifier must be one of {list(CLASSIFIERS)}, got {self.classifier!r}")
        unknown = sorted(set(self.tree) - set(TREE_DEFAULTS))
        if unknown:
            raise ValueError(f"reweighting.tree: unknown setting {unknown[0]!r}; known: {list(TREE_DEFAULTS)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if not self.max_weight > 1.0:
            raise ValueError(f"max_weight must exceed 1, got {self.max_weight}")

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> ReweightSettings:
        """From the config section ``reweighting`` (its ``enabled`` and ``seed`` are not settings)."""
        return cls(**{k: v for k, v in section.items() if k not in ("enabled", "seed")})


def fit_reweighter(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    settings: ReweightSettings = ReweightSettings(),
    seed: int = 0,
) -> Classifier:
    """Train D(x) = P(reference | x) on (n, F) samples in one scaled space, classes balanced,
    with ``settings.val_fraction`` of the events held out for early stopping."""
    if reference.ndim != 2 or generated.ndim != 2 or reference.shape[1] != generated.shape[1]:
        raise ValueError(f"samples must be (n, F) alike, got {reference.shape} and {generated.shape}")
    x = np.concatenate([reference, generated]).astype(np.float32)
    y = np.r_[np.ones(len(reference)), np.zeros(len(generated))].astype(np.float32)
    if settings.classifier == "tree":
        return _fit_tree(x, y, settings, seed)
    return _fit_mlp(x, y, settings, seed)


def _fit_mlp(x: np.ndarray, y: np.ndarray, settings: ReweightSettings, seed: int) -> Classifier:
    w = balanced_weights(y)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(settings.val_fraction * len(x)))
    val, fit = order[:n_val], order[n_val:]
    config = TrainConfig(**{**TWO_SAMPLE_TRAINING, "seed": seed, **settings.training})
    model, _ = fit_classifier(
        (x[fit], y[fit], w[fit]), (x[val], y[val], w[val]), config, hidden=settings.hidden,
        residual_blocks=settings.residual_blocks, dropout=settings.dropout, name="reweighter",
    )  # fmt: skip
    return lambda events: predict_proba(model, events.astype(np.float32))


def _fit_tree(x: np.ndarray, y: np.ndarray, settings: ReweightSettings, seed: int) -> Classifier:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        **{**TREE_DEFAULTS, **settings.tree}, early_stopping=True,
        validation_fraction=settings.val_fraction, random_state=seed,
    )  # fmt: skip
    model.fit(x, y, sample_weight=balanced_weights(y))
    log.info("reweighter: gradient-boosted trees, %d iterations kept", model.n_iter_)
    return lambda events: model.predict_proba(events.astype(np.float32))[:, 1]


def _clipped_ratio(classifier: Classifier, x: np.ndarray, max_weight: float) -> tuple[np.ndarray, int]:
    d = np.clip(classifier(x), 0.0, 1.0 - 1e-12)
    weights = d / (1.0 - d)
    return np.minimum(weights, max_weight), int(np.count_nonzero(weights > max_weight))


def density_ratio_weights(
    classifier: Classifier, generated: np.ndarray, *, max_weight: float = 10.0
) -> tuple[np.ndarray, int]:
    """w = D/(1 − D) for each generated event, clipped at ``max_weight``; (weights, n clipped)."""
    weights, n_clipped = _clipped_ratio(classifier, generated, max_weight)
    log.info(
        "reweighting: mean weight %.4f, effective size %.0f of %d, %d weight(s) clipped at %g",
        weights.mean(), effective_size(weights), len(weights), n_clipped, max_weight,
    )  # fmt: skip
    return weights, n_clipped


def accept_by_weight(weights: np.ndarray, rng: np.random.Generator, bound: float | None = None) -> np.ndarray:
    r"""Rejection sampling by the weights: a mask that keeps event i with probability
    :math:`\min(w_i / M, 1)`, :math:`M` = ``bound`` (default: the largest weight, so no event is
    kept with certainty and the kept events follow :math:`p_{gen}\,w / E_{gen}[w]` exactly).
    The number of weights above a smaller bound is logged: those events are under-kept."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or not len(weights) or (weights < 0).any() or not np.isfinite(weights).all():
        raise ValueError("accept_by_weight needs a non-empty 1-d array of finite, non-negative weights")
    bound = float(weights.max()) if bound is None else float(bound)
    if not bound > 0:
        raise ValueError(f"the bound of the rejection must be positive, got {bound}")
    above = int(np.count_nonzero(weights > bound))
    keep = rng.random(len(weights)) < weights / bound
    log.info(
        "rejection by weight: %d of %d events kept (acceptance %.3f) with bound %.3g; %d weight(s) above it",
        keep.sum(), len(weights), keep.mean(), bound, above,
    )  # fmt: skip
    return keep


def effective_size(weights: np.ndarray) -> float:
    """Kish's effective sample size (Σw)²/Σw²."""
    weights = np.asarray(weights, dtype=np.float64)
    return float(weights.sum() ** 2 / np.dot(weights, weights))


@dataclass(frozen=True)
class FlowReweighter:
    """A fitted reweighting classifier of a run's flow, with the scaler it was fitted in and
    the counts of its training samples."""

    classifier: Classifier
    scaler: Any  # flowsim.data.scaling.Scaler
    max_weight: float
    reference: str
    n_reference: int
    n_flow_sample: int


def fit_flow_reweighter(
    model: str | os.PathLike[str],
    scaler: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    *,
    settings: ReweightSettings,
    seed: int = 0,
) -> FlowReweighter:
    """Fit D(x) = P(reference | x) on the events of ``reference`` against a fresh sample of the
    same size from the flow of ``model`` (drawn with ``seed``), both mapped by ``scaler``.

    Non-finite events of the flow sample are left out, with their count in the log.
    """
    from flowsim import io
    from flowsim.data.scaling import load_scaler
    from flowsim.flows.persist import load_flow

    device = resolve_device(settings.training.get("device", "auto"))
    scaler_obj = load_scaler(scaler)
    flow, _ = load_flow(model, device)
    x_ref = scaler_obj.transform(io.read_matrix(reference, list(scaler_obj.features)))
    with torch.no_grad():
        second = flow.sample(len(x_ref), generator=_generator(seed, device)).double().cpu().numpy()
    finite = np.isfinite(second).all(axis=1)
    if not finite.all():
        log.warning(
            "%d of %d events of the second flow sample are non-finite and left out", (~finite).sum(), len(second)
        )
    log.info("reweighting classifier: %d MC (%s) vs %d flow events", len(x_ref), reference, finite.sum())
    classifier = fit_reweighter(x_ref, second[finite], settings=settings, seed=seed)
    return FlowReweighter(classifier, scaler_obj, settings.max_weight, str(reference), len(x_ref), int(finite.sum()))


def write_weights(
    reweighter: FlowReweighter,
    events: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    chunk_size: int = 200_000,
) -> dict[str, Any]:
    """The clipped weight of every event of ``events`` into the friend tree ``out`` (branch
    :data:`WEIGHT_BRANCH`, entry i weighs entry i), ``chunk_size`` events at a time.

    Returns:
        The counts and moments: ``n_events``, ``n_clipped``, ``mean_weight`` and the effective
        size (Σw)²/Σw², with the classifier's training counts.
    """
    from flowsim import io

    features = list(reweighter.scaler.features)
    n_events = n_clipped = 0
    total = total_sq = 0.0
    with io.event_writer(out, [WEIGHT_BRANCH]) as writer:
        for chunk in io.iter_matrix(events, features, step=chunk_size):
            scaled = reweighter.scaler.transform(chunk)
            weights, clipped = _clipped_ratio(reweighter.classifier, scaled, reweighter.max_weight)
            writer.extend({WEIGHT_BRANCH: weights})
            n_events += len(weights)
            n_clipped += clipped
            total += float(weights.sum())
            total_sq += float(np.dot(weights, weights))
    info = {
        "reference": reweighter.reference, "n_reference": reweighter.n_reference,
        "n_flow_sample": reweighter.n_flow_sample, "n_events": n_events, "n_clipped": n_clipped,
        "max_weight": reweighter.max_weight, "mean_weight": total / max(n_events, 1),
        "effective_size": total**2 / total_sq if total_sq else 0.0,
    }  # fmt: skip
    log.info(
        "weights of %d events: mean %.4f, effective size %.0f, %d clipped at %g",
        n_events, info["mean_weight"], info["effective_size"], n_clipped, reweighter.max_weight,
    )  # fmt: skip
    return info


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)
