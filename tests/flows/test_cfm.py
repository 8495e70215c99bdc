"""The flow-matching family ``cfm``: its ODE solvers against closed forms, its loss against a
direct computation, Hutchinson's divergence against the exact one, and the training stage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowsim import io
from flowsim.data.scaling import load_scaler
from flowsim.flows import build_flow
from flowsim.flows.cfm import flow_matching_loss, integrate
from flowsim.runs import RunSpec
from flowsim.stages.flows import negative_log_likelihood, train_flow_model
from flowsim.training import TrainConfig, evaluate
from tests.flows.conftest import perturb_
from tests.flows.test_weighted_training import FEATURES, _write_splits


def rotation(t: float, state):
    """dx/dt = A x with A a rotation generator plus decay, and d(c)/dt = t²: closed forms."""
    x, c = state
    return torch.stack([-0.5 * x[:, 0] - 2.0 * x[:, 1], 2.0 * x[:, 0] - 0.5 * x[:, 1]], dim=1), torch.full_like(c, t**2)


def exact_rotation(x0: torch.Tensor, t: float) -> torch.Tensor:
    decay, angle = math.exp(-0.5 * t), 2.0 * t
    cos, sin = math.cos(angle), math.sin(angle)
    return decay * torch.stack([cos * x0[:, 0] - sin * x0[:, 1], sin * x0[:, 0] + cos * x0[:, 1]], dim=1)


@pytest.mark.parametrize("t0, t1", [(0.0, 1.0), (1.0, 0.0)])
def test_solvers_match_the_closed_form_in_both_directions(t0, t1):
    x = torch.tensor([[1.0, 0.5], [-2.0, 3.0]])
    start = (exact_rotation(x, t0), torch.zeros(2))
    want_x, want_c = exact_rotation(x, t1), torch.full((2,), (t1**3 - t0**3) / 3)
    x5, c5 = integrate(rotation, start, t0, t1, solver="dopri5", rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(x5, want_x, atol=1e-8, rtol=0)
    torch.testing.assert_close(c5, want_c, atol=1e-8, rtol=0)
    errors = [(integrate(rotation, start, t0, t1, steps=n)[0] - want_x).abs().max().item() for n in (8, 16, 32)]
    # fourth order: halving the step divides the error by 2⁴
    assert 12 < errors[0] / errors[1] < 20 and 12 < errors[1] / errors[2] < 20


def test_the_flow_matching_loss_is_the_regression_on_the_straight_path(make_flow):
    flow = make_flow("cfm", 3).eval()
    x1 = torch.randn(40, 3)
    w = torch.rand(40) * 2
    generator = torch.Generator().manual_seed(20221006)  # the validation draws' seed
    t = torch.rand(40, 1, generator=generator)
    x0 = torch.randn(40, 3, generator=generator)
    xt = (1 - (1 - flow.sigma_min) * t) * x0 + t * x1
    with torch.no_grad():
        per_event = ((flow.field(xt, t) - (x1 - (1 - flow.sigma_min) * x0)) ** 2).mean(dim=1)
        torch.testing.assert_close(flow_matching_loss(flow, (x1,)), per_event.mean())
        torch.testing.assert_close(flow_matching_loss(flow, (x1, w)), (w * per_event).mean())


def test_hutchinsons_divergence_is_unbiased(make_flow):
    exact = make_flow("cfm", 3, steps=6)
    noisy = make_flow("cfm", 3, steps=6, divergence="hutchinson", perturb=False)
    noisy.load_state_dict(exact.state_dict())
    x = torch.randn(4, 3)
    with torch.no_grad():
        want = exact.log_prob(x)
        draws = torch.stack([noisy.log_prob(x, generator=torch.Generator().manual_seed(k)) for k in range(256)])
    assert draws.std(dim=0).min() > 0  # an estimate, not the exact trace
    assert ((draws.mean(dim=0) - want).abs() < 4 * draws.std(dim=0) / 16).all()


def test_a_bayesian_cfm_is_refused():
    with pytest.raises(ValueError, match="bayesian: cfm trains on its own loss"):
        build_flow("cfm", 2, bayesian={})


def test_the_stage_trains_on_flow_matching_and_reports_the_nll(tmp_path):
    torch.set_default_dtype(torch.float32)
    paths = _write_splits(tmp_path, {})
    training = TrainConfig(batch_size=100, max_epochs=2, patience=2, device="cpu", seed=3)
    spec = RunSpec(name="c", model="cfm", params={"hidden": 16, "residual_blocks": 1, "steps": 8},
                   training=training, n_generated="1x")  # fmt: skip
    trained = train_flow_model(spec, **paths)
    flow = trained.flow.eval()
    x = torch.from_numpy(load_scaler(paths["scaler"]).transform(io.read_matrix(paths["val_events"], FEATURES)))
    signs = torch.tensor([-1.0, 1.0])
    # early stopping watched the flow-matching loss of the split and its mirror image ...
    stop = evaluate(flow, flow_matching_loss, (torch.cat([x, x * signs]),), 1024)
    assert trained.result.best_val_loss == pytest.approx(stop, rel=1e-5)
    # ... and the model's val_nll is the symmetric mixture's NLL, by the divergence
    with torch.no_grad():
        log_p = np.logaddexp(flow.log_prob(x).numpy(), flow.log_prob(x * signs).numpy()) - math.log(2)
    assert trained.val_nll == pytest.approx(-log_p.mean(), rel=1e-4)
    assert trained.val_nll != pytest.approx(trained.result.best_val_loss, rel=1e-2)
    assert evaluate(flow, negative_log_likelihood, (x,), 64) == pytest.approx(-flow.log_prob(x).mean().item(), rel=1e-5)


def test_perturbed_cfm_samples_are_reproducible(make_flow):
    flow = perturb_(make_flow("cfm", 2, perturb=False))
    a = flow.sample(50, generator=torch.Generator().manual_seed(9))
    b = flow.sample(50, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and torch.isfinite(a).all()
