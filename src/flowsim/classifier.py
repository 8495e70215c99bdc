"""The binary classifier of the workflow: a residual MLP with batch norm, trained by the shared trainer.

It serves both the classifier two-sample test (MC vs generated) and the signal-vs-background
selection. The network outputs a logit ``f(x)``; ``D(x) = σ(f(x))`` is the probability of class 1,
and the loss is the binary cross-entropy ``−[y log D + (1 − y) log(1 − D)]`` averaged over events.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowsim.training import TrainConfig, TrainResult, resolve_device, train

__all__ = [
    "TWO_SAMPLE_TRAINING",
    "MLPClassifier",
    "balanced_weights",
    "bce_loss",
    "fit_classifier",
    "predict_proba",
    "weighted_bce_loss",
]

#: Training defaults of the classifiers that tell a generated sample from MC (the C2ST and the
#: reweighting MLP); their config sections' ``training`` overrides them.
TWO_SAMPLE_TRAINING: dict[str, float | int] = {"max_epochs": 50, "patience": 5, "lr": 1e-3}


class _Block(nn.Module):
    """Pre-activation residual block ``h + W₂ drop(a(BN(W₁ a(BN(h)))))``."""

    def __init__(self, hidden: int, dropout: float, batch_norm: bool) -> None:
        super().__init__()
        norm = (lambda: nn.BatchNorm1d(hidden)) if batch_norm else nn.Identity
        self.body = nn.Sequential(
            norm(), nn.SiLU(), nn.Linear(hidden, hidden),
            norm(), nn.SiLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden),
        )  # fmt: skip

    def forward(self, h: Tensor) -> Tensor:
        return h + self.body(h)


class MLPClassifier(nn.Module):
    """Residual MLP: ``Linear(D, H)``, ``residual_blocks`` residual blocks, ``Linear(H, 1)``.

    Arguments:
        n_features: Input dimension D.
        hidden: Width H of the hidden layers.
        residual_blocks: Number of residual blocks.
        dropout: Dropout probability inside the blocks.
        batch_norm: Batch normalisation inside the blocks.
    """

    def __init__(
        self,
        n_features: int,
        hidden: int = 128,
        residual_blocks: int = 2,
        dropout: float = 0.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if n_features < 1 or hidden < 1 or residual_blocks < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"invalid classifier settings: n_features={n_features}, hidden={hidden}, "
                f"residual_blocks={residual_blocks}, dropout={dropout}"
            )
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            *[_Block(hidden, dropout, batch_norm) for _ in range(residual_blocks)],
            nn.SiLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (N,)."""
        return self.net(x).squeeze(-1)


def bce_loss(model: nn.Module, batch) -> Tensor:
    """Mean binary cross-entropy of the logits ``model(x)`` against labels ``y`` in {0, 1}."""
    x, y = batch
    return F.binary_cross_entropy_with_logits(model(x), y)


def weighted_bce_loss(model: nn.Module, batch) -> Tensor:
    """Mean of ``w · BCE`` over the batch ``(x, y, w)``: the loss with per-event weights."""
    x, y, w = batch
    return F.binary_cross_entropy_with_logits(model(x), y, weight=w)


def balanced_weights(y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    r"""Per-event weights that give both classes equal total weight, with mean 1.

    :math:`w_i = N / (2 N_{y_i})`. With them the minimiser of the weighted cross-entropy is
    :math:`D(x) = p_1(x) / (p_0(x) + p_1(x))` whatever the class mix of the sample, so a score
    cut means the same on a 10%-signal file as on the balanced HIGGS set.

    With event weights :math:`v` (weighted MC, some may be negative) the classes are balanced in
    :math:`\sum v`, not in counts: :math:`w_i = v_i N / (2 V_{y_i})` with :math:`V_c` the sum of
    the weights of class :math:`c`, so each class again sums to :math:`N/2`; all-ones weights
    give the unweighted result bit for bit.
    """
    y = np.asarray(y)
    n_pos = int(np.count_nonzero(y == 1))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"both classes are needed for balanced weights, got {n_pos} and {n_neg}")
    if weights is None:
        return np.where(y == 1, y.size / (2 * n_pos), y.size / (2 * n_neg)).astype(np.float32)
    v = np.asarray(weights, dtype=np.float64)
    if v.shape != y.shape:
        raise ValueError(f"expected {y.size} event weights, one per label, got shape {v.shape}")
    v_pos, v_neg = float(v[y == 1].sum()), float(v[y != 1].sum())
    if not (v_pos > 0 and v_neg > 0):
        raise ValueError(
            f"each class needs a positive sum of event weights to be balanced, got {v_pos:g} "
            f"(class 1) and {v_neg:g} (class 0)"
        )
    return (v * np.where(y == 1, y.size / (2 * v_pos), y.size / (2 * v_neg))).astype(np.float32)


def fit_classifier(
    fit: Sequence[np.ndarray],
    val: Sequence[np.ndarray],
    config: TrainConfig,
    *,
    hidden: int,
    residual_blocks: int,
    dropout: float,
    name: str,
) -> tuple[MLPClassifier, TrainResult]:
    """Train an :class:`MLPClassifier` with the shared trainer, seeded by ``config.seed``.

    ``fit`` and ``val`` are ``(x, y)`` or ``(x, y, w)`` arrays; with per-event weights ``w`` the
    loss is :func:`weighted_bce_loss`, else :func:`bce_loss`. Returns the model (best epoch's
    weights) and the training result.
    """
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = MLPClassifier(fit[0].shape[1], hidden, residual_blocks, dropout).to(device)
    tensors = lambda arrays: tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)  # noqa: E731
    loss = weighted_bce_loss if len(fit) == 3 else bce_loss
    result = train(model, loss, tensors(fit), tensors(val), config, name=name)
    return model, result


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray | Tensor, batch_size: int | None = None) -> np.ndarray:
    """``D(x) = σ(f(x))`` in eval mode, computed in batches on the model's device (float64 out).

    ``batch_size`` defaults to 4096 events on the CPU, where they keep a 128-wide network's
    intermediates (2 MB) in the caches: 3x faster than batches of 65536 and the same scores bit
    for bit (``benchmarks/templates.py``); and to 65536 on a GPU, which wants large batches.
    """
    model.eval()
    device = next(model.parameters()).device
    if batch_size is None:
        batch_size = 4096 if device.type == "cpu" else 65536
    x = torch.as_tensor(x, dtype=torch.float32)
    out = [
        torch.sigmoid(model(x[i : i + batch_size].to(device))).double().cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.empty(0)
