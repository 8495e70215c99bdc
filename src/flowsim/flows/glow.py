"""Glow / RealNVP: batch norm, learned LU 1×1 mixing and affine coupling layers."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from .base import check_float, check_int
from .nets import ResidualMLP, conditioner_input
from .transforms import StackedFlow

__all__ = ["AffineCouplingTransform", "Glow"]


class AffineCouplingTransform(nn.Module):
    r"""Affine coupling layer (RealNVP).

    The first :math:`D_a = \lfloor D/2 \rfloor` features condition the other :math:`D_b`:

    .. math:: u_a = x_a, \qquad u_b = x_b \odot e^{s(x_a)} + t(x_a), \qquad
              \log |\det \partial u / \partial x| = \sum_j s_j(x_a)

    with the log-scale bounded, :math:`s = b \tanh(\tilde s / b)`. As in the paper, the scale and
    translation networks have the same architecture but the scale network uses tanh activations
    and the translation network ``activation``. Both directions cost one pass of each network.

    References:
        | Density estimation using Real NVP (Dinh et al., 2017)
        | https://arxiv.org/abs/1605.08803

    Arguments:
        n_features: The number of features :math:`D \geq 2`.
        hidden: The hidden width of the networks.
        residual_blocks: The number of residual blocks of the networks.
        activation: The activation of the translation network.
        dropout: The dropout probability inside the networks.
        scale_bound: The bound :math:`b` on :math:`|s|`.
        context: The number of context features :math:`C` the networks also take (0: none).
    """

    def __init__(
        self,
        n_features: int,
        hidden: int = 128,
        residual_blocks: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,
        scale_bound: float = 3.0,
        context: int = 0,
    ):
        super().__init__()
        D = check_int("n_features", n_features, minimum=2)
        self.split = D // 2
        self.scale_bound = check_float("scale_bound", scale_bound, low=0.0, low_open=True)
        self.context = check_int("context", context, minimum=0)
        d_a, d_b = self.split, D - self.split
        self.scale_net = ResidualMLP(d_a + self.context, d_b, hidden, residual_blocks, "tanh", dropout)
        self.shift_net = ResidualMLP(d_a + self.context, d_b, hidden, residual_blocks, activation, dropout)

    def _scale_shift(self, x_a: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        h = conditioner_input(x_a, context, self.context)
        s = self.scale_bound * torch.tanh(self.scale_net(h) / self.scale_bound)
        return s, self.shift_net(h)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, : self.split], x[:, self.split :]
        s, t = self._scale_shift(x_a, context)
        return torch.cat([x_a, x_b * s.exp() + t], dim=-1), s.sum(dim=-1)

    def inverse(self, u: Tensor, context: Tensor | None = None) -> Tensor:
        u_a, u_b = u[:, : self.split], u[:, self.split :]
        s, t = self._scale_shift(u_a, context)
        return torch.cat([u_a, (u_b - t) * (-s).exp()], dim=-1)


class Glow(StackedFlow):
    r"""Glow-style coupling flow with a standard normal base.

    Each of the ``blocks`` blocks is, from data to latent, ``[batch norm] → mix → affine
    coupling``, where the mixing layer is by default the learned LU-parameterised linear map of
    Glow (the 1×1 convolution on a feature vector), which also decides which features condition
    which. Sampling is one pass through the blocks in reverse.

    References:
        | Glow: Generative Flow with Invertible 1x1 Convolutions (Kingma & Dhariwal, 2018)
        | https://arxiv.org/abs/1807.03039

        | Density estimation using Real NVP (Dinh et al., 2017)
        | https://arxiv.org/abs/1605.08803

    Arguments:
        n_features: The number of features :math:`D \geq 2`.
        blocks: The number of blocks.
        hidden: The hidden width of the coupling networks.
        residual_blocks: The number of residual blocks of the coupling networks.
        activation: The activation of the translation networks (``relu``, ``gelu``, ``elu``,
            ``silu`` or ``tanh``); the scale networks use tanh.
        dropout: The dropout probability inside the coupling networks.
        batch_norm: Whether each block starts with a batch-norm layer.
        permutation: The mixing layer: ``lu`` (learned, Glow), ``reverse`` or ``random``.
        scale_bound: The bound on the coupling log-scales.
        context: The number of context features :math:`C` (0: unconditional).

    Example:
        >>> flow = Glow(4, blocks=2, hidden=16)
        >>> flow.log_prob(torch.randn(5, 4)).shape, flow.sample(3).shape
        (torch.Size([5]), torch.Size([3, 4]))
    """

    block = AffineCouplingTransform
    mix_first = True
    min_features = 2
    defaults = {"blocks": 10, "batch_norm": True, "permutation": "lu"}
