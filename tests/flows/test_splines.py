"""Monotone rational-quadratic spline: inverse, derivative, monotonicity, tails."""

from __future__ import annotations

import pytest
import torch

from flowsim.flows.splines import rational_quadratic_spline, spline_knots

B, K = 3.0, 6


def params(n: int, scale: float = 2.0):
    return scale * torch.randn(n, K), scale * torch.randn(n, K), scale * torch.randn(n, K - 1)


def test_knots_respect_minimums_and_bounds():
    w, h, d = params(20, scale=10.0)
    xk, yk, dk = spline_knots(
        w, h, d, bound=B, min_width=1e-2, min_height=1e-2, min_derivative=1e-2
    )
    for knots in (xk, yk):
        torch.testing.assert_close(knots[:, 0], torch.full((20,), -B))
        torch.testing.assert_close(knots[:, -1], torch.full((20,), B))
        assert (knots.diff(dim=-1) >= 2 * B * 1e-2 * (1 - 1e-9)).all()
    assert (dk >= 1e-2).all() and (dk[:, [0, -1]] == 1).all()


def test_zero_parameters_give_identity():
    x = torch.linspace(-5, 5, 101)
    zeros = torch.zeros(101, K)
    y, ladj = rational_quadratic_spline(x, zeros, zeros, zeros[:, :-1], bound=B)
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(ladj, torch.zeros(101))


def test_round_trip_and_inverse_log_derivative():
    n = 500
    w, h, d = params(n)
    x = torch.empty(n).uniform_(-B - 2, B + 2)
    y, ladj = rational_quadratic_spline(x, w, h, d, bound=B)
    z, ladj_inv = rational_quadratic_spline(y, w, h, d, bound=B, inverse=True)
    torch.testing.assert_close(z, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(ladj_inv, -ladj)
    # and y -> x -> y for points drawn in the output space
    y = torch.empty(n).uniform_(-B - 2, B + 2)
    x, _ = rational_quadratic_spline(y, w, h, d, bound=B, inverse=True)
    y2, _ = rational_quadratic_spline(x, w, h, d, bound=B)
    torch.testing.assert_close(y2, y, atol=1e-10, rtol=0)


def test_log_derivative_matches_autograd():
    n = 300
    w, h, d = params(n)
    x = torch.empty(n).uniform_(-B - 1, B + 1).requires_grad_()
    y, ladj = rational_quadratic_spline(x, w, h, d, bound=B)
    (dydx,) = torch.autograd.grad(y.sum(), x)  # element-wise map: the gradient is the diagonal
    torch.testing.assert_close(ladj, dydx.log())
    # Inverse direction as well.
    yy = y.detach().requires_grad_()
    xx, ladj_inv = rational_quadratic_spline(yy, w, h, d, bound=B, inverse=True)
    (dxdy,) = torch.autograd.grad(xx.sum(), yy)
    torch.testing.assert_close(ladj_inv, dxdy.log())


def test_monotone_and_continuous_derivative_at_the_bounds():
    w, h, d = (t[:1].expand(2001, -1) for t in params(1, scale=3.0))
    x = torch.linspace(-B - 1, B + 1, 2001)
    y, ladj = rational_quadratic_spline(x, w, h, d, bound=B)
    assert (y.diff() > 0).all()
    # The derivative tends to 1 at +-B from inside: no kink where the identity tails start.
    eps = torch.tensor([-B + 1e-10, B - 1e-10])
    _, ladj_edge = rational_quadratic_spline(eps, w[:2], h[:2], d[:2], bound=B)
    torch.testing.assert_close(ladj_edge, torch.zeros(2), atol=1e-4, rtol=0)


def test_identity_outside_the_bound():
    w, h, d = params(4)
    x = torch.tensor([-B - 0.1, -100.0, B + 1e-6, 42.0])
    for inverse in (False, True):
        y, ladj = rational_quadratic_spline(x, w, h, d, bound=B, inverse=inverse)
        assert torch.equal(y, x) and torch.equal(ladj, torch.zeros(4))


def test_maps_the_interval_onto_itself():
    w, h, d = params(2)
    y, _ = rational_quadratic_spline(torch.tensor([-B, B]), w, h, d, bound=B)
    torch.testing.assert_close(y, torch.tensor([-B, B]))


def test_float32_round_trip_is_accurate():
    # In float32 the round trip is limited by the conditioning: where the spline is flat
    # (dy/dx << 1) a rounding error in y becomes an error / (dy/dx) in x. The error is checked
    # in those units, with parameters wild enough to reach derivatives of 1e-6.
    for scale in (1.0, 3.0):
        w, h, d = (t.float() for t in params(5000, scale=scale))
        x = torch.empty(5000, dtype=torch.float32).uniform_(-B, B)
        y, ladj = rational_quadratic_spline(x, w, h, d, bound=B)
        z, _ = rational_quadratic_spline(y, w, h, d, bound=B, inverse=True)
        assert ((z - x).abs() / (-ladj).exp().clamp_min(1.0)).max() < 2e-5


def test_bad_parameter_shapes_are_rejected():
    with pytest.raises(ValueError, match="K-1 derivatives"):
        zeros = torch.zeros(3, K)
        rational_quadratic_spline(torch.zeros(3), zeros, zeros, zeros)
    with pytest.raises(ValueError, match="minimum bin size"):
        spline_knots(torch.zeros(2000), torch.zeros(2000), torch.zeros(1999))
