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
    r"""A normalized density :math:`p(x)` on :math:`\mathbb{R}^D`, or :math:`p(x \mid c)` with
    a context :math:`c \in \mathbb{R}^C`, that can be sampled.

    Subclasses implement :meth:`log_prob` and :meth:`_sample` (called under ``torch.no_grad()``
    and in evaluation mode). Calling the module returns :meth:`log_prob`, so that hooks and
    wrappers such as ``DistributedDataParallel`` see the training loss computation.

    A conditional model (``context`` :math:`C > 0`) takes one context row per event in
    :meth:`log_prob` and :meth:`sample`; for each fixed :math:`c`, :math:`p(\cdot \mid c)` is
    a normalized density. An unconditional one (:math:`C = 0`) refuses a context.

    Arguments:
        n_features: The number of features :math:`D`.
        context: The number of context features :math:`C` (0: unconditional).
    """

    def __init__(self, n_features: int, context: int = 0):
        super().__init__()
        self.n_features = check_int("n_features", n_features)
        self.context = check_int("context", context, minimum=0)

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

    def _check_context(self, context: Tensor | None, n: int) -> Tensor | None:
        """``context`` as one row per event, shape (n, C): a conditional model needs one, of
        shape (n, C) or (C,) (the same context for every event); an unconditional one none."""
        if self.context == 0:
            if context is not None:
                raise ValueError(f"{type(self).__name__} is unconditional (context = 0) but was given a context")
            return None
        if context is None:
            name = type(self).__name__
            raise ValueError(f"{name} is conditional on {self.context} context feature(s): give a context")
        if context.dim() == 1 and context.shape[0] == self.context:
            return context.expand(n, self.context)
        if context.dim() != 2 or context.shape != (n, self.context):
            raise ValueError(f"expected a context of shape ({n}, {self.context}), got {tuple(context.shape)}")
        return context

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        r"""Log-density :math:`\log p(x)`, or :math:`\log p(x \mid c)` of a conditional model.

        Arguments:
            x: Events, shape :math:`(N, D)`.
            context: The events' contexts, shape :math:`(N, C)` or :math:`(C,)`; None for an
                unconditional model.

        Returns:
            The log-densities, shape :math:`(N,)`.
        """
        raise NotImplementedError

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Alias of :meth:`log_prob`."""
        return self.log_prob(x, context)

    def _sample(self, n: int, generator: torch.Generator | None, context: Tensor | None) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None, *, context: Tensor | None = None) -> Tensor:
        r"""Draw :math:`n` events :math:`x \sim p(x)` (or :math:`x_i \sim p(x \mid c_i)`),
        without gradients, in evaluation mode.

        Arguments:
            n: The number of events.
            generator: An optional random generator; it must live on the parameters' device.
            context: For a conditional model, each event's context, shape :math:`(n, C)`, or
                one for all, shape :math:`(C,)`.

        Returns:
            The events, shape :math:`(n, D)`, on the device and with the dtype of the parameters.
        """
        n = check_int("n", n, minimum=0)
        context = self._check_context(context, n)
        with torch.no_grad(), eval_mode(self):
            return self._sample(n, generator, context)

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}" + (f", context={self.context}" if self.context else "")


def apply_transforms(
    transforms: Sequence[nn.Module], x: Tensor, context: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    r"""Compose ``transforms`` in order: :math:`y = T_K \circ \dots \circ T_1 (x)` and the summed
    :math:`\log |\det|` of the layers, shapes :math:`(N, D)` and :math:`(N,)`; every layer gets
    the ``context`` (the unconditional ones ignore it)."""
    ladj = x.new_zeros(x.shape[0])
    for t in transforms:
        x, ladj_t = t(x, context)
        ladj = ladj + ladj_t
    return x, ladj


def invert_transforms(transforms: Sequence[nn.Module], y: Tensor, context: Tensor | None = None) -> Tensor:
    r"""The inverse of :func:`apply_transforms`: the layers' inverses in reverse order."""
    for t in reversed(transforms):
        y = t.inverse(y, context)
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
        context: The number of context features :math:`C` the transforms take (0: none).
    """

    def __init__(self, n_features: int, transforms: Sequence[nn.Module], context: int = 0):
        super().__init__(n_features, context)
        self.transforms = nn.ModuleList(transforms)

    def transform(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Map events to the latent space, :math:`u = T(x; c)`.

        Arguments:
            x: Events, shape :math:`(N, D)`.
            context: Their contexts, shape :math:`(N, C)` or :math:`(C,)` (conditional flows).

        Returns:
            The latent points :math:`u`, shape :math:`(N, D)`, and
            :math:`\log |\det \partial u / \partial x|`, shape :math:`(N,)`.
        """
        self._check_input(x)
        return apply_transforms(self.transforms, x, self._check_context(context, len(x)))

    def inverse(self, u: Tensor, context: Tensor | None = None) -> Tensor:
        r"""Map latent points back to events, :math:`x = T^{-1}(u; c)`.

        Batch-norm layers use their running averages here, whatever the mode.

        Arguments:
            u: Latent points, shape :math:`(N, D)`.
            context: Their contexts, shape :math:`(N, C)` or :math:`(C,)` (conditional flows).

        Returns:
            The events, shape :math:`(N, D)`.
        """
        self._check_input(u)
        return invert_transforms(self.transforms, u, self._check_context(context, len(u)))

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        u, ladj = self.transform(x, context)
        return standard_normal_log_prob(u) + ladj

    def _sample(self, n: int, generator: torch.Generator | None, context: Tensor | None) -> Tensor:
        ref = self._reference()
        u = torch.randn(
            n, self.n_features, generator=generator, device=ref.device, dtype=ref.dtype
        )
        return self.inverse(u, context)


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
