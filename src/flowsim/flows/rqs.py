"""Autoregressive rational-quadratic spline flow (RQS, the autoregressive neural spline flow)."""

from __future__ import annotations

import torch  # noqa: F401  (used by the docstring example)
import torch.nn as nn
from torch import Tensor

from .base import check_float, check_int
from .made import ResidualMADE
from .splines import rational_quadratic_spline
from .transforms import StackedFlow

__all__ = ["MaskedRQSTransform", "RQS"]


class MaskedRQSTransform(nn.Module):
    r"""Autoregressive monotone rational-quadratic spline transform (one RQS block).

    .. math:: u_d = g_{\theta_d(x_{<d})}(x_d), \qquad
              \log |\det \partial u / \partial x| = \sum_d \log g'_{\theta_d}(x_d)

    where :math:`g_\theta` is the spline of :mod:`flowsim.flows.splines` on :math:`[-B, B]`
    (identity outside) and :math:`\theta_d` are :math:`3K - 1` MADE outputs: :math:`K` widths,
    :math:`K` heights and :math:`K - 1` inner derivatives. Density: one MADE pass; inverse:
    :math:`D` passes.

    References:
        | Neural Spline Flows (Durkan et al., 2019)
        | https://arxiv.org/abs/1906.04032

    Arguments:
        n_features: The number of features :math:`D`.
        bins: The number of bins :math:`K`.
        tail_bound: The spline half-width :math:`B`.
        hidden: The MADE hidden width.
        residual_blocks: The number of MADE residual blocks.
        activation: The activation name.
        dropout: The dropout probability inside the MADE.
        context: The number of context features :math:`C` its network also takes (0: none).
    """

    def __init__(
        self,
        n_features: int,
        bins: int = 32,
        tail_bound: float = 5.0,
        hidden: int = 128,
        residual_blocks: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,
        context: int = 0,
    ):
        super().__init__()
        self.bins = check_int("bins", bins, minimum=2)
        self.tail_bound = check_float("tail_bound", tail_bound, low=0.0, low_open=True)
        self.made = ResidualMADE(
            n_features, 3 * bins - 1, hidden, residual_blocks, activation, dropout, context=context
        )

    def _spline(self, z: Tensor, theta: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        K = self.bins
        w, h, d = theta[..., :K], theta[..., K : 2 * K], theta[..., 2 * K :]
        return rational_quadratic_spline(z, w, h, d, inverse=inverse, bound=self.tail_bound)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u, ladj = self._spline(x, self.made(x, context), inverse=False)
        return u, ladj.sum(dim=-1)

    def inverse(self, u: Tensor, context: Tensor | None = None) -> Tensor:
        return self.made.invert(u, lambda d, theta: self._spline(u[:, d], theta, inverse=True)[0], context)


class RQS(StackedFlow):
    r"""Autoregressive rational-quadratic spline flow with a standard normal base.

    Layout (data to latent): ``spline-MADE → [BN] → mix → … → spline-MADE`` with
    ``blocks`` :class:`MaskedRQSTransform` blocks. The paper uses :math:`K = 32` bins and
    linear (identity) tails outside :math:`[-5, 5]`; sampling costs :math:`D` MADE passes per
    block.

    References:
        | Neural Spline Flows (Durkan et al., 2019)
        | https://arxiv.org/abs/1906.04032

    Arguments:
        n_features: The number of features :math:`D`.
        blocks: The number of spline blocks.
        bins: The number of bins :math:`K`.
        tail_bound: The spline half-width :math:`B`.
        hidden: The MADE hidden width.
        residual_blocks: The number of residual blocks per MADE.
        activation: The activation (``relu``, ``gelu``, ``elu``, ``silu`` or ``tanh``).
        dropout: The dropout probability inside the MADEs.
        batch_norm: Whether to put a batch-norm layer between blocks.
        permutation: The mixing layer between blocks: ``reverse``, ``random`` or ``lu``.
        context: The number of context features :math:`C` (0: unconditional).

    Example:
        >>> flow = RQS(3, blocks=2, bins=4, hidden=16)
        >>> flow.log_prob(torch.randn(5, 3)).shape, flow.sample(4).shape
        (torch.Size([5]), torch.Size([4, 3]))
    """

    block = MaskedRQSTransform
