r"""Monotone rational-quadratic splines with identity tails (Durkan et al., 2019).

The spline maps :math:`[-B, B]` onto itself through :math:`K` bins with knots
:math:`(x_k, y_k)_{k=0}^{K}` and positive derivatives :math:`\delta_k` at the knots, and is the
identity outside. In bin :math:`k`, with :math:`w_k = x_{k+1} - x_k`, :math:`h_k = y_{k+1} - y_k`,
:math:`s_k = h_k / w_k` and :math:`\xi = (x - x_k) / w_k \in [0, 1]`,

.. math::
    y = y_k + \frac{h_k \left[s_k \xi^2 + \delta_k \xi (1 - \xi)\right]}
                   {s_k + (\delta_{k+1} + \delta_k - 2 s_k) \xi (1 - \xi)}, \qquad
    \frac{dy}{dx} = \frac{s_k^2 \left[\delta_{k+1} \xi^2 + 2 s_k \xi (1 - \xi)
                    + \delta_k (1 - \xi)^2\right]}
                   {\left[s_k + (\delta_{k+1} + \delta_k - 2 s_k) \xi (1 - \xi)\right]^2} .

The boundary derivatives are fixed, :math:`\delta_0 = \delta_K = 1`, so the spline joins the
identity tails with a continuous first derivative.

References:
    | Neural Spline Flows (Durkan et al., 2019)
    | https://arxiv.org/abs/1906.04032
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import check_float

__all__ = ["rational_quadratic_spline", "spline_knots"]


def _cumulative_knots(raw: Tensor, bound: float, minimum: float) -> Tensor:
    r"""Knots :math:`-B = z_0 < \dots < z_K = B`, shape :math:`(*, K+1)`, from raw bin sizes.

    Bin sizes are :math:`2B [m + (1 - K m)\,\mathrm{softmax}(\text{raw})_k]`, so each is at least
    :math:`2 B m` and they sum to :math:`2B`. The end knots are set exactly to avoid round-off.
    """
    K = raw.shape[-1]
    if minimum * K >= 1.0:
        raise ValueError(f"the minimum bin size {minimum} times {K} bins must be < 1")
    fractions = minimum + (1.0 - minimum * K) * torch.softmax(raw, dim=-1)
    inner = bound * (2.0 * torch.cumsum(fractions[..., :-1], dim=-1) - 1.0)
    ends = inner.new_full((*inner.shape[:-1], 1), bound)
    return torch.cat([-ends, inner, ends], dim=-1)


def spline_knots(
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    bound: float = 5.0,
    min_width: float = 1e-3,
    min_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Knot positions and derivatives from unconstrained parameters.

    The inner derivatives are :math:`\delta_k = \delta_\text{min} + \mathrm{softplus}(\text{raw}_k
    + c)` with :math:`c = \log(e^{1 - \delta_\text{min}} - 1)`, so that zero parameters give equal
    bins and unit derivatives: the identity map.

    Arguments:
        widths: Unnormalised bin widths, shape :math:`(*, K)`.
        heights: Unnormalised bin heights, shape :math:`(*, K)`.
        derivatives: Unconstrained inner derivatives, shape :math:`(*, K-1)`.
        bound: The half-width :math:`B` of the spline domain.
        min_width: The minimum bin width, as a fraction of :math:`2B`.
        min_height: The minimum bin height, as a fraction of :math:`2B`.
        min_derivative: The minimum derivative :math:`\delta_\text{min}`.

    Returns:
        The knots :math:`x_k` and :math:`y_k`, shape :math:`(*, K+1)`, and the derivatives
        :math:`\delta_k`, shape :math:`(*, K+1)`.
    """
    if not 0.0 < min_derivative < 1.0:
        raise ValueError(f"min_derivative must be in (0, 1), got {min_derivative!r}")
    if derivatives.shape[-1] != widths.shape[-1] - 1 or heights.shape[-1] != widths.shape[-1]:
        raise ValueError(
            "expected K widths, K heights and K-1 derivatives, got "
            f"{widths.shape[-1]}, {heights.shape[-1]} and {derivatives.shape[-1]}"
        )
    xk = _cumulative_knots(widths, bound, min_width)
    yk = _cumulative_knots(heights, bound, min_height)
    shift = math.log(math.expm1(1.0 - min_derivative))
    inner = min_derivative + F.softplus(derivatives + shift)
    ones = inner.new_ones((*inner.shape[:-1], 1))
    dk = torch.cat([ones, inner, ones], dim=-1)
    return xk, yk, dk


def _gather(t: Tensor, k: Tensor) -> Tensor:
    return t.gather(-1, k).squeeze(-1)


def rational_quadratic_spline(
    x: Tensor,
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    *,
    inverse: bool = False,
    bound: float = 5.0,
    min_width: float = 1e-3,
    min_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[Tensor, Tensor]:
    r"""Apply the monotone rational-quadratic spline or its inverse, element-wise.

    Forward: :math:`y = g(x)` by the formula of the module docstring, with
    :math:`\log |dy/dx|`. Inverse: :math:`x = g^{-1}(y)`, found by solving in the bin of
    :math:`y` the quadratic :math:`a \xi^2 + b \xi + c = 0` with :math:`\Delta = \delta_{k+1} +
    \delta_k - 2 s_k`,

    .. math::
        a = h_k (s_k - \delta_k) + (y - y_k) \Delta, \quad
        b = h_k \delta_k - (y - y_k) \Delta, \quad
        c = -s_k (y - y_k),

    whose root in :math:`[0, 1]` is :math:`\xi = 2c / (-b - \sqrt{b^2 - 4ac})
    = (-b + \sqrt{b^2 - 4ac}) / 2a`, evaluated in the first form when :math:`b \geq 0` and in
    the second when :math:`b < 0` so that no subtraction cancels; the log-derivative is then
    :math:`\log |dx/dy| = -\log |dy/dx|`. Points outside :math:`[-B, B]` are left unchanged with
    zero log-derivative.

    Arguments:
        x: The points (:math:`x` forward, :math:`y` inverse), shape :math:`(*)`.
        widths: Unnormalised bin widths, shape :math:`(*, K)`.
        heights: Unnormalised bin heights, shape :math:`(*, K)`.
        derivatives: Unconstrained inner derivatives, shape :math:`(*, K-1)`.
        inverse: Whether to apply :math:`g^{-1}` instead of :math:`g`.
        bound: The half-width :math:`B` of the spline domain.
        min_width: The minimum bin width, as a fraction of :math:`2B`.
        min_height: The minimum bin height, as a fraction of :math:`2B`.
        min_derivative: The minimum derivative at the inner knots.

    Returns:
        The mapped points, shape :math:`(*)`, and the log-absolute-derivative of the map that was
        applied, shape :math:`(*)`.

    Example:
        >>> x = torch.tensor([-6.0, 0.3, 2.0])
        >>> w, h, d = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 3)
        >>> y, ladj = rational_quadratic_spline(x, w, h, d)
        >>> z, _ = rational_quadratic_spline(y, w, h, d, inverse=True)
        >>> torch.allclose(z, x, atol=1e-5), y[0].item()
        (True, -6.0)
    """
    bound = check_float("bound", bound, low=0.0, low_open=True)
    xk, yk, dk = spline_knots(
        widths, heights, derivatives, bound, min_width, min_height, min_derivative
    )

    inside = (x >= -bound) & (x <= bound)
    # Evaluating on clamped points keeps the unused branch of torch.where finite (no NaN grads).
    z = x.clamp(-bound, bound)
    knots = yk if inverse else xk
    K = widths.shape[-1]
    k = torch.searchsorted(knots.contiguous(), z.unsqueeze(-1).contiguous(), right=True) - 1
    k = k.clamp(0, K - 1)

    x_k, y_k = _gather(xk, k), _gather(yk, k)
    w_k = _gather(xk, k + 1) - x_k
    h_k = _gather(yk, k + 1) - y_k
    d_k, d_k1 = _gather(dk, k), _gather(dk, k + 1)
    s_k = h_k / w_k
    delta = d_k1 + d_k - 2.0 * s_k

    if inverse:
        dy = z - y_k
        a = h_k * (s_k - d_k) + dy * delta
        b = h_k * d_k - dy * delta
        c = -s_k * dy
        sqrt_disc = (b.square() - 4.0 * a * c).clamp_min(0.0).sqrt()
        # The root in [0, 1] is 2c / (-b - sqrt) = (-b + sqrt) / 2a. Use the first form when
        # b >= 0 and the second when b < 0 (then a > 0, as c <= 0 and the root is >= 0), so that
        # the denominator never subtracts nearly equal numbers.
        positive = b >= 0.0
        numerator = torch.where(positive, 2.0 * c, -b + sqrt_disc)
        denominator = torch.where(positive, -b - sqrt_disc, 2.0 * a)
        xi = (numerator / denominator).clamp(0.0, 1.0)
    else:
        xi = (z - x_k) / w_k

    one_minus = 1.0 - xi
    denominator = s_k + delta * xi * one_minus
    if inverse:
        out = x_k + xi * w_k
    else:
        out = y_k + h_k * (s_k * xi.square() + d_k * xi * one_minus) / denominator
    numerator = s_k.square() * (
        d_k1 * xi.square() + 2.0 * s_k * xi * one_minus + d_k * one_minus.square()
    )
    log_dydx = numerator.log() - 2.0 * denominator.log()
    if inverse:
        log_dydx = -log_dydx

    out = torch.where(inside, out, x)
    ladj = torch.where(inside, log_dydx, torch.zeros_like(log_dydx))
    return out, ladj
