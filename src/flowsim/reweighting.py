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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from flowsim.classifier import MLPClassifier, balanced_weights, predict_proba, weighted_bce_loss
from flowsim.training import TrainConfig, resolve_device, train

__all__ = ["ReweightSettings", "density_ratio_weights", "effective_size", "fit_reweighter"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReweightSettings:
    """The reweighting classifier: an MLP like the C2ST's, and the clipping of the weights."""

    hidden: int = 128
    residual_blocks: int = 2
    dropout: float = 0.1
    val_fraction: float = 0.2
    max_weight: float = 10.0
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if not self.max_weight > 1.0:
            raise ValueError(f"max_weight must exceed 1, got {self.max_weight}")


def fit_reweighter(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    settings: ReweightSettings = ReweightSettings(),
    seed: int = 0,
) -> MLPClassifier:
    """Train D(x) = P(reference | x) on (n, F) samples in one scaled space, classes balanced."""
    if reference.ndim != 2 or generated.ndim != 2 or reference.shape[1] != generated.shape[1]:
        raise ValueError(f"samples must be (n, F) alike, got {reference.shape} and {generated.shape}")
    rng = np.random.default_rng(seed)
    x = np.concatenate([reference, generated]).astype(np.float32)
    y = np.r_[np.ones(len(reference)), np.zeros(len(generated))].astype(np.float32)
    w = balanced_weights(y)
    order = rng.permutation(len(x))
    n_val = int(round(settings.val_fraction * len(x)))
    val, fit = order[:n_val], order[n_val:]
    config = TrainConfig(**{"max_epochs": 50, "patience": 5, "lr": 1e-3, "seed": seed, **settings.training})
    torch.manual_seed(config.seed)
    model = MLPClassifier(x.shape[1], settings.hidden, settings.residual_blocks, settings.dropout)
    model = model.to(resolve_device(config.device))
    tensors = lambda idx: tuple(torch.from_numpy(a[idx]) for a in (x, y, w))  # noqa: E731
    train(model, weighted_bce_loss, tensors(fit), tensors(val), config, name="reweighter")
    return model


def density_ratio_weights(
    model: MLPClassifier, generated: np.ndarray, *, max_weight: float = 10.0
) -> tuple[np.ndarray, int]:
    """w = D/(1 − D) for each generated event, clipped at ``max_weight``; (weights, n clipped)."""
    d = np.clip(predict_proba(model, generated.astype(np.float32)), 0.0, 1.0 - 1e-12)
    weights = d / (1.0 - d)
    n_clipped = int(np.count_nonzero(weights > max_weight))
    weights = np.minimum(weights, max_weight)
    log.info(
        "reweighting: mean weight %.4f, effective size %.0f of %d, %d weight(s) clipped at %g",
        weights.mean(), effective_size(weights), len(weights), n_clipped, max_weight,
    )  # fmt: skip
    return weights, n_clipped


def effective_size(weights: np.ndarray) -> float:
    """Kish's effective sample size (Σw)²/Σw²."""
    weights = np.asarray(weights, dtype=np.float64)
    return float(weights.sum() ** 2 / np.dot(weights, weights))
