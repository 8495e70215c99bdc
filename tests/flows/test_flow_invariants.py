"""Invariants every registered flow family must satisfy (parametrised over the registry)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributions as dist
from torch.autograd.functional import jacobian

from flowsim.flows import FLOWS, MADEMOG, hyperparameters
from flowsim.flows.base import standard_normal_log_prob
from flowsim.flows.registry import PEERS

VARIANTS = {
    "plain": {},
    "bn-lu": {"batch_norm": True, "permutation": "lu"},
    "random": {"permutation": "random"},
}
#: flowsim's own families; zuko's peers (tests/flows/test_peers.py) expose no bijection
FAMILIES = [model for model in FLOWS if model not in PEERS]
CASES = [
    pytest.param(model, variant, id=f"{model}-{name}")
    for model in FAMILIES
    for name, variant in VARIANTS.items()
    if all(key in hyperparameters(model) for key in variant)
]
MODELS = FAMILIES
TAIL = 3.0  # the tail bound of the tiny spline flows (conftest.TINY)
#: cfm's log-det is its divergence integrated by RK4, the Jacobian that of its RK4 map: both are
#: O(h⁴) from the exact flow's, 3e-7 apart at 32 steps (1e-8 at 64)
LOG_DET_TOLERANCE = {"cfm": {"atol": 1e-6, "rtol": 0.0}}


def mixture_log_prob(head: MADEMOG, z: torch.Tensor) -> torch.Tensor:
    """MADEMOG log-density through torch.distributions, independent of the model's formula."""
    log_w, mu, sigma = head.conditionals(z)
    mixture = dist.MixtureSameFamily(dist.Categorical(logits=log_w), dist.Normal(mu, sigma))
    return mixture.log_prob(z).sum(dim=-1)


def latent_maps(flow):
    """(transform, inverse, base log-density) of the bijective part, or None for a MADEMOG."""
    if isinstance(flow, MADEMOG):
        return None
    if hasattr(flow, "maf_transform"):
        return flow.maf_transform, flow.maf_inverse, lambda z: mixture_log_prob(flow.head, z)
    return flow.transform, flow.inverse, standard_normal_log_prob


def test_registry_families_expose_transforms():
    # A new family must either be a bijection to N(0, I) or be handled explicitly here.
    for model in FAMILIES:
        cls = FLOWS[model]
        has_pair = hasattr(cls, "transform") and hasattr(cls, "inverse")
        assert has_pair or cls.__name__ in ("MADEMOG", "MAFMADEMOG"), model


def points(n: int, D: int, device) -> torch.Tensor:
    """Events spread over the spline body and its tails (|x| > B for some)."""
    x = 2.0 * torch.randn(n, D, device=device)
    x[0] = TAIL + 1.5
    x[1] = -(TAIL + 2.0)
    x[2, 0] = TAIL + 0.5
    return x


@pytest.mark.parametrize("model, variant", CASES)
def test_log_prob_matches_autograd_jacobian(model, variant, make_flow, device):
    D = 3
    flow = make_flow(model, D, **variant)
    x = points(6, D, device)
    log_p = flow.log_prob(x)
    assert log_p.shape == (6,) and torch.isfinite(log_p).all()

    maps = latent_maps(flow)
    if maps is None:  # MADEMOG: compare against an independent mixture computation
        torch.testing.assert_close(log_p, mixture_log_prob(flow, x))
        return
    transform, _, base_log_prob = maps
    u, ladj = transform(x)
    for i in range(len(x)):
        J = jacobian(lambda v: transform(v.unsqueeze(0))[0].squeeze(0), x[i])
        sign, logabsdet = torch.linalg.slogdet(J)
        assert sign != 0
        torch.testing.assert_close(ladj[i], logabsdet, **LOG_DET_TOLERANCE.get(model, {}))
        expected = base_log_prob(u[i : i + 1])[0] + logabsdet
        torch.testing.assert_close(log_p[i], expected, **LOG_DET_TOLERANCE.get(model, {}))


@pytest.mark.parametrize("model", MODELS)
def test_mademog_conditionals_are_autoregressive(model, make_flow, device):
    flow = make_flow(model, 3)
    head = flow if isinstance(flow, MADEMOG) else getattr(flow, "head", None)
    if head is None:
        pytest.skip("no mixture head")
    x = torch.randn(4, 3, device=device)
    params = torch.stack(head.conditionals(x))
    for d in range(3):
        y = x.clone()
        y[:, d:] = torch.randn_like(y[:, d:])  # x_{>=d} must not change the d-th conditional
        torch.testing.assert_close(torch.stack(head.conditionals(y))[:, :, d], params[:, :, d])


@pytest.mark.parametrize("model, variant", CASES)
def test_inverse_round_trips(model, variant, make_flow, device):
    D = 3
    flow = make_flow(model, D, **variant)
    maps = latent_maps(flow)
    if maps is None:
        pytest.skip("MADEMOG has no bijection (log_prob and sample only)")
    transform, inverse, _ = maps
    x = points(50, D, device)
    u, _ = transform(x)
    torch.testing.assert_close(inverse(u), x, atol=1e-4, rtol=0)
    u = points(50, D, device)
    torch.testing.assert_close(transform(inverse(u))[0], u, atol=1e-4, rtol=0)


def _grid(n: int, D: int, device):
    """Midpoint grid of R^D through x = t / (1 - t^2), t in (-1, 1): points and weights."""
    t = (torch.arange(n, device=device) + 0.5) / n * 2.0 - 1.0
    x = t / (1.0 - t**2)
    w = (1.0 + t**2) / (1.0 - t**2) ** 2 * (2.0 / n)
    xs = torch.cartesian_prod(*[x] * D).reshape(-1, D)
    ws = torch.cartesian_prod(*[w] * D).reshape(-1, D).prod(dim=-1)
    return xs, ws


def _build_or_skip(make_flow, model, D, **kw):
    try:
        return make_flow(model, D, **kw)
    except ValueError as err:  # coupling families need D >= 2
        pytest.skip(f"{model} does not support D={D}: {err}")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("D, n", [(1, 4000), (2, 300)])
def test_density_integrates_to_one(model, D, n, make_flow, device):
    flow = _build_or_skip(make_flow, model, D)
    x, w = _grid(n, D, device)
    with torch.no_grad():
        mass = (flow.log_prob(x).exp() * w).sum().item()
    assert mass == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize("model", MODELS)
def test_samples_follow_own_density(model, make_flow, device):
    """Probabilities of a few boxes: sample frequencies vs quadrature of exp(log_prob)."""
    flow = make_flow(model, 2)
    x, w = _grid(300, 2, device)
    with torch.no_grad():
        p = flow.log_prob(x).exp() * w
    p = p / p.sum()
    n = 20_000
    generator = torch.Generator(device=device).manual_seed(1)
    s = flow.sample(n, generator=generator)
    assert s.shape == (n, 2) and torch.isfinite(s).all()
    for a in (-0.5, 0.0, 0.7):
        for box in ([0], [1], [0, 1]):
            expected = p[(x[:, box] < a).all(dim=-1)].sum().item()
            observed = (s[:, box] < a).all(dim=-1).double().mean().item()
            se = math.sqrt(max(expected * (1.0 - expected), 1e-4) / n)
            assert abs(observed - expected) < 5.0 * se + 2e-3, (a, box, observed, expected)


@pytest.mark.parametrize("model, variant", CASES)
def test_state_dict_round_trip(model, variant, make_flow, device, tmp_path):
    flow = make_flow(model, 3, **variant)
    path = tmp_path / "model.pt"
    torch.save(flow.state_dict(), path)
    torch.manual_seed(123)  # a fresh model with other random permutations / LU factors
    fresh = make_flow(model, 3, perturb=False, **variant)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    x = torch.randn(7, 3, device=device)
    torch.testing.assert_close(fresh.log_prob(x), flow.log_prob(x), rtol=0, atol=0)
    g1 = torch.Generator(device=device).manual_seed(5)
    g2 = torch.Generator(device=device).manual_seed(5)
    torch.testing.assert_close(fresh.sample(9, generator=g1), flow.sample(9, generator=g2))


@pytest.mark.parametrize("model", MODELS)
def test_gradients_reach_every_parameter(model, make_flow, device):
    flow = make_flow(model, 3, batch_norm=True).train()
    assert type(flow).__name__ in repr(flow) and "n_features=3" in repr(flow)
    x = torch.randn(16, 3, device=device)
    # the training loss: a family's own (cfm: flow matching), else the NLL
    (flow.training_loss((x,)) if hasattr(flow, "training_loss") else -flow.log_prob(x).mean()).backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("model", MODELS)
def test_float32_and_sampling_contract(model, make_flow, device):
    flow = make_flow(model, 3, batch_norm=True).float().train()
    x = torch.randn(5, 3, device=device, dtype=torch.float32)
    log_p = flow.log_prob(x)
    assert log_p.dtype == torch.float32 and torch.isfinite(log_p).all()
    s = flow.sample(11)
    assert s.shape == (11, 3) and s.dtype == torch.float32 and s.device.type == device.type
    assert not s.requires_grad
    assert flow.training, "sample() must restore the training flag"
    assert flow.sample(0).shape == (0, 3)
    g1 = torch.Generator(device=device).manual_seed(3)
    g2 = torch.Generator(device=device).manual_seed(3)
    torch.testing.assert_close(flow.sample(4, generator=g1), flow.sample(4, generator=g2))


@pytest.mark.parametrize("model", MODELS)
def test_bad_input_shape_is_rejected(model, make_flow):
    flow = make_flow(model, 3)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        flow.log_prob(torch.randn(4, 2))


@pytest.mark.parametrize("model", MODELS)
def test_fresh_flow_starts_near_its_base(model, make_flow, device):
    # Small last layers make a fresh flow a volume-preserving map (rotation/permutation) of the
    # base, and a fresh MADEMOG a unit-variance mixture: N(0, I) data score close to the base.
    flow = make_flow(model, 3, perturb=False, batch_norm=False)
    x = torch.randn(2000, 3, device=device)
    gap = (flow.log_prob(x) - standard_normal_log_prob(x)).mean().item()
    assert abs(gap) < 0.1
