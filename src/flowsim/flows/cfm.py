r"""A continuous normalizing flow trained by conditional flow matching (family ``cfm``).

A velocity field :math:`v_\theta(x, t)` carries the standard normal at :math:`t = 0` to the data
at :math:`t = 1` along the ODE :math:`\dot x = v_\theta(x, t)`. Training is simulation-free: on
the straight (optimal-transport) path between a base point :math:`x_0 \sim \mathcal{N}(0, I)`
and an event :math:`x_1`,

.. math:: x_t = (1 - (1 - \sigma) t)\, x_0 + t\, x_1, \qquad u_t = x_1 - (1 - \sigma) x_0,

the field regresses the path's velocity, :math:`\mathcal{L} = \mathbb{E}_{t, x_0, x_1}
\lVert v_\theta(x_t, t) - u_t \rVert^2 / D` with :math:`t \sim U(0, 1)` (Lipman et al. 2022, the
OT path with :math:`\sigma` = ``sigma_min``). Sampling integrates the ODE from :math:`t = 0` to 1;
the density follows from the instantaneous change of variables,

.. math:: \log p_1(x_1) = \log \mathcal{N}(x_0; 0, I) - \int_0^1 \nabla \cdot v_\theta(x_t, t)\, dt,

integrated backwards from the event :math:`x_1` to :math:`x_0` together with the trajectory. The
divergence is exact (one autograd pass per feature, :math:`D` in all) or Hutchinson's unbiased
estimate :math:`\epsilon^\top (\partial v / \partial x)\, \epsilon` with one Rademacher
:math:`\epsilon` per event held fixed along the trajectory (one pass; Grathwohl et al. 2018).

The ODE solver is ours, not a library's (torchdiffeq, say): no gradient ever flows through a
solve (training never integrates, and sampling and densities need none), which removes the one
thing such libraries are for (the adjoint), and a few dozen lines give fixed-step RK4 and
adaptive Dormand-Prince 5(4) that run alike on CPU and CUDA and, with fixed steps, are
reproducible bit for bit.

References:
    | Flow Matching for Generative Modeling (Lipman et al., 2022) https://arxiv.org/abs/2210.02747
    | Improving and generalizing flow-based generative models with minibatch optimal transport
      (Tong et al., 2023) https://arxiv.org/abs/2302.00482
    | FFJORD (Grathwohl et al., 2018) https://arxiv.org/abs/1810.01367
    | A family of embedded Runge-Kutta formulae (Dormand & Prince, 1980)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from .base import DensityModel, check_choice, check_float, check_int, standard_normal_log_prob
from .nets import ResidualMLP, conditioner_input

__all__ = ["CFM", "SOLVERS", "VelocityField", "flow_matching_loss", "integrate"]

SOLVERS: tuple[str, ...] = ("rk4", "dopri5")
DIVERGENCES: tuple[str, ...] = ("exact", "hutchinson")

#: A right-hand side: (t, state) -> d state / dt, the state a tuple of tensors.
Field = Callable[[float, tuple[Tensor, ...]], tuple[Tensor, ...]]


class VelocityField(nn.Module):
    r"""The field :math:`v_\theta(x, t)`, or :math:`v_\theta(x, t; c)`: a residual MLP on the
    event, a sinusoidal embedding of the time, :math:`[\sin(2\pi k t), \cos(2\pi k t)]_{k =
    1..K}` with :math:`t` itself, and the event's context, if any."""

    def __init__(
        self, n_features: int, hidden: int, residual_blocks: int, activation: str, dropout: float,
        time_features: int, context: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.context = context
        self.register_buffer("frequencies", 2 * math.pi * torch.arange(1, time_features + 1, dtype=torch.float32))
        self.net = ResidualMLP(
            n_features + 2 * time_features + 1 + context, n_features, hidden, residual_blocks, activation, dropout
        )

    def embed(self, t: Tensor) -> Tensor:
        """The time features of ``t``, shape (N, 1) -> (N, 2K + 1)."""
        angles = t * self.frequencies.to(t.dtype)
        return torch.cat([t, angles.sin(), angles.cos()], dim=-1)

    def forward(self, x: Tensor, t: Tensor | float, context: Tensor | None = None) -> Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        t = (t.expand(x.shape[0]) if t.dim() == 0 else t).reshape(-1, 1)  # one time, or one per event
        return self.net(conditioner_input(torch.cat([x, self.embed(t)], dim=-1), context, self.context))


# --- ODE solvers -------------------------------------------------------------------------------


def _axpy(state: tuple[Tensor, ...], h: float, *terms: tuple[float, tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
    """``state + h Σ c_k k_k`` component by component."""
    out = []
    for i, s in enumerate(state):
        acc = s
        for c, k in terms:
            if c:
                acc = acc + (h * c) * k[i]
        out.append(acc)
    return tuple(out)


def _rk4(field: Field, state: tuple[Tensor, ...], t0: float, t1: float, steps: int) -> tuple[Tensor, ...]:
    """Classical fourth-order Runge-Kutta with ``steps`` equal steps from ``t0`` to ``t1``."""
    h = (t1 - t0) / steps
    for i in range(steps):
        t = t0 + i * h
        k1 = field(t, state)
        k2 = field(t + h / 2, _axpy(state, h, (0.5, k1)))
        k3 = field(t + h / 2, _axpy(state, h, (0.5, k2)))
        k4 = field(t + h, _axpy(state, h, (1.0, k3)))
        state = _axpy(state, h, (1 / 6, k1), (1 / 3, k2), (1 / 3, k3), (1 / 6, k4))
    return state


# Dormand-Prince 5(4): nodes, stage weights, fifth-order solution and the embedded fourth-order one
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_DP_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


def _dopri5(
    field: Field, state: tuple[Tensor, ...], t0: float, t1: float, rtol: float, atol: float, max_steps: int
) -> tuple[Tensor, ...]:
    """Adaptive Dormand-Prince 5(4) from ``t0`` to ``t1`` (either direction): one step size for
    the whole batch, from the RMS of the scaled error over every event and component."""
    span = t1 - t0
    h = span / 16
    t = t0
    k1 = field(t, state)
    for _ in range(max_steps):
        if (t1 - t) * math.copysign(1.0, span) <= 1e-12 * abs(span):
            return state
        h = math.copysign(min(abs(h), abs(t1 - t)), span)
        ks = [k1]
        for i in range(1, 7):
            ks.append(field(t + _DP_C[i] * h, _axpy(state, h, *zip(_DP_A[i], ks, strict=False))))
        high = _axpy(state, h, *zip(_DP_B5, ks, strict=True))
        low = _axpy(state, h, *zip(_DP_B4, ks, strict=True))
        squares, count = 0.0, 0
        for y0, y5, y4 in zip(state, high, low, strict=True):
            scale = atol + rtol * torch.maximum(y0.abs(), y5.abs())
            squares += float(((y5 - y4) / scale).square().sum())
            count += y5.numel()
        error = math.sqrt(squares / max(count, 1))
        if error <= 1.0:
            t, state, k1 = t + h, high, ks[-1]  # first same as last: the last stage is k1 of the next step
        h *= min(5.0, max(0.2, 0.9 * (error if error > 0 else 1e-10) ** -0.2))
    raise RuntimeError(f"dopri5: did not reach t = {t1} in {max_steps} steps (at t = {t:.6g}); raise rtol/atol")


def integrate(
    field: Field,
    state: Sequence[Tensor],
    t0: float,
    t1: float,
    *,
    solver: str = "rk4",
    steps: int = 32,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
) -> tuple[Tensor, ...]:
    """Integrate ``d state / dt = field(t, state)`` from ``t0`` to ``t1``: fixed-step RK4 with
    ``steps`` steps, or adaptive Dormand-Prince 5(4) to ``rtol``/``atol``."""
    state = tuple(state)
    if solver == "rk4":
        return _rk4(field, state, t0, t1, steps)
    if solver == "dopri5":
        return _dopri5(field, state, t0, t1, rtol, atol, max_steps)
    raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")


# --- the flow ----------------------------------------------------------------------------------


def flow_matching_loss(model: CFM, batch: Sequence[Tensor], context: Tensor | None = None) -> Tensor:
    r"""The conditional flow-matching loss of ``batch`` ``(x,)`` or, weighted, ``(x, w̃)`` (mean-1
    weights: :math:`\frac{1}{B}\sum_b \tilde w_b \lVert v - u \rVert_b^2 / D`), with the events'
    ``context`` for a conditional field. In evaluation mode (validation) the draws of :math:`t`
    and :math:`x_0` come from a fixed seed, so that the validation loss of one epoch compares
    with the next."""
    x1 = batch[0]
    generator = None
    if not model.training:
        generator = torch.Generator(device=x1.device).manual_seed(20221006)
    t = torch.rand(x1.shape[0], 1, generator=generator, device=x1.device, dtype=x1.dtype)
    x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
    xt = (1 - (1 - model.sigma_min) * t) * x0 + t * x1
    target = x1 - (1 - model.sigma_min) * x0
    context = model._check_context(context, len(x1))
    squared = (model.field(xt, t, context) - target).square().mean(dim=-1)
    if len(batch) > 1:
        squared = batch[1] * squared
    return squared.mean()


class CFM(DensityModel):
    r"""Continuous normalizing flow trained by conditional flow matching (see the module).

    Arguments:
        n_features: The number of features :math:`D`.
        hidden: The width of the velocity field's residual MLP.
        residual_blocks: Its number of residual blocks.
        activation: Its activation.
        dropout: The dropout probability inside its residual blocks.
        time_features: :math:`K`, the frequencies of the time embedding.
        sigma_min: :math:`\sigma`, the width of the conditional paths at :math:`t = 1`.
        solver: ``rk4`` (fixed steps) or ``dopri5`` (adaptive) for sampling and densities.
        steps: The RK4 steps.
        rtol, atol: The tolerances of ``dopri5``.
        divergence: ``exact`` (:math:`D` autograd passes per evaluation) or ``hutchinson`` (one).
        context: The number of context features :math:`C` of the field (0: unconditional).
    """

    def __init__(
        self,
        n_features: int,
        hidden: int = 128,
        residual_blocks: int = 3,
        activation: str = "silu",
        dropout: float = 0.0,
        time_features: int = 8,
        sigma_min: float = 1e-4,
        solver: str = "rk4",
        steps: int = 32,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        divergence: str = "exact",
        context: int = 0,
    ):
        super().__init__(n_features, context)
        self.sigma_min = check_float("sigma_min", sigma_min, low=0.0, high=1.0, high_open=True)
        self.solver = check_choice("solver", solver, SOLVERS)
        self.steps = check_int("steps", steps)
        self.rtol = check_float("rtol", rtol, low=0.0, low_open=True)
        self.atol = check_float("atol", atol, low=0.0, low_open=True)
        self.divergence = check_choice("divergence", divergence, DIVERGENCES)
        self.field = VelocityField(
            n_features,
            hidden,
            residual_blocks,
            activation,
            dropout,
            check_int("time_features", time_features, minimum=0),
            self.context,
        )

    def training_loss(self, batch: Sequence[Tensor], context: Tensor | None = None) -> Tensor:
        """The loss the flow trains on: :func:`flow_matching_loss`, not the NLL."""
        return flow_matching_loss(self, batch, context)

    def _solve(self, field: Field, state: Sequence[Tensor], t0: float, t1: float) -> tuple[Tensor, ...]:
        return integrate(field, state, t0, t1, solver=self.solver, steps=self.steps, rtol=self.rtol, atol=self.atol)

    def _trajectory(self, context: Tensor | None) -> Field:
        return lambda t, state: (self.field(state[0], t, context),)

    def transform(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""The base points :math:`x_0` of events :math:`x_1` (the ODE backwards from 1 to 0),
        differentiable where gradients are on, and :math:`\log|\det \partial x_0 / \partial x_1|
        = -\int_0^1 \nabla \cdot v\, dt` (no gradient), as a :class:`~flowsim.flows.base.Flow`'s."""
        self._check_input(x)
        context = self._check_context(context, len(x))
        x0 = self._solve(self._trajectory(context), (x,), 1.0, 0.0)[0]
        with torch.no_grad():
            return x0, self._log_det(x, None, context)[1]

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """The events :math:`x_1` of base points :math:`x_0` (the ODE forwards from 0 to 1)."""
        self._check_input(z)
        context = self._check_context(context, len(z))
        return self._solve(self._trajectory(context), (z,), 0.0, 1.0)[0]

    def _divergence(
        self, x: Tensor, t: float, probe: Tensor | None, context: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """:math:`v(x, t)` and :math:`\\nabla \\cdot v` (exact, or Hutchinson's with ``probe``)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            v = self.field(x, t, context)
            if probe is not None:
                (vjp,) = torch.autograd.grad(v, x, probe)
                return v.detach(), (vjp * probe).sum(dim=-1)
            div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for i in range(self.n_features):
                (row,) = torch.autograd.grad(v[:, i].sum(), x, retain_graph=i + 1 < self.n_features)
                div = div + row[:, i]
            return v.detach(), div

    def _log_det(
        self, x: Tensor, generator: torch.Generator | None = None, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        r""":math:`x_0` and :math:`-\int_0^1 \nabla \cdot v\, dt` along the trajectory of ``x``
        (one joint solve backwards; Hutchinson's probes drawn from ``generator``)."""
        probe = None
        if self.divergence == "hutchinson":
            probe = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1

        def field(t: float, state: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
            return self._divergence(state[0], t, probe, context)

        # d(integral)/dt = div, from t = 1 to 0: the integral is -∫_0^1 div dt
        x0, integral = self._solve(field, (x.detach(), x.new_zeros(x.shape[0])), 1.0, 0.0)
        return x0, integral

    def log_prob(
        self, x: Tensor, context: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""Log-density by the instantaneous change of variables (module docstring); Hutchinson's
        probes are drawn from ``generator``. Carries no gradient to the parameters: the flow
        trains on :func:`flow_matching_loss`."""
        self._check_input(x)
        x0, log_det = self._log_det(x, generator, self._check_context(context, len(x)))
        return standard_normal_log_prob(x0) + log_det

    def _sample(self, n: int, generator: torch.Generator | None, context: Tensor | None) -> Tensor:
        ref = self._reference()
        z = torch.randn(n, self.n_features, generator=generator, device=ref.device, dtype=ref.dtype)
        return self.inverse(z, context)

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}, solver={self.solver}, steps={self.steps}, divergence={self.divergence}"
