r"""Conditional densities put to use: a conditional model at a fixed context, and a joint density
built from one feature's own 1-D model and the others conditioned on it.

* :class:`FixedContext` is :math:`p(x \mid c_0)`: a model with a context input (``context``
  :math:`C > 0`, every flowsim family takes one) seen at one context, or at one context per
  event, as an ordinary unconditional density. A flow of background and signal conditioned on
  the label is sampled as background at :math:`c_0 = 0` and as signal at :math:`c_0 = 1`.
* :class:`FeatureConditioned` is the "mass-conditioned" flow of Käch et al. (seed 003): one
  feature :math:`x_j` (a mass, say) from its own 1-D model and the other :math:`D - 1`
  conditioned on it,

  .. math:: \log p(x) = \log p_j(x_j) + \log p(x_{\setminus j} \mid x_j) ,

  a normalized density on :math:`\mathbb{R}^D` whose marginal in :math:`x_j` is :math:`p_j`
  exactly, so the feature's distribution is learned by a model of one dimension instead of
  emerging from the flow's correlations. It trains on the ordinary likelihood (the two terms
  have disjoint parameters, so the sum's minimum is each term's).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import DensityModel

__all__ = ["FeatureConditioned", "FixedContext", "condition_on_feature"]


class FixedContext(DensityModel):
    r""":math:`p(x \mid c)` of a conditional ``model`` at ``context``: shape :math:`(C,)` (one
    context for every event) or :math:`(N, C)` (one per event, as in a training batch).

    Its ``log_prob(x)`` and ``sample(n)`` take no context: to a sampler, a template filler or an
    evaluation it is an unconditional density. The context is a buffer that follows the model's
    device but is not saved (the model file stores the conditional model and the context as a
    setting, :func:`flowsim.flows.persist.load_flow`).
    """

    def __init__(self, model: DensityModel, context: Tensor) -> None:
        if model.context == 0:
            raise ValueError(f"{type(model).__name__} is unconditional: there is no context to fix")
        super().__init__(model.n_features)
        self.model = model
        context = torch.as_tensor(context, dtype=torch.get_default_dtype())
        if context.shape[-1:] != (model.context,) or context.dim() > 2:
            C = model.context
            raise ValueError(f"expected a context of shape ({C},) or (N, {C}), got {tuple(context.shape)}")
        self.register_buffer("fixed", context, persistent=False)
        self.training = model.training  # a wrapper made per batch reports the model's mode (the ELBO reads it)

    def _rows(self, n: int, like: Tensor) -> Tensor:
        return self.fixed.to(like.dtype).expand(n, -1) if self.fixed.dim() == 1 else self.fixed.to(like.dtype)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        self._check_context(context, len(x))  # refuses a second context
        return self.model.log_prob(x, self._rows(len(x), x))

    def training_loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        """The wrapped model's own training loss (``cfm``) at the fixed context."""
        return self.model.training_loss(batch, self._rows(len(batch[0]), batch[0]))

    def _sample(self, n: int, generator: torch.Generator | None, context: Tensor | None) -> Tensor:
        # checked here: the model's _sample takes its context as given (zuko's would draw one
        # event per context row, whatever n)
        rows = self.model._check_context(self._rows(n, self._reference()), n)
        return self.model._sample(n, generator, rows)

    def extra_repr(self) -> str:
        fixed = self.fixed.tolist() if self.fixed.dim() == 1 else f"{len(self.fixed)} rows"
        return f"context={fixed}"


class FeatureConditioned(DensityModel):
    r"""The joint density :math:`p_j(x_j)\, p(x_{\setminus j} \mid x_j)` (module docstring).

    Sampling draws :math:`x_j` from the marginal, then the other features from the conditional
    model at that value. :meth:`log_prob` is exact whenever both parts' are.

    Arguments:
        n_features: The number of features :math:`D \geq 2`.
        index: The conditioning feature :math:`j`.
        marginal: An unconditional density on one feature.
        conditional: A density on :math:`D - 1` features with a context of one feature.
    """

    def __init__(self, n_features: int, index: int, marginal: DensityModel, conditional: DensityModel) -> None:
        super().__init__(n_features)
        if not 0 <= index < n_features:
            raise ValueError(f"index {index} outside 0..{n_features - 1}")
        if marginal.n_features != 1 or marginal.context != 0:
            raise ValueError("the marginal must be an unconditional density of one feature")
        if conditional.n_features != n_features - 1 or conditional.context != 1:
            raise ValueError(f"the conditional must be a density of {n_features - 1} features with a context of 1")
        self.index = index
        self.marginal = marginal
        self.conditional = conditional
        rest = [i for i in range(n_features) if i != index]
        self.register_buffer("rest", torch.tensor(rest, dtype=torch.long), persistent=False)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r""":math:`x_j`, shape :math:`(N, 1)`, and :math:`x_{\setminus j}`, shape :math:`(N, D - 1)`."""
        self._check_input(x)
        return x[:, self.index : self.index + 1], x.index_select(1, self.rest)

    def join(self, x_j: Tensor, rest: Tensor) -> Tensor:
        """The inverse of :meth:`split`."""
        return torch.cat([rest[:, : self.index], x_j, rest[:, self.index :]], dim=1)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        self._check_context(context, len(x))
        x_j, rest = self.split(x)
        return self.marginal.log_prob(x_j) + self.conditional.log_prob(rest, x_j)

    def _sample(self, n: int, generator: torch.Generator | None, context: Tensor | None) -> Tensor:
        x_j = self.marginal._sample(n, generator, None)
        return self.join(x_j, self.conditional._sample(n, generator, x_j))

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}, index={self.index}"


class FeatureConditionedMatching(FeatureConditioned):
    """:class:`FeatureConditioned` whose conditional part trains on its own loss (``cfm``): the
    training loss is the marginal's NLL plus that loss (disjoint parameters, as the sum of two
    NLLs is)."""

    def training_loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        x_j, rest = self.split(batch[0])
        nll = -self.marginal.log_prob(x_j)
        if len(batch) > 1:  # weighted: (x, w̃)
            nll = batch[1] * nll
        return nll.mean() + self.conditional.training_loss((rest, *batch[1:]), x_j)


def condition_on_feature(
    n_features: int, index: int, marginal: DensityModel, conditional: nn.Module
) -> FeatureConditioned:
    """The :class:`FeatureConditioned` density of ``marginal`` and ``conditional``, the class
    with a training loss of its own where the conditional part trains on one."""
    cls = FeatureConditionedMatching if hasattr(conditional, "training_loss") else FeatureConditioned
    return cls(n_features, index, marginal, conditional)
