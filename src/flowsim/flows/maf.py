"""Masked autoregressive flow (MAF): stacked Gaussian residual-MADE blocks."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from .base import check_float
from .made import ResidualMADE
from .transforms import StackedFlow, stack_blocks

__all__ = ["MAF", "MaskedAffineTransform", "maf_transforms"]


class MaskedAffineTransform(nn.Module):
    r"""Affine autoregressive transform with a Gaussian MADE (one MAF block).

    .. math:: u_d = (x_d - \mu_d(x_{<d})) \exp(-\alpha_d(x_{<d})), \qquad
              \log |\det \partial u / \partial x| = -\sum_d \alpha_d

    with :math:`\alpha = b \tanh(\tilde\alpha / b)` a soft clamp of the raw log-scale (bound
    :math:`b`) that keeps the scales in :math:`[e^{-b}, e^{b}]` and the training stable. The
    forward (density) direction is one MADE pass; the inverse
    :math:`x_d = u_d e^{\alpha_d} + \mu_d` takes :math:`D` passes, each fixing one more variable
    of the autoregressive order.

    References:
        | Masked Autoregressive Flow for Density Estimation (Papamakarios et al., 2017)
        | https://arxiv.org/abs/1705.07057

    Arguments:
        n_features: The number of features :math:`D`.
        hidden: The MADE hidden width.
        residual_blocks: The number of MADE residual blocks.
        activation: The activation name.
        dropout: The dropout probability inside the MADE.
        scale_bound: The bound :math:`b` on :math:`|\alpha|`.
        context: The number of context features :math:`C` its network also takes (0: none).
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
        self.scale_bound = check_float("scale_bound", scale_bound, low=0.0, low_open=True)
        self.made = ResidualMADE(n_features, 2, hidden, residual_blocks, activation, dropout, context=context)

    def _shift_log_scale(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        mu, raw = theta.unbind(-1)
        return mu, self.scale_bound * torch.tanh(raw / self.scale_bound)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mu, alpha = self._shift_log_scale(self.made(x, context))
        return (x - mu) * (-alpha).exp(), -alpha.sum(dim=-1)

    def inverse(self, u: Tensor, context: Tensor | None = None) -> Tensor:
        def column(d: int, theta: Tensor) -> Tensor:
            mu, alpha = self._shift_log_scale(theta)
            return u[:, d] * alpha.exp() + mu

        return self.made.invert(u, column, context)


def maf_transforms(
    n_features: int,
    blocks: int,
    hidden: int,
    residual_blocks: int,
    activation: str,
    dropout: float,
    batch_norm: bool,
    permutation: str,
    scale_bound: float,
    context: int = 0,
) -> list[nn.Module]:
    """The layers of a MAF: ``blocks`` MADE blocks, with [batch norm +] a mixing layer between."""
    return stack_blocks(
        lambda: MaskedAffineTransform(n_features, hidden, residual_blocks, activation, dropout, scale_bound, context),
        n_features, blocks, batch_norm, permutation,
    )  # fmt: skip


class MAF(StackedFlow):
    r"""Masked autoregressive flow with residual MADE blocks and a standard normal base.

    Layout (data to latent): ``MADE → [BN] → mix → MADE → … → MADE`` with ``blocks`` MADE
    blocks (:class:`MaskedAffineTransform`) and a mixing layer between consecutive blocks.

    References:
        | Masked Autoregressive Flow for Density Estimation (Papamakarios et al., 2017)
        | https://arxiv.org/abs/1705.07057

    Arguments:
        n_features: The number of features :math:`D`.
        blocks: The number of MADE blocks.
        hidden: The MADE hidden width.
        residual_blocks: The number of residual blocks per MADE.
        activation: The activation (``relu``, ``gelu``, ``elu``, ``silu`` or ``tanh``).
        dropout: The dropout probability inside the MADEs.
        batch_norm: Whether to put a :class:`~flowsim.flows.transforms.BatchNormTransform`
            between blocks.
        permutation: The mixing layer between blocks: ``reverse``, ``random`` or ``lu``.
        scale_bound: The soft bound on the log-scales.
        context: The number of context features :math:`C` (0: unconditional).

    Example:
        >>> flow = MAF(3, blocks=2, hidden=16)
        >>> flow.log_prob(torch.randn(5, 3)).shape, flow.sample(4).shape
        (torch.Size([5]), torch.Size([4, 3]))
    """

    block = MaskedAffineTransform
