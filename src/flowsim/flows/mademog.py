"""MADE with mixture-of-Gaussians conditionals (MADEMOG), alone or on top of a MAF (MAFMADEMOG)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .base import (
    DensityModel,
    apply_transforms,
    check_bool,
    check_choice,
    check_float,
    check_int,
    invert_transforms,
)
from .made import ResidualMADE
from .maf import maf_transforms
from .transforms import PERMUTATIONS, BatchNormTransform, make_permutation

__all__ = ["MADEMOG", "MAFMADEMOG"]

_LOG_2PI = math.log(2.0 * math.pi)


class MADEMOG(DensityModel):
    r"""Autoregressive density whose conditionals are :math:`K`-component Gaussian mixtures.

    One residual MADE gives, for each dimension, :math:`3K` outputs
    :math:`(\tilde w, \mu, \tilde\sigma)` from :math:`x_{<d}`; the exact log-density is

    .. math:: \log p(x) = \sum_d \operatorname{logsumexp}_k \left[\log w_{dk}
              + \log \mathcal{N}(x_d; \mu_{dk}, \sigma_{dk}^2)\right],

    with :math:`w = \mathrm{softmax}(\tilde w)` and
    :math:`\sigma = \mathrm{ELU}(\tilde\sigma) + 1 + \sigma_\text{min}` (the paper's choice,
    with a floor). Sampling draws the dimensions in turn, :math:`D` MADE passes. The model has no
    bijection to a Gaussian latent space here, so it offers ``log_prob`` and ``sample`` only
    (a mixture-CDF + :math:`\Phi^{-1}` map would be one, at the price of root finding).

    At initialisation the component means are spread over :math:`[-1, 1]`: with identical
    components the gradients would be identical too and the mixture would never split.

    References:
        | Masked Autoregressive Flow for Density Estimation (Papamakarios et al., 2017)
        | https://arxiv.org/abs/1705.07057

        | MADE: Masked Autoencoder for Distribution Estimation (Germain et al., 2015)
        | https://arxiv.org/abs/1502.03509

    Arguments:
        n_features: The number of features :math:`D`.
        mixtures: The number of components :math:`K` per conditional.
        hidden: The MADE hidden width.
        residual_blocks: The number of MADE residual blocks.
        activation: The activation (``gelu`` by default, as in the paper's final model).
        dropout: The dropout probability inside the MADE.
        min_scale: The floor :math:`\sigma_\text{min}` of the component scales.
        context: The number of context features :math:`C` (0: unconditional).

    Example:
        >>> model = MADEMOG(3, mixtures=4, hidden=16)
        >>> model.log_prob(torch.randn(5, 3)).shape, model.sample(4).shape
        (torch.Size([5]), torch.Size([4, 3]))
    """

    def __init__(
        self,
        n_features: int,
        mixtures: int = 32,
        hidden: int = 128,
        residual_blocks: int = 2,
        activation: str = "gelu",
        dropout: float = 0.0,
        min_scale: float = 1e-3,
        context: int = 0,
    ):
        super().__init__(n_features, context)
        self.mixtures = check_int("mixtures", mixtures)
        self.min_scale = check_float("min_scale", min_scale, low=0.0, low_open=True)
        self.made = ResidualMADE(
            n_features, 3 * mixtures, hidden, residual_blocks, activation, dropout, context=self.context
        )
        with torch.no_grad():
            # Means spread over [-1, 1] and a common scale such that the initial conditionals
            # have zero mean and unit variance, close to the N(0, 1) the data are scaled to.
            means = torch.linspace(-1.0, 1.0, mixtures) if mixtures > 1 else torch.zeros(1)
            scale = (1.0 - means.square().mean()).sqrt()
            bias = self.made.last.bias.view(n_features, 3 * mixtures)
            bias[:, mixtures : 2 * mixtures] = means
            bias[:, 2 * mixtures :] = (scale - self.min_scale).log()  # ELU(r) + 1 = e^r for r < 0

    def conditionals(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        r"""The mixture parameters of :math:`p(x_d \mid x_{<d}, c)`.

        Arguments:
            x: Events, shape :math:`(N, D)`.
            context: Their contexts, shape :math:`(N, C)` (conditional models).

        Returns:
            The log-weights :math:`\log w`, means :math:`\mu` and scales :math:`\sigma`, each of
            shape :math:`(N, D, K)`.
        """
        return self._mixture(self.made(x, self._check_context(context, len(x))))

    def _mixture(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, mu, raw = theta.chunk(3, dim=-1)
        return F.log_softmax(logits, dim=-1), mu, F.elu(raw) + (1.0 + self.min_scale)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        self._check_input(x)
        log_w, mu, sigma = self.conditionals(x, context)
        z = (x.unsqueeze(-1) - mu) / sigma
        log_components = log_w - sigma.log() - 0.5 * (z.square() + _LOG_2PI)
        return torch.logsumexp(log_components, dim=-1).sum(dim=-1)

    def _sample(self, n: int, generator: torch.Generator | None, context: Tensor | None) -> Tensor:
        ref = self._reference()
        shape, like = (n, self.n_features), dict(device=ref.device, dtype=ref.dtype)
        # All the noise is drawn up front, so the events do not depend on how the loop is cut.
        eps = torch.randn(shape, generator=generator, **like)
        v = torch.rand(shape, generator=generator, **like)

        def column(d: int, theta: Tensor) -> Tensor:
            log_w, mu, sigma = self._mixture(theta)
            # Inverse-CDF draw of the component: k = #{j : W_j < v}, W the cumulative weights.
            k = (log_w.exp().cumsum(dim=-1) < v[:, d : d + 1]).sum(dim=-1, keepdim=True)
            k = k.clamp_max(self.mixtures - 1)
            return (mu.gather(-1, k) + sigma.gather(-1, k) * eps[:, d : d + 1]).squeeze(-1)

        return self.made.invert(eps, column, context)


class MAFMADEMOG(DensityModel):
    r"""A MAF whose base density is a :class:`MADEMOG` instead of :math:`\mathcal{N}(0, I)`.

    With :math:`z = T(x)` the MAF stack (``blocks`` Gaussian MADE blocks and a mixing layer after
    each, the last one feeding the head),

    .. math:: \log p(x) = \log p_\text{MADEMOG}(T(x)) + \log |\det J_T(x)| ;

    sampling draws :math:`z` from the MADEMOG head and returns :math:`T^{-1}(z)`. The MAF part is
    exposed as :meth:`maf_transform` / :meth:`maf_inverse`; there is no Gaussian latent space.

    References:
        | Masked Autoregressive Flow for Density Estimation (Papamakarios et al., 2017)
        | https://arxiv.org/abs/1705.07057

    Arguments:
        n_features: The number of features :math:`D`.
        blocks: The number of MAF blocks below the head.
        mixtures: The number of mixture components of the head.
        hidden: The hidden width of all MADEs.
        residual_blocks: The number of residual blocks of all MADEs.
        activation: The activation of all MADEs.
        dropout: The dropout probability inside all MADEs.
        batch_norm: Whether to put a batch-norm layer after each MAF block.
        permutation: The mixing layer after each MAF block: ``reverse``, ``random`` or ``lu``.
        scale_bound: The soft bound on the MAF log-scales.
        min_scale: The floor of the head's component scales.
        context: The number of context features :math:`C` of the MAF blocks and the head (0: none).

    Example:
        >>> model = MAFMADEMOG(3, blocks=2, mixtures=4, hidden=16)
        >>> model.log_prob(torch.randn(5, 3)).shape, model.sample(4).shape
        (torch.Size([5]), torch.Size([4, 3]))
    """

    def __init__(
        self,
        n_features: int,
        blocks: int = 5,
        mixtures: int = 32,
        hidden: int = 128,
        residual_blocks: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        permutation: str = "reverse",
        scale_bound: float = 3.0,
        min_scale: float = 1e-3,
        context: int = 0,
    ):
        super().__init__(n_features, context)
        batch_norm = check_bool("batch_norm", batch_norm)
        permutation = check_choice("permutation", permutation, PERMUTATIONS)
        layers = maf_transforms(
            n_features, blocks, hidden, residual_blocks, activation, dropout, batch_norm,
            permutation, scale_bound, self.context,
        )  # fmt: skip
        # The head is one more autoregressive block: mix before it as between MAF blocks.
        if batch_norm:
            layers.append(BatchNormTransform(n_features))
        layers.append(make_permutation(permutation, n_features))
        self.transforms = nn.ModuleList(layers)
        self.head = MADEMOG(
            n_features, mixtures, hidden, residual_blocks, activation, dropout, min_scale, self.context
        )

    def maf_transform(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""The MAF part :math:`z = T(x; c)` and :math:`\log|\det \partial z / \partial x|`,
        shapes :math:`(N, D)` and :math:`(N,)`."""
        self._check_input(x)
        return apply_transforms(self.transforms, x, self._check_context(context, len(x)))

    def maf_inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        r"""The inverse :math:`x = T^{-1}(z; c)` of the MAF part, shape :math:`(N, D)`."""
        self._check_input(z)
        return invert_transforms(self.transforms, z, self._check_context(context, len(z)))

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        z, ladj = self.maf_transform(x, context)
        return self.head.log_prob(z, context) + ladj

    def _sample(self, n: int, generator: torch.Generator | None, context: Tensor | None) -> Tensor:
        return self.maf_inverse(self.head._sample(n, generator, context), context)

