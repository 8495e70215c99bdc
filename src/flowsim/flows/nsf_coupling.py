"""Coupling neural spline flow: rational-quadratic spline coupling layers (one-pass sampling)."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from .base import check_float, check_int
from .nets import ResidualMLP, conditioner_input
from .splines import rational_quadratic_spline
from .transforms import StackedFlow

__all__ = ["NSFCoupling", "RQSCouplingTransform"]


class RQSCouplingTransform(nn.Module):
    r"""Rational-quadratic spline coupling layer.

    The first :math:`D_a = \lfloor D/2 \rfloor` features condition element-wise splines of the
    other :math:`D_b`:

    .. math:: u_a = x_a, \qquad u_{b,j} = g_{\theta_j(x_a)}(x_{b,j}), \qquad
              \log |\det \partial u / \partial x| = \sum_j \log g'_{\theta_j(x_a)}(x_{b,j})

    where :math:`\theta_j` are :math:`3K - 1` outputs of one residual network and :math:`g` is the
    spline of :mod:`flowsim.flows.splines` (identity outside :math:`[-B, B]`). Both directions
    cost one network pass.

    References:
        | Neural Spline Flows (Durkan et al., 2019)
        | https://arxiv.org/abs/1906.04032

    Arguments:
        n_features: The number of features :math:`D \geq 2`.
        bins: The number of bins :math:`K`.
        tail_bound: The spline half-width :math:`B`.
        hidden: The hidden width of the network.
        residual_blocks: The number of residual blocks of the network.
        activation: The activation name.
        dropout: The dropout probability inside the network.
        context: The number of context features :math:`C` the network also takes (0: none).
    """

    def __init__(
        self,
        n_features: int,
        bins: int = 8,
        tail_bound: float = 5.0,
        hidden: int = 128,
        residual_blocks: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,
        context: int = 0,
    ):
        super().__init__()
        D = check_int("n_features", n_features, minimum=2)
        self.bins = check_int("bins", bins, minimum=2)
        self.tail_bound = check_float("tail_bound", tail_bound, low=0.0, low_open=True)
        self.context = check_int("context", context, minimum=0)
        self.split = D // 2
        self.d_b = D - self.split
        self.net = ResidualMLP(
            self.split + self.context, self.d_b * (3 * bins - 1), hidden, residual_blocks, activation, dropout
        )

    def _spline(self, z: Tensor, x_a: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        h = conditioner_input(x_a, context, self.context)
        theta = self.net(h).unflatten(-1, (self.d_b, 3 * self.bins - 1))
        K = self.bins
        w, h, d = theta[..., :K], theta[..., K : 2 * K], theta[..., 2 * K :]
        return rational_quadratic_spline(z, w, h, d, inverse=inverse, bound=self.tail_bound)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, : self.split], x[:, self.split :]
        u_b, ladj = self._spline(x_b, x_a, context, inverse=False)
        return torch.cat([x_a, u_b], dim=-1), ladj.sum(dim=-1)

    def inverse(self, u: Tensor, context: Tensor | None = None) -> Tensor:
        u_a, u_b = u[:, : self.split], u[:, self.split :]
        x_b, _ = self._spline(u_b, u_a, context, inverse=True)
        return torch.cat([u_a, x_b], dim=-1)


class NSFCoupling(StackedFlow):
    r"""Coupling neural spline flow with a standard normal base.

    Each of the ``blocks`` blocks is, from data to latent, ``[batch norm] → mix →
    spline coupling`` (:class:`RQSCouplingTransform`); the mixing layer (learned LU by default)
    changes which features condition which from block to block. Sampling is one network pass per
    block, unlike the autoregressive :class:`~flowsim.flows.rqs.RQS`.

    References:
        | Neural Spline Flows (Durkan et al., 2019)
        | https://arxiv.org/abs/1906.04032

    Arguments:
        n_features: The number of features :math:`D \geq 2`.
        blocks: The number of coupling blocks.
        bins: The number of bins :math:`K`.
        tail_bound: The spline half-width :math:`B`.
        hidden: The hidden width of the coupling networks.
        residual_blocks: The number of residual blocks of the coupling networks.
        activation: The activation (``relu``, ``gelu``, ``elu``, ``silu`` or ``tanh``).
        dropout: The dropout probability inside the coupling networks.
        batch_norm: Whether each block starts with a batch-norm layer.
        permutation: The mixing layer: ``lu``, ``reverse`` or ``random``.
        context: The number of context features :math:`C` (0: unconditional).

    Example:
        >>> flow = NSFCoupling(4, blocks=2, bins=4, hidden=16)
        >>> flow.log_prob(torch.randn(5, 4)).shape, flow.sample(3).shape
        (torch.Size([5]), torch.Size([3, 4]))
    """

    block = RQSCouplingTransform
    mix_first = True
    min_features = 2
    defaults = {"blocks": 10, "bins": 32, "batch_norm": False, "permutation": "lu"}
