"""MADE degrees, masks and the autoregressive property of the residual MADE."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from flowsim.flows.made import MaskedLinear, ResidualMADE, hidden_degrees, input_degrees, made_mask


def test_degrees():
    assert input_degrees(4).tolist() == [1, 2, 3, 4]
    assert input_degrees(3, order=[2, 0, 1]).tolist() == [2, 3, 1]
    assert hidden_degrees(7, 4).tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert hidden_degrees(3, 1).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="order"):
        input_degrees(3, order=[0, 0, 1])


def test_masks_follow_degree_rules():
    m_in, m_h = torch.tensor([1, 2, 3]), torch.tensor([1, 2, 2, 1])
    hidden = made_mask(m_in, m_h, strict=False)
    out = made_mask(m_h, m_in, strict=True)
    assert hidden.shape == (4, 3) and out.shape == (3, 4)
    assert hidden.tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 0, 0]]
    assert out.tolist() == [[0, 0, 0, 0], [1, 0, 0, 1], [1, 1, 1, 1]]


def test_masked_linear_ignores_masked_weights():
    layer = MaskedLinear(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    x = torch.randn(5, 2)
    y = layer(x)
    x2 = x.clone()
    x2[:, 1] += 10.0
    torch.testing.assert_close(layer(x2)[:, 0], y[:, 0])
    assert "mask" in layer.state_dict()


@pytest.mark.parametrize("order", [None, [2, 0, 3, 1]])
@pytest.mark.parametrize("residual_blocks", [0, 2])
def test_jacobian_is_strictly_triangular_in_degree_order(order, residual_blocks):
    D, P = 4, 3
    made = ResidualMADE(
        D, P, hidden=10, residual_blocks=residual_blocks, activation="tanh", order=order
    )
    with torch.no_grad():  # make every allowed connection count
        for p in made.parameters():
            p.copy_(torch.randn_like(p))
    degrees = input_degrees(D, order)
    for x in torch.randn(3, D):
        J = jacobian(lambda v: made(v.unsqueeze(0))[0], x)  # (D, P, D)
        allowed = degrees[:, None] > degrees[None, :]  # output d may see input i
        dependence = J.abs().sum(dim=1) > 0
        assert not (dependence & ~allowed).any()
        # With random weights, every allowed connection is used (hidden width >= D - 1).
        assert (dependence == allowed).all()


def test_first_variable_parameters_are_constants():
    made = ResidualMADE(1, 2, hidden=4, residual_blocks=1)
    with torch.no_grad():
        made.last.bias.copy_(torch.tensor([0.5, -1.0]))
    out = made(torch.randn(6, 1))
    torch.testing.assert_close(out, torch.tensor([[0.5, -1.0]]).expand(6, 2).unsqueeze(1))


def test_fresh_made_outputs_are_small():
    made = ResidualMADE(5, 4, hidden=32, residual_blocks=2)
    assert made(torch.randn(100, 5)).abs().max() < 0.1


def test_made_rejects_bad_arguments():
    with pytest.raises(ValueError, match="hidden"):
        ResidualMADE(3, 2, hidden=0)
    with pytest.raises(ValueError, match="activation"):
        ResidualMADE(3, 2, activation="swish")
    with pytest.raises(ValueError, match="dropout"):
        ResidualMADE(3, 2, dropout=1.0)


@pytest.mark.parametrize("order", [None, [3, 0, 4, 1, 2]])
def test_invert_solves_the_autoregressive_system(order, device):
    """``invert`` with x_d = u_d − θ_d(x_<d) returns the x that satisfies all D equations at once."""
    made = ResidualMADE(5, n_params=2, hidden=12, residual_blocks=2, order=order).to(device)
    with torch.no_grad():
        for p in made.parameters():  # away from the small init, so θ depends on x everywhere
            p.normal_(0.0, 0.5)
    u = torch.randn(64, 5, device=device)
    x = made.invert(u, lambda d, theta: u[:, d] - theta[:, 0])
    assert torch.allclose(x + made(x)[..., 0], u, atol=1e-10)
