"""A sign-flip symmetry of the data, built into a flow: augmentation and the exact mixture.

Proton-proton collisions are forward-backward symmetric: the background density does not change
when every pseudorapidity flips sign at once, ``p(x) = p(Sx)`` with ``S = diag(s)``, ``s_j = −1``
for the flipped features and ``+1`` for the others. With a scaling that is odd in those features
(``fit_scaler(..., odd=...)``) the scaled space has the same symmetry. A flow uses it twice:

* in training, :class:`RandomSignFlip` applies ``S`` to each training event with probability ½,
  so the flow sees the symmetric closure of the training set (twice the data at no extra cost
  per epoch);
* as a model, :class:`SignFlipMixture` is the exact mixture ``p_S(z) = ½ [p(z) + p(Sz)]``. It
  is invariant under ``S`` by construction, and for a symmetric target ``q`` it is never
  further from it than ``p`` itself: ``KL(q ‖ p_S) ≤ ½ KL(q ‖ p) + ½ KL(q ‖ p∘S) = KL(q ‖ p)``
  by convexity. Sampling draws from ``p`` and applies ``S`` to each event with probability ½.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["RandomSignFlip", "SignFlipMixture", "flip_signs", "signs_of", "with_mirror_images"]


def flip_signs(n_features: int, flipped: Sequence[int]) -> Tensor:
    """The diagonal of ``S``: −1 at the ``flipped`` indices, +1 elsewhere."""
    signs = torch.ones(n_features)
    if len(flipped):
        if min(flipped) < 0 or max(flipped) >= n_features:
            raise ValueError(f"flipped feature indices {list(flipped)} outside 0..{n_features - 1}")
        signs[list(flipped)] = -1.0
    return signs


def signs_of(features: Sequence[str], flipped: Sequence[str]) -> Tensor:
    """The diagonal of ``S`` for the ``flipped`` feature names among ``features``."""
    features = list(features)
    return flip_signs(len(features), [features.index(f) for f in flipped])


def with_mirror_images(x: Tensor, signs: Tensor) -> Tensor:
    """The events ``x`` followed by their mirror images ``S x``: a validation set whose loss
    estimates the symmetric closure's (early stopping of a flow trained with the flip)."""
    return torch.cat([x, x * signs.to(x.device, x.dtype)])


def _flip_random_half(z: Tensor, signs: Tensor, generator: torch.Generator | None) -> Tensor:
    """``S z`` for each row with probability ½, ``z`` otherwise."""
    coin = torch.rand(len(z), 1, generator=generator, device=z.device) < 0.5
    return torch.where(coin, z * signs.to(z.dtype), z)


class RandomSignFlip:
    """Training augmentation: each event of a batch becomes its mirror image ``S z`` with
    probability ½ (the batch's first tensor holds the events; other tensors pass unchanged)."""

    def __init__(self, signs: Tensor) -> None:
        self.signs = signs

    def __call__(self, batch: Sequence[Tensor], generator: torch.Generator) -> list[Tensor]:
        x, *rest = batch
        return [_flip_random_half(x, self.signs.to(x.device), generator), *rest]


class SignFlipMixture(nn.Module):
    """The mixture ``½ [p(z) + p(Sz)]`` of ``flow`` and its mirror image under ``S = diag(signs)``.

    ``forward``/``log_prob`` give ``log p_S(z) = logaddexp(log p(z), log p(Sz)) − log 2``;
    ``sample(n, generator)`` draws from ``flow`` and flips a random half, an exact sample of
    ``p_S``. The wrapped flow's ``state_dict`` is the one to save (see
    :func:`flowsim.flows.persist.save_flow`); the signs travel as feature names.
    """

    def __init__(self, flow: nn.Module, signs: Tensor) -> None:
        super().__init__()
        self.flow = flow
        self.register_buffer("signs", signs.clone().float())

    def log_prob(self, z: Tensor) -> Tensor:
        signs = self.signs.to(z.dtype)
        return torch.logaddexp(self.flow(z), self.flow(z * signs)) - math.log(2.0)

    def forward(self, z: Tensor) -> Tensor:
        return self.log_prob(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = self.flow.sample(n, generator=generator)
        return _flip_random_half(z, self.signs, generator)
