"""Common base classes of the density models and argument checks shared by the families."""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    "DensityModel",
    "Flow",
    "apply_transforms",
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_known",
    "eval_mode",
    "invert_transforms",
    "standard_normal_log_prob",
]

_LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(u: Tensor) -> Tensor:
    r"""Log-density of the standard normal :math:`\mathcal{N}(0, I)` summed over the last axis.

    .. math:: \log \mathcal{N}(u; 0, I) = -\frac{1}{2} \sum_d u_d^2 - \frac{D}{2} \log 2\pi

    Arguments:
        u: Points, shape :math:`(*, D)`.

    Returns:
        The log-densities, shape :math:`(*)`.
    """
    return -0.5 * (u.square().sum(dim=-1) + u.shape[-1] * _LOG_2PI)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Temporarily put ``module`` in evaluation mode, restoring its training flag afterwards.

    Sampling must not use dropout nor the batch statistics of batch-norm layers, whatever mode the
    caller left the model in.
    """
    training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(training)


class DensityModel(nn.Module):
    r"""A normalized density :math:`p(x)` on :math:`\mathbb{R}^D` that can be sampled.

    Subclasses implement :meth:`log_prob` and :meth:`_sample` (called under ``torch.no_grad()``
    and in evaluation mode). Calling the module returns :meth:`log_prob`, so that hooks and
    wrappers such as ``DistributedDataParallel`` see the training loss computation.

    Arguments:
        n_features: The number of features :math:`D`.
    """

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = check_int("n_features", n_features)

    @classmethod
    def hyperparameters(cls) -> dict[str, Any]:
        """The family's hyperparameters with their defaults: the keyword arguments of its
        constructor after ``n_features``."""
        signature = inspect.signature(cls.__init__)
        return {name: p.default for name, p in signature.parameters.items() if name not in ("self", "n_features")}

    def _reference(self) -> Tensor:
        # Sampling follows the device and dtype of the parameters: nothing is hard-coded.
        return next(self.parameters())

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[-1] != self.n_features:
            raise ValueError(
                f"expected a tensor of shape (N, {self.n_features}), got {tuple(x.shape)}"
            )

    def log_prob(self, x: Tensor) -> Tensor:
        r"""Log-density :math:`\log p(x)`.

        Arguments:
            x: Events, shape :math:`(N, D)`.

        Returns:
            The log-densities, shape :math:`(N,)`.
        """
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Alias of :meth:`log_prob`."""
        return self.log_prob(x)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        r"""Draw :math:`n` events :math:`x \sim p(x)`, without gradients, in evaluation mode.

        Arguments:
            n: The number of events.
            generator: An optional random generator; it must live on the parameters' device.

        Returns:
            The events, shape :math:`(n, D)`, on the device and with the dtype of the parameters.
        """
        n = check_int("n", n, minimum=0)
        with torch.no_grad(), eval_mode(self):
            return self._sample(n, generator)

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}"


def apply_transforms(transforms: Sequence[nn.Module], x: Tensor) -> tuple[Tensor, Tensor]:
    r"""Compose ``transforms`` in order: :math:`y = T_K \circ \dots \circ T_1 (x)` and the summed
    :math:`\log |\det|` of the layers, shapes :math:`(N, D)` and :math:`(N,)`."""
    ladj = x.new_zeros(x.shape[0])
    for t in transforms:
        x, ladj_t = t(x)
        ladj = ladj + ladj_t
    return x, ladj


def invert_transforms(transforms: Sequence[nn.Module], y: Tensor) -> Tensor:
    r"""The inverse of :func:`apply_transforms`: the layers' inverses in reverse order."""
    for t in reversed(transforms):
        y = t.inverse(y)
    return y


class Flow(DensityModel):
    r"""A normalizing flow: a bijection :math:`u = T(x)` onto a standard normal latent space.

    The transforms are applied in the normalizing direction :math:`x \to u` (the training
    direction). Each element is a module whose call maps :math:`x \mapsto (y, \log|\det \partial
    y / \partial x|)` and whose ``inverse`` maps :math:`y \mapsto x`. The density is

    .. math:: \log p(x) = \log \mathcal{N}(T(x); 0, I) + \log |\det J_T(x)| .

    References:
        | Normalizing Flows for Probabilistic Modeling and Inference (Papamakarios et al., 2021)
        | https://arxiv.org/abs/1912.02762

    Arguments:
        n_features: The number of features :math:`D`.
        transforms: The transforms, applied in order from data to latent space.
    """

    def __init__(self, n_features: int, transforms: Sequence[nn.Module]):
        super().__init__(n_features)
        self.transforms = nn.ModuleList(transforms)

    def transform(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Map events to the latent space, :math:`u = T(x)`.

        Arguments:
            x: Events, shape :math:`(N, D)`.

        Returns:
            The latent points :math:`u`, shape :math:`(N, D)`, and
            :math:`\log |\det \partial u / \partial x|`, shape :math:`(N,)`.
        """
        self._check_input(x)
        return apply_transforms(self.transforms, x)

    def inverse(self, u: Tensor) -> Tensor:
        r"""Map latent points back to events, :math:`x = T^{-1}(u)`.

        Batch-norm layers use their running averages here, whatever the mode.

        Arguments:
            u: Latent points, shape :math:`(N, D)`.

        Returns:
            The events, shape :math:`(N, D)`.
        """
        self._check_input(u)
        return invert_transforms(self.transforms, u)

    def log_prob(self, x: Tensor) -> Tensor:
        u, ladj = self.transform(x)
        return standard_normal_log_prob(u) + ladj

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        ref = self._reference()
        u = torch.randn(
            n, self.n_features, generator=generator, device=ref.device, dtype=ref.dtype
        )
        return self.inverse(u)


# Argument checks. They raise ValueError (not assert, which ``python -O`` strips) and always name
# the offending key, because the values usually come from a YAML config.


def check_known(owner: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise ValueError naming the hyperparameters in ``given`` that ``owner`` does not take,
    and the ``valid`` ones."""
    valid = list(valid)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {', '.join(map(repr, unknown))} for {owner}; valid: {', '.join(valid)}"
        )


def check_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a ``float`` if it is a real number in the given range, else raise."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v)
        if ok and low is not None:
            ok = v > low if low_open else v >= low
        if ok and high is not None:
            ok = v < high if high_open else v <= high
    if not ok:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low}"
        hi = "inf)" if high is None else f"{high}" + (")" if high_open else "]")
        raise ValueError(f"{name} must be a real number in {lo}, {hi}, got {value!r}")
    return float(value)


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a ``bool``, else raise ValueError."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value
