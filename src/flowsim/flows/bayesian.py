r"""Bayesian flows: variational conditioner layers, one trained flow an ensemble of flows.

The linear layers of a flow's conditioners (the MADEs of ``maf``, ``rqs``, ``mademog``,
``mafmademog``, the coupling networks of ``glow``, ``nsf_coupling``) get mean-field Gaussian
weights, :math:`w \sim q(w) = \mathcal{N}(\mu, \sigma^2)` with :math:`\sigma =
\mathrm{softplus}(\rho)`, and a prior :math:`p(w) = \mathcal{N}(0, s_p^2)`. Training minimises
the negative ELBO per event (:func:`elbo_loss`),

.. math:: \mathcal{L} = -\frac{1}{N} \sum_{n=1}^{N} \mathbb{E}_{q}\left[\log p(x_n \mid w)\right]
          + \frac{1}{N} \mathrm{KL}(q \,\|\, p),

with :math:`N` the number of training events. Each draw of the weights is then one flow, an
"ensemble member" at the cost of one training; the spread of :math:`\log p(x \mid w)` over draws
is the flow's uncertainty on its density (from the limited training data).
The permutations, LU and batch-norm layers stay deterministic.

A variational layer acts with, in this order of precedence:

* the means :math:`\mu`, inside :func:`mean_weights`;
* one frozen draw, inside :func:`frozen_draw` (or between :func:`freeze_draw` and
  :func:`unfreeze`): the same weights for every call, so that a flow's density, its inverse and
  its samples are those of one bijection (a forward and an inverse with different weights are
  not inverse to each other);
* a fresh draw per call in training mode (local reparameterisation, see
  :meth:`VariationalLinear.forward`);
* the means in evaluation mode, so that validation, :meth:`~flowsim.flows.base.DensityModel.sample`
  and a loaded flow give the mean flow unless a draw is frozen.

References:
    | Understanding Event-Generation Networks via Uncertainties (Bellagente et al., 2021)
    | https://arxiv.org/abs/2104.04543

    | Weight Uncertainty in Neural Networks (Blundell et al., 2015)
    | https://arxiv.org/abs/1505.05424

    | Variational Dropout and the Local Reparameterization Trick (Kingma et al., 2015)
    | https://arxiv.org/abs/1506.02557

Example:
    >>> from flowsim.flows import build_flow
    >>> flow = build_flow("maf", 3, blocks=2, hidden=8, bayesian={"prior_std": 1.0}).eval()
    >>> x = torch.randn(4, 3)
    >>> with frozen_draw(flow, 0):
    ...     a = flow.log_prob(x)
    >>> with frozen_draw(flow, 0):
    ...     b = flow.log_prob(x)
    >>> bool(torch.equal(a, b)), is_bayesian(flow), kl_divergence(flow).item() > 0
    (True, True, True)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .base import check_float, check_known
from .made import MaskedLinear

__all__ = [
    "BAYESIAN_DEFAULTS",
    "MaskedVariationalLinear",
    "VariationalLinear",
    "bayesian_settings",
    "bayesianize",
    "elbo_loss",
    "freeze_draw",
    "frozen_draw",
    "is_bayesian",
    "kl_divergence",
    "mean_weights",
    "unfreeze",
    "variational_layers",
]

#: The settings of a run's ``params.bayesian`` entry and their defaults.
BAYESIAN_DEFAULTS: dict[str, float] = {"prior_std": 1.0, "init_std": 1e-3}


def _inverse_softplus(y: float) -> float:
    r""":math:`\rho` with :math:`\mathrm{softplus}(\rho) = y`, i.e. :math:`\log(e^y - 1)`."""
    return math.log(math.expm1(y))


def _gaussian_kl(mu: Tensor, sigma: Tensor, prior_std: float) -> Tensor:
    r"""Element-wise :math:`\mathrm{KL}(\mathcal{N}(\mu, \sigma^2) \,\|\, \mathcal{N}(0, s_p^2))
    = \log(s_p / \sigma) + (\sigma^2 + \mu^2) / (2 s_p^2) - 1/2`."""
    return math.log(prior_std) - sigma.log() + (sigma.square() + mu.square()) / (2.0 * prior_std**2) - 0.5


class VariationalLinear(nn.Module):
    r"""Linear layer with mean-field Gaussian weights, a drop-in for ``nn.Linear``.

    .. math:: y = W x + b, \qquad W_{ji} \sim \mathcal{N}(\mu_{ji}, \sigma_{ji}^2), \quad
              b_j \sim \mathcal{N}(\mu_j, \sigma_j^2), \quad \sigma = \mathrm{softplus}(\rho)

    with the prior :math:`\mathcal{N}(0, s_p^2)` on every weight and bias. The means are
    initialised like ``nn.Linear`` (or copied from a layer, :meth:`from_linear`) and the
    :math:`\sigma` to ``init_std``, small: the layer, hence the flow, starts as the
    deterministic one (its small-init last layers make a fresh flow its base distribution, which
    keeps deep stacks trainable; wide initial draws would start it as a noisy map instead), and
    the ELBO's KL term widens the :math:`\sigma` wherever the data leave the weights
    undetermined. Adam moves :math:`\rho` by about the learning rate per step, and
    :math:`\log\sigma \approx \rho` while :math:`\sigma \ll 1`: widths need some
    :math:`\log(\sigma / \text{init\_std}) / \text{lr}` steps to grow (about 4600 from
    :math:`10^{-3}` to 0.1 at lr :math:`10^{-3}`), so a short training underestimates them.

    The modes (see :mod:`flowsim.flows.bayesian`) are set by :func:`frozen_draw` and
    :func:`mean_weights`; :attr:`weight` and :attr:`bias` are the weights of a deterministic
    pass: the frozen draw, else the means.

    Arguments:
        in_features: The input size :math:`I`.
        out_features: The output size :math:`O`.
        bias: Whether to learn a bias :math:`b`.
        prior_std: The prior width :math:`s_p`.
        init_std: The initial :math:`\sigma`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        prior_std: float = BAYESIAN_DEFAULTS["prior_std"],
        init_std: float = BAYESIAN_DEFAULTS["init_std"],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.prior_std = check_float("prior_std", prior_std, low=0.0, low_open=True)
        rho = _inverse_softplus(check_float("init_std", init_std, low=0.0, low_open=True))
        like = {"device": device, "dtype": dtype}
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features, **like))
        self.weight_rho = nn.Parameter(torch.full((out_features, in_features), rho, **like))
        self.bias_mu = nn.Parameter(torch.empty(out_features, **like)) if bias else None
        self.bias_rho = nn.Parameter(torch.full((out_features,), rho, **like)) if bias else None
        # the standard-normal noise of a frozen draw; not saved: a draw is a seed, not a weight
        self.register_buffer("weight_eps", None, persistent=False)
        self.register_buffer("bias_eps", None, persistent=False)
        self.use_mean = False
        self._reset_means()

    def _reset_means(self) -> None:
        # nn.Linear's initialisation
        nn.init.kaiming_uniform_(self.weight_mu, a=math.sqrt(5))
        if self.bias_mu is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            nn.init.uniform_(self.bias_mu, -bound, bound)

    @classmethod
    def from_linear(cls, layer: nn.Linear, **settings: float) -> VariationalLinear:
        """A variational layer whose means are ``layer``'s weights (same device and dtype)."""
        if type(layer) is not nn.Linear:
            raise TypeError(f"VariationalLinear replaces an nn.Linear, not a {type(layer).__name__}")
        with _same_rng(layer):
            new = cls(layer.in_features, layer.out_features, layer.bias is not None, **settings, **_like(layer))
        new._copy_means(layer)
        return new

    def _copy_means(self, layer: nn.Linear) -> None:
        with torch.no_grad():
            self.weight_mu.copy_(layer.weight)
            if self.bias_mu is not None:
                self.bias_mu.copy_(layer.bias)

    @property
    def weight_sigma(self) -> Tensor:
        r"""The weights' :math:`\sigma = \mathrm{softplus}(\rho)`, shape :math:`(O, I)`."""
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self) -> Tensor | None:
        r"""The biases' :math:`\sigma`, shape :math:`(O,)`, or None without a bias."""
        return None if self.bias_rho is None else F.softplus(self.bias_rho)

    def _frozen(self) -> bool:
        return self.weight_eps is not None and not self.use_mean

    @property
    def weight(self) -> Tensor:
        r"""The weights of a deterministic pass, :math:`\mu + \sigma \epsilon` in a frozen draw,
        else :math:`\mu`, shape :math:`(O, I)` (unmasked)."""
        if self._frozen():
            return self.weight_mu + self.weight_sigma * self.weight_eps
        return self.weight_mu

    @property
    def bias(self) -> Tensor | None:
        """The biases of a deterministic pass (see :attr:`weight`)."""
        if self.bias_mu is None:
            return None
        if self._frozen():
            return self.bias_mu + self.bias_sigma * self.bias_eps
        return self.bias_mu

    def _mask(self, w: Tensor) -> Tensor:
        return w

    def forward(self, x: Tensor) -> Tensor:
        r"""Map :math:`(N, I) \to (N, O)`.

        In training mode outside a frozen draw, each event gets its own draw of the weights
        through the local reparameterisation: for fixed :math:`x` the pre-activations are
        exactly Gaussian,

        .. math:: y_j \sim \mathcal{N}\Big(\sum_i \mu_{ji} x_i + \mu_j,\;
                  \sum_i \sigma_{ji}^2 x_i^2 + \sigma_j^2\Big),

        so drawing :math:`y` gives the same distribution of every event's outputs (and, layer
        after layer, of its log-density) as drawing :math:`W`, with a lower-variance gradient
        and no weight-sized noise, at the price of a second matrix product. The events of a
        batch then see independent draws; the ELBO is a sum over events, so its estimate stays
        unbiased.
        """
        if self.training and self.weight_eps is None and not self.use_mean:
            mean = F.linear(x, self._mask(self.weight_mu), self.bias_mu)
            var_b = None if self.bias_rho is None else self.bias_sigma.square()
            var = F.linear(x.square(), self._mask(self.weight_sigma.square()), var_b)
            # without a bias a row may have zero variance, whose square root has no gradient
            return mean + var.clamp_min(torch.finfo(var.dtype).tiny).sqrt() * torch.randn_like(mean)
        return F.linear(x, self._mask(self.weight), self.bias)

    def _weight_kl(self) -> Tensor:
        return _gaussian_kl(self.weight_mu, self.weight_sigma, self.prior_std)

    def kl(self) -> Tensor:
        r""":math:`\mathrm{KL}(q \,\|\, p)` of the layer's weights and biases, closed form."""
        total = self._weight_kl().sum()
        if self.bias_mu is not None:
            total = total + _gaussian_kl(self.bias_mu, self.bias_sigma, self.prior_std).sum()
        return total

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias_mu is not None}, prior_std={self.prior_std}"
        )


class MaskedVariationalLinear(VariationalLinear):
    r"""Variational :class:`~flowsim.flows.made.MaskedLinear`, :math:`y = (W \odot M) x + b`.

    The mask multiplies every draw (and the variances of the local reparameterisation), so the
    autoregressive structure holds in every draw. The KL counts only the unmasked weights: the
    masked ones never act, so their :math:`q` is not a belief about the flow and would only add
    a constant, pulling nothing.

    Arguments:
        mask: The mask :math:`M`, shape :math:`(O, I)`.
        bias: Whether to learn a bias :math:`b`.
        prior_std: The prior width :math:`s_p`.
        init_std: The initial :math:`\sigma`.
    """

    def __init__(
        self,
        mask: Tensor,
        bias: bool = True,
        *,
        prior_std: float = BAYESIAN_DEFAULTS["prior_std"],
        init_std: float = BAYESIAN_DEFAULTS["init_std"],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__(
            mask.shape[1], mask.shape[0], bias, prior_std=prior_std, init_std=init_std, device=device, dtype=dtype
        )
        self.register_buffer("mask", mask.to(device=self.weight_mu.device, dtype=self.weight_mu.dtype))

    @classmethod
    def from_linear(cls, layer: nn.Linear, **settings: float) -> MaskedVariationalLinear:
        """A variational layer with ``layer``'s mask and its weights as means."""
        if type(layer) is not MaskedLinear:
            raise TypeError(f"MaskedVariationalLinear replaces a MaskedLinear, not a {type(layer).__name__}")
        with _same_rng(layer):
            new = cls(layer.mask, layer.bias is not None, **settings, **_like(layer))
        new._copy_means(layer)
        return new

    def _mask(self, w: Tensor) -> Tensor:
        return w * self.mask

    def _weight_kl(self) -> Tensor:
        return super()._weight_kl() * self.mask


def _like(layer: nn.Linear) -> dict[str, Any]:
    return {"device": layer.weight.device, "dtype": layer.weight.dtype}


def _same_rng(layer: nn.Linear) -> contextlib.AbstractContextManager:
    """Leave the global generators as they were: the means drawn at construction are replaced
    by ``layer``'s, and a Bayesian flow's build should consume what the deterministic one does."""
    device = layer.weight.device
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def variational_layers(module: nn.Module) -> list[VariationalLinear]:
    """The variational layers of ``module``, in module order (the order of a draw's noise)."""
    return [m for m in module.modules() if isinstance(m, VariationalLinear)]


def is_bayesian(module: nn.Module) -> bool:
    """Whether ``module`` has variational layers."""
    return any(isinstance(m, VariationalLinear) for m in module.modules())


def kl_divergence(module: nn.Module) -> Tensor:
    r""":math:`\mathrm{KL}(q \,\|\, p)` of all the variational layers of ``module`` (closed form,
    a 0-d tensor; zero if it has none)."""
    layers = variational_layers(module)
    if not layers:
        ref = next(module.parameters(), None)
        return torch.zeros(()) if ref is None else ref.new_zeros(())
    return torch.stack([layer.kl() for layer in layers]).sum()


def bayesian_settings(value: Mapping[str, Any]) -> dict[str, float]:
    """The checked settings of a ``params.bayesian`` entry with the defaults filled in
    (:data:`BAYESIAN_DEFAULTS`); raises ValueError naming the offending key."""
    if not isinstance(value, Mapping):
        raise ValueError(f"bayesian must be a mapping of {', '.join(BAYESIAN_DEFAULTS)} (or null), got {value!r}")
    check_known("bayesian", value, BAYESIAN_DEFAULTS)
    settings = {**BAYESIAN_DEFAULTS, **value}
    return {key: check_float(f"bayesian.{key}", v, low=0.0, low_open=True) for key, v in settings.items()}


def bayesianize(
    flow: nn.Module,
    prior_std: float = BAYESIAN_DEFAULTS["prior_std"],
    init_std: float = BAYESIAN_DEFAULTS["init_std"],
) -> nn.Module:
    r"""Make the conditioner layers of ``flow`` variational, in place; returns ``flow``.

    Every ``nn.Linear`` becomes a :class:`VariationalLinear` and every
    :class:`~flowsim.flows.made.MaskedLinear` a :class:`MaskedVariationalLinear`, with the
    layer's weights as means: in flowsim's families these are exactly the layers of the MADEs
    and coupling networks (the LU, permutation and batch-norm layers are no ``nn.Linear``).

    Raises:
        TypeError: For any other subclass of ``nn.Linear`` (e.g. zuko's masked layers), whose
            forward the variational layers would not reproduce.
        ValueError: If ``flow`` is Bayesian already or has no linear layer.
    """
    if is_bayesian(flow):
        raise ValueError(f"{type(flow).__name__} is Bayesian already")
    settings = {"prior_std": prior_std, "init_std": init_std}
    replaced = _replace_linears(flow, settings)
    if replaced == 0:
        raise ValueError(f"{type(flow).__name__} has no linear layers to make variational")
    return flow


def _replace_linears(module: nn.Module, settings: dict[str, float]) -> int:
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            variational = MaskedVariationalLinear if isinstance(child, MaskedLinear) else VariationalLinear
            setattr(module, name, variational.from_linear(child, **settings))
            count += 1
        else:
            count += _replace_linears(child, settings)
    return count


def freeze_draw(module: nn.Module, generator: torch.Generator | None = None) -> None:
    r"""Fix the weights of every variational layer of ``module`` to one draw
    :math:`w = \mu + \sigma \epsilon`, until :func:`unfreeze`.

    The noise :math:`\epsilon` comes from ``generator`` (the global generator if None), on the
    generator's device, layer after layer in module order, and is moved to the weights' device:
    with a CPU generator a seed gives the same draw on every device. The draw follows later
    changes of :math:`\mu` and :math:`\sigma` (the weights are recomputed from the noise on
    every pass, with gradients).
    """
    device = generator.device if generator is not None else torch.device("cpu")
    for layer in variational_layers(module):
        like = {"generator": generator, "device": device, "dtype": layer.weight_mu.dtype}
        layer.weight_eps = torch.randn(layer.weight_mu.shape, **like).to(layer.weight_mu.device)
        if layer.bias_mu is not None:
            layer.bias_eps = torch.randn(layer.bias_mu.shape, **like).to(layer.bias_mu.device)


def unfreeze(module: nn.Module) -> None:
    """Release the draw of :func:`freeze_draw`: back to fresh draws in training, means in eval."""
    for layer in variational_layers(module):
        layer.weight_eps = layer.bias_eps = None


@contextlib.contextmanager
def frozen_draw(module: nn.Module, seed: int | torch.Generator) -> Iterator[nn.Module]:
    """Within the block, the variational layers of ``module`` act with one draw of the weights
    (:func:`freeze_draw`), from ``seed`` through a CPU generator (the same draw on every device)
    or from the given generator; the previous state is restored afterwards.

    Example:
        >>> from flowsim.flows import build_flow
        >>> flow = build_flow("rqs", 2, blocks=1, bins=4, hidden=8, bayesian={}).eval()
        >>> with frozen_draw(flow, 7):
        ...     x = flow.sample(5)
        ...     x_again = flow.inverse(flow.transform(x)[0])
        >>> torch.allclose(x, x_again, atol=1e-5)
        True
    """
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    layers = variational_layers(module)
    previous = [(layer.weight_eps, layer.bias_eps) for layer in layers]
    freeze_draw(module, generator)
    try:
        yield module
    finally:
        for layer, (weight_eps, bias_eps) in zip(layers, previous):
            layer.weight_eps, layer.bias_eps = weight_eps, bias_eps


@contextlib.contextmanager
def mean_weights(module: nn.Module) -> Iterator[nn.Module]:
    r"""Within the block, the variational layers of ``module`` act with their means :math:`\mu`
    whatever the mode and any frozen draw; the previous state is restored afterwards."""
    layers = variational_layers(module)
    previous = [layer.use_mean for layer in layers]
    for layer in layers:
        layer.use_mean = True
    try:
        yield module
    finally:
        for layer, use_mean in zip(layers, previous):
            layer.use_mean = use_mean


def elbo_loss(n_train: int) -> Callable[[nn.Module, Sequence[Tensor]], Tensor]:
    r"""The loss of a Bayesian flow for :func:`flowsim.training.train`, on batches ``(x,)``
    or, with event weights, ``(x, ṽ)``.

    In training mode, the negative ELBO per event,
    :math:`-\frac{1}{B} \sum_{b} \log p(x_b \mid w_b) + \mathrm{KL}(q \,\|\, p) / N` with
    :math:`w_b \sim q` (fresh draws) and :math:`N` = ``n_train`` the number of training events:
    an unbiased estimate of :math:`\mathcal{L}` of :mod:`flowsim.flows.bayesian`. In evaluation
    mode (validation), the mean NLL with the mean weights, the flow that is sampled by default.
    Event weights ``ṽ = v / mean(v)`` over the split (:func:`flowsim.weights.normalised`) weight
    each event's NLL, :math:`-\frac{1}{B} \sum_b ṽ_b \log p(x_b \mid w_b)`, as in
    :func:`flowsim.stages.flows.negative_log_likelihood`; as :math:`\sum ṽ = N` the KL term
    stays :math:`\mathrm{KL} / N`.
    """
    if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
        raise ValueError(f"n_train must be a positive number of events, got {n_train!r}")

    def loss(model: nn.Module, batch: Sequence[Tensor]) -> Tensor:
        log_p = model(batch[0])
        if len(batch) > 1:
            log_p = batch[1] * log_p
        nll = -log_p.mean()
        if not model.training:
            return nll
        return nll + kl_divergence(model) / n_train

    return loss
