r"""Element-wise and linear bijections shared by the flow families.

Every transform is an ``nn.Module`` whose call maps a batch :math:`x` of shape :math:`(N, D)` in
the normalizing direction to :math:`(y, \log|\det \partial y / \partial x|)`, the second of shape
:math:`(N,)`, and whose :meth:`inverse` maps :math:`y \mapsto x`. Both take an optional context
of shape :math:`(N, C)`, which the conditional transforms (couplings, MADE blocks) feed to their
networks and the ones here ignore.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn as nn
from torch import Tensor

from .base import Flow, check_bool, check_choice, check_float, check_int, check_known

__all__ = [
    "BatchNormTransform",
    "LULinearTransform",
    "PERMUTATIONS",
    "PermutationTransform",
    "StackedFlow",
    "make_permutation",
    "stack_blocks",
]

PERMUTATIONS = ("lu", "random", "reverse")


class PermutationTransform(nn.Module):
    r"""Fixed permutation of the features, :math:`y_i = x_{\pi(i)}`, with zero log-determinant.

    The permutation is a persistent buffer, so a random one survives ``state_dict`` round trips.

    Arguments:
        perm: The permutation :math:`\pi`, shape :math:`(D,)`.
    """

    def __init__(self, perm: Tensor):
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long)
        # meta tensors (shapes without values, model_files.build_like_stored) have nothing to check
        if perm.device.type != "meta" and not torch.equal(perm.sort().values, torch.arange(len(perm))):
            raise ValueError(
                f"perm must be a permutation of 0..{len(perm) - 1}, got {perm.tolist()}"
            )
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # index_select: its backward is a cheap index_add, advanced indexing's an index_put
        return x.index_select(-1, self.perm), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return y.index_select(-1, self.inv_perm)


class LULinearTransform(nn.Module):
    r"""Learned invertible linear map :math:`y = W x` in LU form (Glow's 1×1 convolution).

    .. math:: W = P L (U + \mathrm{diag}(\sigma \odot e^{\lambda})), \qquad
              \log |\det W| = \sum_i \lambda_i

    with :math:`P` a fixed permutation (a persistent buffer: a permutation held in a plain
    attribute is lost on reload), :math:`L` unit lower-triangular, :math:`U` strictly
    upper-triangular, :math:`\sigma` fixed signs and :math:`\lambda` the learned log-absolute
    diagonal. It is initialised from the LU decomposition of a random rotation. The cost of the
    log-determinant is :math:`O(D)` and of the inverse two triangular solves.

    References:
        | Glow: Generative Flow with Invertible 1x1 Convolutions (Kingma & Dhariwal, 2018)
        | https://arxiv.org/abs/1807.03039

    Arguments:
        n_features: The number of features :math:`D`.
    """

    def __init__(self, n_features: int):
        super().__init__()
        D = check_int("n_features", n_features)
        q, _ = torch.linalg.qr(torch.randn(D, D, dtype=torch.float64))
        permutation, lower, upper = torch.linalg.lu(q)
        dtype = torch.get_default_dtype()
        diagonal = torch.diagonal(upper)
        # P as an index vector: (P M)[i] = M[perm[i]].
        self.register_buffer("perm", permutation.argmax(dim=1))
        self.register_buffer("sign", torch.sign(diagonal).to(dtype))
        self.lower = nn.Parameter(torch.tril(lower, -1).to(dtype))
        self.upper = nn.Parameter(torch.triu(upper, 1).to(dtype))
        self.log_diag = nn.Parameter(diagonal.abs().log().to(dtype))

    def _factors(self) -> tuple[Tensor, Tensor]:
        log_diag = self.log_diag
        eye = torch.eye(log_diag.shape[0], dtype=log_diag.dtype, device=log_diag.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * self.log_diag.exp())
        return lower, upper

    def weight(self) -> Tensor:
        r"""The assembled matrix :math:`W`, shape :math:`(D, D)`."""
        lower, upper = self._factors()
        return (lower @ upper)[self.perm]

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = x @ self.weight().T
        return y, self.log_diag.sum().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        lower, upper = self._factors()
        # W x = y  <=>  L U x = P^T y, where (P^T y)[perm[i]] = y[i].
        v = y[:, torch.argsort(self.perm)]
        # Row-vector batches: solve X A^T = B with left=False instead of transposing the batch.
        z = torch.linalg.solve_triangular(lower.T, v, upper=True, left=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper.T, z, upper=False, left=False)


class BatchNormTransform(nn.Module):
    r"""Batch normalization as a bijection (Dinh et al., 2017).

    .. math:: y = \frac{x - m}{\sqrt{v + \epsilon}} e^{\gamma} + \beta, \qquad
              \log |\det J| = \sum_d \left[\gamma_d - \tfrac{1}{2} \log(v_d + \epsilon)\right]

    In training mode :math:`(m, v)` are the batch mean and (biased) variance, treated as constants
    of the map, and the running averages are updated; in evaluation mode, and always in
    :meth:`inverse` (a latent batch has no data statistics), the running averages are used.

    References:
        | Density estimation using Real NVP (Dinh et al., 2017)
        | https://arxiv.org/abs/1605.08803

    Arguments:
        n_features: The number of features :math:`D`.
        momentum: The weight of the current batch in the running averages.
        eps: The variance floor :math:`\epsilon`.
    """

    def __init__(self, n_features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        D = check_int("n_features", n_features)
        self.momentum = check_float("momentum", momentum, low=0.0, high=1.0)
        self.eps = check_float("eps", eps, low=0.0, low_open=True)
        self.log_gamma = nn.Parameter(torch.zeros(D))
        self.beta = nn.Parameter(torch.zeros(D))
        self.register_buffer("running_mean", torch.zeros(D))
        self.register_buffer("running_var", torch.ones(D))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and x.shape[0] > 1:
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            with torch.no_grad():
                n = x.shape[0]
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        log_scale = self.log_gamma - 0.5 * (var + self.eps).log()
        y = (x - mean) * log_scale.exp() + self.beta
        return y, log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        log_scale = self.log_gamma - 0.5 * (self.running_var + self.eps).log()
        return (y - self.beta) * (-log_scale).exp() + self.running_mean


def make_permutation(kind: str, n_features: int) -> nn.Module:
    """Build the mixing layer placed between two blocks of a flow.

    Arguments:
        kind: ``"reverse"`` (reverse the features), ``"random"`` (a random permutation drawn
            from the global torch generator) or ``"lu"`` (a learned :class:`LULinearTransform`).
        n_features: The number of features :math:`D`.
    """
    kind = check_choice("permutation", kind, PERMUTATIONS)
    if kind == "lu":
        return LULinearTransform(n_features)
    if kind == "random":
        return PermutationTransform(torch.randperm(n_features))
    return PermutationTransform(torch.arange(n_features - 1, -1, -1))


def stack_blocks(
    make_block: Callable[[], nn.Module],
    n_features: int,
    blocks: int,
    batch_norm: bool,
    permutation: str,
    *,
    mix_first: bool = False,
) -> list[nn.Module]:
    """The layers of a flow of ``blocks`` blocks, each built by ``make_block``, with
    [a :class:`BatchNormTransform` +] a mixing layer (:func:`make_permutation`) between two
    consecutive blocks, data to latent: ``block → [BN] → mix → block → … → block`` (the
    autoregressive flows), or with ``mix_first`` before the first block too,
    ``[BN] → mix → block → … → [BN] → mix → block`` (the coupling flows' steps)."""
    blocks = check_int("blocks", blocks)
    batch_norm = check_bool("batch_norm", batch_norm)
    permutation = check_choice("permutation", permutation, PERMUTATIONS)
    layers: list[nn.Module] = []
    for i in range(blocks):
        if i > 0 or mix_first:
            if batch_norm:
                layers.append(BatchNormTransform(n_features))
            layers.append(make_permutation(permutation, n_features))
        layers.append(make_block())
    return layers


class StackedFlow(Flow):
    r"""A flow of ``blocks`` copies of one transform in the layout of :func:`stack_blocks`, with a
    standard normal base. A family is this flow configured, not re-coded (as zuko configures its
    variants with ``partial``): its class sets

    * ``block``, the transform of one block, built as ``block(n_features, **hyper)``;
    * ``mix_first``, whether a mixing layer also precedes the first block (coupling flows);
    * ``min_features``, the fewest features the family supports;
    * ``defaults``, its defaults of ``blocks``, ``batch_norm``, ``permutation`` and of any
      hyperparameter of ``block`` it overrides.

    Its hyperparameters (:meth:`hyperparameters`) are ``blocks``, those of ``block`` (among
    them ``context``, the context features every block's conditioner takes) and ``batch_norm``,
    ``permutation``.

    Arguments:
        n_features: The number of features :math:`D`.
        hyper: Hyperparameters; missing ones take the family's defaults.
    """

    block: ClassVar[Callable[..., nn.Module]]
    mix_first: ClassVar[bool] = False
    min_features: ClassVar[int] = 1
    defaults: ClassVar[Mapping[str, Any]] = {"blocks": 10, "batch_norm": False, "permutation": "reverse"}

    @classmethod
    def hyperparameters(cls) -> dict[str, Any]:
        """The family's hyperparameters with their defaults, in signature order."""
        signature = inspect.signature(cls.block)
        block = {name: p.default for name, p in signature.parameters.items() if name != "n_features"}
        merged = {"blocks": None, **block, "batch_norm": None, "permutation": None}
        return {name: cls.defaults.get(name, default) for name, default in merged.items()}

    def __init__(self, n_features: int, **hyper: Any):
        valid = self.hyperparameters()
        check_known(type(self).__name__, hyper, valid)
        check_int("n_features", n_features, minimum=self.min_features)
        settings = {**valid, **hyper}
        layout = {name: settings.pop(name) for name in ("blocks", "batch_norm", "permutation")}
        layers = stack_blocks(
            lambda: type(self).block(n_features, **settings), n_features, **layout, mix_first=self.mix_first
        )
        super().__init__(n_features, layers, context=settings.get("context", 0))

