"""Conditional densities: every family's p(x | c) against independent computations (quadrature,
autograd Jacobians, sample moments), the conditional MADE, the context checks, the wrappers of
:mod:`flowsim.flows.conditional` and their model files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributions as dist
from scipy import stats
from torch.autograd.functional import jacobian

from flowsim.flows import FLOWS, build_flow
from flowsim.flows.base import standard_normal_log_prob
from flowsim.flows.conditional import (
    FeatureConditioned,
    FeatureConditionedMatching,
    FixedContext,
    condition_on_feature,
)
from flowsim.flows.made import ResidualMADE, hidden_degrees
from flowsim.flows.persist import load_flow, save_flow
from flowsim.flows.registry import PEERS
from tests.flows.conftest import perturb_
from tests.flows.test_flow_invariants import _grid as grid

FAMILIES = list(FLOWS)
C = 2  # context features of the conditional flows under test
#: the families with a bijection to a latent space (cfm: its ODE map; mafmademog: its MAF part)
BIJECTIVE = [m for m in FAMILIES if m not in PEERS and m != "mademog"]
#: cfm's log-det is its RK4-integrated divergence, the Jacobian that of its RK4 map (test_flow_invariants)
LOG_DET_TOLERANCE = {"cfm": {"atol": 1e-6, "rtol": 0.0}}


def contexts(device) -> torch.Tensor:
    """Three contexts of C = 2 features, shape (3, 2)."""
    return torch.tensor([[0.0, 0.0], [1.0, -0.5], [-0.5, 1.0]], device=device)


def build_or_skip(make_flow, model: str, D: int, **kw):
    try:
        return make_flow(model, D, **kw)
    except ValueError as err:  # coupling families need D >= 2
        pytest.skip(f"{model} does not support D={D}: {err}")


def smallest_flow(make_flow, model: str, **kw):
    """The family at D = 1, or D = 2 where it needs two features."""
    try:
        return make_flow(model, 1, **kw)
    except ValueError:
        return make_flow(model, 2, **kw)


def generator(device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


# --- 1. normalisation of p(x | c) at fixed contexts ----------------------------------------------

NORMALISATION = [pytest.param(m, 1, 4000, id=f"{m}-D1") for m in FAMILIES] + [
    pytest.param(m, 2, 300, id=f"{m}-D2") for m in ("rqs", "glow", "nsf_coupling", "mademog")
]


@pytest.mark.parametrize("model, D, n", NORMALISATION)
def test_conditional_density_integrates_to_one_at_each_context(model, D, n, make_flow, device):
    flow = build_or_skip(make_flow, model, D, context=C)
    x, w = grid(n, D, device)
    with torch.no_grad():
        log_ps = [flow.log_prob(x, c) for c in contexts(device)]
        # one context row per event is the same as one context for all
        rows = contexts(device)[1].expand(len(x), C).clone()
        torch.testing.assert_close(flow.log_prob(x, rows), log_ps[1])
    central = (x.abs() < 3).all(dim=-1)
    for a, b in ((0, 1), (0, 2), (1, 2)):  # the context matters
        assert (log_ps[a] - log_ps[b])[central].abs().max() > 1e-2, (a, b)
    for k, log_p in enumerate(log_ps):
        mass = (log_p.exp() * w).sum().item()
        assert mass == pytest.approx(1.0, abs=1e-2), (k, mass)


# --- 2. change of variables and inverse at a fixed context ---------------------------------------


def latent_maps(flow):
    """(transform, inverse, base log-density(z, context)) of the bijective part."""
    if hasattr(flow, "maf_transform"):  # MAFMADEMOG: its MAF part below a mixture head

        def head_log_prob(z, context):
            log_w, mu, sigma = flow.head.conditionals(z, context)
            mixture = dist.MixtureSameFamily(dist.Categorical(logits=log_w), dist.Normal(mu, sigma))
            return mixture.log_prob(z).sum(dim=-1)  # torch.distributions, not the model's formula

        return flow.maf_transform, flow.maf_inverse, head_log_prob
    return flow.transform, flow.inverse, lambda z, context: standard_normal_log_prob(z)


@pytest.mark.parametrize("model", BIJECTIVE)
def test_log_prob_is_the_change_of_variables_at_fixed_context(model, make_flow, device):
    D = 3
    flow = make_flow(model, D, context=C, steps=64)  # cfm: RK4 errors 1/16 of those at 32 steps
    transform, _, base_log_prob = latent_maps(flow)
    x = 1.5 * torch.randn(5, D, device=device)
    x[0, 0] = 3.7  # beyond the spline tail bound
    rows = torch.randn(5, C, device=device)  # one context per event
    log_p = flow.log_prob(x, rows)
    u, ladj = transform(x, rows)
    for i in range(len(x)):
        J = jacobian(lambda v, c=rows[i]: transform(v.unsqueeze(0), c)[0].squeeze(0), x[i])
        sign, logabsdet = torch.linalg.slogdet(J)
        assert sign != 0
        tolerance = LOG_DET_TOLERANCE.get(model, {})
        torch.testing.assert_close(ladj[i], logabsdet, **tolerance)
        expected = base_log_prob(u[i : i + 1], rows[i]) + logabsdet
        torch.testing.assert_close(log_p[i : i + 1], expected, **tolerance)
    # the transform at one event's context differs from that at another's
    assert (transform(x, rows[0])[0] - transform(x, rows[1])[0]).abs().max() > 1e-3


@pytest.mark.parametrize("model", BIJECTIVE)
def test_inverse_round_trips_at_fixed_context(model, make_flow, device):
    D = 3
    flow = make_flow(model, D, context=C)
    transform, inverse, _ = latent_maps(flow)
    x = 2.0 * torch.randn(40, D, device=device)
    rows = torch.randn(40, C, device=device)
    with torch.no_grad():
        torch.testing.assert_close(inverse(transform(x, rows)[0], rows), x, atol=1e-4, rtol=0)
        c = contexts(device)[2]
        torch.testing.assert_close(transform(inverse(x, c), c)[0], x, atol=1e-4, rtol=0)
        # the inverse at another context is not the inverse
        assert (inverse(transform(x, c)[0], contexts(device)[1]) - x).abs().max() > 1e-3


# --- 3. the conditional MADE -----------------------------------------------------------------------


@pytest.mark.parametrize("order", [None, [2, 0, 3, 1]])
def test_conditional_made_is_autoregressive_and_sees_the_context_everywhere(order, device):
    D, P = 4, 2
    made = perturb_(ResidualMADE(D, P, hidden=12, residual_blocks=2, order=order, context=C)).to(device)
    degrees = made.degrees.tolist()
    for _ in range(3):
        x, c = torch.randn(D, device=device), torch.randn(C, device=device)
        J_x = jacobian(lambda v, c=c: made(v.unsqueeze(0), c.unsqueeze(0)).squeeze(0), x)  # (D, P, D)
        J_c = jacobian(lambda v, x=x: made(x.unsqueeze(0), v.unsqueeze(0)).squeeze(0), c)  # (D, P, C)
        for d in range(D):
            for i in range(D):
                if degrees[i] >= degrees[d]:
                    assert J_x[d, :, i].abs().max() == 0, (d, i)
                else:  # perturbed weights connect every allowed pair
                    assert J_x[d, :, i].abs().max() > 0, (d, i)
            # every output sees the context, the first variable's too
            assert J_c[d].abs().max() > 1e-6, d


def test_conditional_made_inverts_with_its_context(device):
    D = 3
    made = perturb_(ResidualMADE(D, 1, hidden=9, residual_blocks=1, order=[1, 2, 0], context=C)).to(device)
    u, c = torch.randn(20, D, device=device), torch.randn(20, C, device=device)
    # x_d = u_d + theta_d(x_<d, c), solved one dimension at a time; check it against one full pass
    with torch.no_grad():
        x = made.invert(u, lambda d, theta: u[:, d] + theta[:, 0], c)
        torch.testing.assert_close(x, u + made(x, c)[..., 0])
        assert (made.invert(u, lambda d, theta: u[:, d] + theta[:, 0], c.flip(0)) - x).abs().max() > 1e-3


def test_hidden_degrees_without_a_context_are_unchanged():
    assert hidden_degrees(7, 4).tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert hidden_degrees(3, 1).tolist() == [1, 1, 1]
    assert hidden_degrees(7, 4, conditional=True).tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert ResidualMADE(4, 2, hidden=7).hidden_degrees.tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert ResidualMADE(4, 2, hidden=7, context=1).hidden_degrees.tolist() == [0, 1, 2, 3, 0, 1, 2]
    # without a context the first variable's parameters are the output bias
    made = perturb_(ResidualMADE(3, 2, hidden=8, residual_blocks=1))
    out = made(torch.randn(6, 3))
    torch.testing.assert_close(out[:, 0], made.last.bias[:2].expand(6, 2))
    assert "context" not in repr(made) and "context=1" in repr(ResidualMADE(3, 2, hidden=8, context=1))


# --- 4. context checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", FAMILIES)
def test_context_mismatches_are_refused(model, make_flow, device):
    plain = smallest_flow(make_flow, model)
    D = plain.n_features
    x = torch.randn(4, D, device=device)
    with pytest.raises(ValueError, match=r"unconditional \(context = 0\)"):
        plain.log_prob(x, torch.zeros(4, C, device=device))
    with pytest.raises(ValueError, match=r"unconditional \(context = 0\)"):
        plain.sample(3, context=torch.zeros(C, device=device))

    conditional = smallest_flow(make_flow, model, context=C)
    with pytest.raises(ValueError, match=rf"conditional on {C} context feature\(s\): give a context"):
        conditional.log_prob(x)
    with pytest.raises(ValueError, match=rf"conditional on {C} context feature\(s\): give a context"):
        conditional.sample(3)
    for bad in [(4, C + 1), (5, C), (C + 1,), (4, C, 1)]:
        expected = rf"expected a context of shape \(4, {C}\), got \({', '.join(map(str, bad))},?\)"
        with pytest.raises(ValueError, match=expected):
            conditional.log_prob(x, torch.zeros(bad, device=device))
    with pytest.raises(ValueError, match=rf"expected a context of shape \(3, {C}\), got \(4, {C}\)"):
        conditional.sample(3, context=torch.zeros(4, C, device=device))


# --- 5. sampling at a context ------------------------------------------------------------------------


@pytest.mark.parametrize("model", FAMILIES)
def test_conditional_sampling_is_reproducible(model, make_flow, device):
    flow = smallest_flow(make_flow, model, context=C)
    D = flow.n_features
    c = contexts(device)[1]
    a = flow.sample(50, generator(device, 7), context=c)
    assert a.shape == (50, D) and torch.isfinite(a).all()
    torch.testing.assert_close(flow.sample(50, generator(device, 7), context=c), a, rtol=0, atol=0)
    # one context for all is one context row per event
    torch.testing.assert_close(flow.sample(50, generator(device, 7), context=c.expand(50, C)), a)
    assert not torch.equal(flow.sample(50, generator(device, 8), context=c), a)
    assert (flow.sample(50, generator(device, 7), context=contexts(device)[2]) - a).abs().max() > 1e-3
    assert flow.sample(0, context=c).shape == (0, D)


def first_feature_cdf(p: torch.Tensor, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """From the normalised cell masses ``p`` of :func:`grid`: the right edges of the cells of
    the first feature and its CDF there (exact up to the quadrature, unlike a CDF at midpoints)."""
    t = torch.arange(1, n + 1, device=device) / n * 2.0 - 1.0
    edges = t / (1.0 - t**2)  # the last edge, t = 1, is +inf
    return edges, p.reshape(n, -1).sum(dim=1).cumsum(0)  # cartesian_prod: the first feature varies slowest


@pytest.mark.parametrize("model", FAMILIES)
def test_samples_follow_the_conditional_density(model, make_flow, device):
    """Per-event contexts alternating between two values: each half's mean and the fraction
    below its median against the quadrature of p(x | c)."""
    flow = smallest_flow(make_flow, model, context=C)
    D = flow.n_features
    c = torch.tensor([[1.5, -1.0], [-1.0, 1.5]], device=device)
    m = 4000 if D == 1 else 200
    x, w = grid(m, D, device)
    n = 20_000
    s = flow.sample(n, generator(device, 3), context=c.repeat(n // 2, 1))  # rows c0, c1, c0, ...
    assert s.shape == (n, D) and torch.isfinite(s).all()
    se_p = math.sqrt(0.25 / (n // 2))
    moments, cdfs = [], []
    for k in range(2):
        with torch.no_grad():
            p = flow.log_prob(x, c[k]).exp() * w
        p = p / p.sum()
        mean = (p[:, None] * x).sum(dim=0)
        se = (p[:, None] * (x - mean) ** 2).sum(dim=0).sqrt() / math.sqrt(n // 2)
        moments.append((mean, se))
        cdfs.append(first_feature_cdf(p, m, device))
    for k in range(2):
        half, (mean, se) = s[k::2], moments[k]
        assert ((half.mean(dim=0) - mean).abs() < 5 * se + 1e-3).all(), (k, half.mean(dim=0), mean, se)
        # the fraction below the cell edge closest to the median of the first feature
        edges, cdf = cdfs[k]
        i = int(torch.searchsorted(cdf, torch.tensor([0.5], dtype=cdf.dtype, device=device)))
        below = (half[:, 0] < edges[i]).double().mean().item()
        assert abs(below - cdf[i].item()) < 5 * se_p + 1e-3, (k, below, cdf[i].item())
        # the other context's distribution misses one of these by twice the tolerance: the checks
        # tell the contexts apart
        gap_mean = ((moments[1 - k][0] - mean).abs() / (5 * se + 1e-3)).max().item()
        gap_below = abs(cdfs[1 - k][1][i].item() - cdf[i].item()) / (5 * se_p + 1e-3)
        assert max(gap_mean, gap_below) > 2, (gap_mean, gap_below)


# --- 6. FixedContext ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["rqs", "mademog", "cfm", "zuko_maf"])
def test_fixed_context_is_the_model_at_that_context(model, make_flow, device):
    flow = make_flow(model, 2, context=C)
    c = contexts(device)[2]
    fixed = FixedContext(flow, c)
    assert fixed.context == 0 and fixed.n_features == 2
    x = torch.randn(7, 2, device=device)
    with torch.no_grad():
        torch.testing.assert_close(fixed.log_prob(x), flow.log_prob(x, c), rtol=0, atol=0)
        torch.testing.assert_close(fixed(x), flow.log_prob(x, c), rtol=0, atol=0)
    a = fixed.sample(30, generator(device, 4))
    torch.testing.assert_close(a, flow.sample(30, generator(device, 4), context=c), rtol=0, atol=0)
    # one context row per event
    rows = torch.randn(7, C, device=device)
    per_event = FixedContext(flow, rows)
    with torch.no_grad():
        torch.testing.assert_close(per_event.log_prob(x), flow.log_prob(x, rows), rtol=0, atol=0)
    b = per_event.sample(7, generator(device, 4))
    torch.testing.assert_close(b, flow.sample(7, generator(device, 4), context=rows), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"context"):  # as many events as context rows
        per_event.sample(5)
    # a second context is refused
    with pytest.raises(ValueError, match=r"unconditional \(context = 0\)"):
        fixed.log_prob(x, c)
    with pytest.raises(ValueError, match=r"unconditional \(context = 0\)"):
        fixed.sample(3, context=c)


def test_fixed_context_refuses_unconditional_models_and_misshapen_contexts(make_flow):
    with pytest.raises(ValueError, match="unconditional: there is no context to fix"):
        FixedContext(make_flow("rqs", 2), torch.zeros(1))
    flow = make_flow("maf", 2, context=C)
    for bad in [(C + 1,), (4, C + 1), (2, 3, C), ()]:
        with pytest.raises(ValueError, match=rf"shape \({C},\) or \(N, {C}\), got"):
            FixedContext(flow, torch.zeros(bad))


def test_fixed_context_forwards_the_training_loss(make_flow):
    flow = make_flow("cfm", 2, context=C, steps=4).train()
    c = contexts("cpu")[1]
    x, w = torch.randn(16, 2), torch.rand(16)
    for batch in [(x,), (x, w)]:
        torch.manual_seed(11)
        got = FixedContext(flow, c).training_loss(batch)
        torch.manual_seed(11)
        torch.testing.assert_close(got, flow.training_loss(batch, c.expand(16, C)))
    # at another context the loss differs
    torch.manual_seed(11)
    other = FixedContext(flow, contexts("cpu")[2]).training_loss((x,))
    assert abs(other.item() - got.item()) > 0


# --- 7. FeatureConditioned ----------------------------------------------------------------------------


def feature_conditioned(make_flow, D: int, index: int, conditional: str, **kw) -> FeatureConditioned:
    marginal = perturb_(build_flow("rqs", 1, bins=8, blocks=2, hidden=8, residual_blocks=1, tail_bound=3.0)).eval()
    part = make_flow(conditional, D - 1, context=1, **kw)
    return condition_on_feature(D, index, marginal, part).eval()


@pytest.mark.parametrize("conditional", ["rqs", "maf", "cfm"])
@pytest.mark.parametrize("index", [0, 1])
def test_feature_conditioned_joint_is_normalised_with_the_given_marginal(conditional, index, make_flow, device):
    model = feature_conditioned(make_flow, 2, index, conditional, steps=8).to(device)
    n = 300
    x, w = grid(n, 2, device)
    with torch.no_grad():
        joint = model.log_prob(x).exp()
    assert (joint * w).sum().item() == pytest.approx(1.0, abs=1e-2)
    # the marginal in x_j, integrating the other feature out numerically
    t, w1 = grid(n, 1, device)
    p = (joint * w).reshape(n, n)  # cartesian_prod: x[:, 0] varies slowest
    numeric = (p.sum(dim=1) if index == 0 else p.sum(dim=0)) / w1
    with torch.no_grad():
        exact = model.marginal.log_prob(t).exp()
    assert ((numeric - exact).abs() * w1).sum().item() < 1e-2
    # the conditional part really depends on x_j
    with torch.no_grad():
        rest = torch.zeros(5, 1, device=device)
        lo, hi = model.conditional.log_prob(rest, -torch.ones(5, 1)), model.conditional.log_prob(rest, torch.ones(5, 1))
    assert (lo - hi).abs().max() > 1e-3


@pytest.mark.parametrize("index", [0, 1, 2])
def test_feature_conditioned_log_prob_and_samples_put_the_feature_in_its_place(index, make_flow, device):
    D = 3
    model = feature_conditioned(make_flow, D, index, "maf").to(device)
    rest = [i for i in range(D) if i != index]
    x = torch.randn(9, D, device=device)
    with torch.no_grad():
        x_j, x_rest = x[:, index : index + 1], x[:, rest]
        want = model.marginal.log_prob(x_j) + model.conditional.log_prob(x_rest, x_j)
        torch.testing.assert_close(model.log_prob(x), want)
    n = 20_000
    s = model.sample(n, generator(device, 5))
    assert s.shape == (n, D) and torch.isfinite(s).all()
    # x_j from the marginal first, then the rest from the conditional at x_j
    g = generator(device, 5)
    x_j = model.marginal.sample(n, g)
    torch.testing.assert_close(s[:, index : index + 1], x_j, rtol=0, atol=0)
    torch.testing.assert_close(s[:, rest], model.conditional.sample(n, g, context=x_j), rtol=0, atol=0)
    # the j-th column follows the marginal: KS test against its CDF by quadrature
    t, w = grid(4000, 1, device)
    with torch.no_grad():
        p = model.marginal.log_prob(t).exp() * w
    cdf = (p.cumsum(0) / p.sum()).cpu().numpy()
    grid_x = t[:, 0].cpu().numpy()
    result = stats.kstest(s[:, index].cpu().numpy(), lambda v: np.interp(v, grid_x, cdf, left=0.0, right=1.0))
    assert result.pvalue > 1e-3, result
    # ... and not like the other columns, which do not follow it
    other = stats.kstest(s[:, rest[0]].cpu().numpy(), lambda v: np.interp(v, grid_x, cdf, left=0.0, right=1.0))
    assert other.pvalue < 1e-6, other


def test_condition_on_feature_picks_the_class_with_a_training_loss(make_flow):
    plain = feature_conditioned(make_flow, 3, 1, "rqs")
    assert type(plain) is FeatureConditioned and not hasattr(plain, "training_loss")
    matching = feature_conditioned(make_flow, 3, 1, "cfm", steps=4).train()
    assert isinstance(matching, FeatureConditionedMatching)
    x, w = torch.randn(32, 3), torch.rand(32) * 2
    x_j, rest = x[:, 1:2], x[:, [0, 2]]
    for batch, weights in [((x,), None), ((x, w), w)]:
        torch.manual_seed(21)
        got = matching.training_loss(batch)
        torch.manual_seed(21)
        nll = -matching.marginal.log_prob(x_j)
        nll = nll if weights is None else weights * nll
        extra = () if weights is None else (weights,)
        want = nll.mean() + matching.conditional.training_loss((rest, *extra), x_j)
        torch.testing.assert_close(got, want)
    got.backward()  # both parts train
    assert all(p.grad is not None for p in matching.parameters())


def test_feature_conditioned_refuses_mismatched_parts(make_flow):
    marginal = make_flow("rqs", 1)
    with pytest.raises(ValueError, match="index 3 outside 0..2"):
        FeatureConditioned(3, 3, marginal, make_flow("maf", 2, context=1))
    with pytest.raises(ValueError, match="marginal must be an unconditional density of one feature"):
        FeatureConditioned(3, 0, make_flow("rqs", 1, context=1), make_flow("maf", 2, context=1))
    with pytest.raises(ValueError, match="density of 2 features with a context of 1"):
        FeatureConditioned(3, 0, marginal, make_flow("maf", 2))
    with pytest.raises(ValueError, match="density of 2 features with a context of 1"):
        FeatureConditioned(3, 0, marginal, make_flow("maf", 3, context=1))
    model = FeatureConditioned(3, 0, marginal, make_flow("maf", 2, context=1))
    with pytest.raises(ValueError, match=r"unconditional \(context = 0\)"):
        model.log_prob(torch.randn(4, 3), torch.zeros(4, 1))


# --- 8. model files -------------------------------------------------------------------------------------

PARAMS = {"blocks": 2, "hidden": 8, "residual_blocks": 1, "bins": 5}


def test_label_conditioned_file_loads_at_each_label(tmp_path):
    params = {**PARAMS, "context": 1}
    flow = perturb_(build_flow("rqs", 2, **params)).eval()
    path = tmp_path / "label.pt"
    save_flow(path, flow, model="rqs", params=params, features=["a", "b"], condition={"given": "label"})
    x = torch.randn(8, 2)
    with torch.no_grad():
        at = {label: flow.log_prob(x, torch.tensor([value])) for label, value in (("background", 0.0), ("signal", 1.0))}
    assert (at["background"] - at["signal"]).abs().max() > 1e-3
    for label, want_label in [(None, "background"), ("background", "background"), ("signal", "signal")]:
        loaded, info = load_flow(path, label=label)
        assert isinstance(loaded, FixedContext) and not loaded.training
        assert info["condition"] == {"given": "label"}
        with torch.no_grad():
            torch.testing.assert_close(loaded.log_prob(x), at[want_label])
    with pytest.raises(ValueError, match="label must be one of background, signal"):
        load_flow(path, label="both")


def test_a_label_is_refused_for_an_unconditional_file(tmp_path):
    path = tmp_path / "plain.pt"
    save_flow(path, build_flow("rqs", 2, **PARAMS), model="rqs", params=PARAMS, features=["a", "b"])
    loaded, info = load_flow(path)
    assert info["condition"] is None and not isinstance(loaded, FixedContext)
    with pytest.raises(ValueError, match="not conditioned on the label"):
        load_flow(path, label="signal")


@pytest.mark.parametrize("conditional", ["maf", "cfm"])
def test_feature_conditioned_file_round_trips(conditional, tmp_path):
    marginal_params = {"blocks": 2, "hidden": 8, "residual_blocks": 1, "bins": 6}
    params = {
        "hidden": 8,
        "residual_blocks": 1,
        "context": 1,
        **({"steps": 4} if conditional == "cfm" else {"blocks": 2}),
    }
    model = condition_on_feature(
        3, 1, perturb_(build_flow("rqs", 1, **marginal_params)), perturb_(build_flow(conditional, 2, **params))
    ).eval()
    condition = {"given": "b", "marginal": {"model": "rqs", "params": marginal_params}}
    path = tmp_path / "fc.pt"
    save_flow(path, model, model=conditional, params=params, features=["a", "b", "c"], condition=condition)
    loaded, info = load_flow(path)
    assert type(loaded) is type(model) and loaded.index == 1 and info["condition"] == condition
    x = torch.randn(6, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x), rtol=0, atol=0)
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    torch.testing.assert_close(loaded.sample(5, g1), model.sample(5, g2), rtol=0, atol=0)
    with pytest.raises(ValueError, match="not conditioned on the label"):
        load_flow(path, label="signal")


def test_save_flow_refuses_a_condition_that_does_not_describe_the_flow(tmp_path):
    path = tmp_path / "bad.pt"
    features = ["a", "b", "c"]
    plain = build_flow("rqs", 3, **PARAMS)
    labelled = build_flow("rqs", 3, **PARAMS, context=1)
    wide = build_flow("rqs", 3, **PARAMS, context=2)
    marginal = {"model": "rqs", "params": PARAMS}
    model = condition_on_feature(3, 0, build_flow("rqs", 1, **PARAMS), build_flow("rqs", 2, **PARAMS, context=1))
    cases = [
        (plain, {}, {"given": "label"}, "a label-conditioned flow takes a context of one feature"),
        (wide, {"context": 2}, {"given": "label"}, "a label-conditioned flow takes a context of one feature"),
        (plain, {}, {"given": "a", "marginal": marginal}, "does not describe a RQS"),
        (labelled, {"context": 1}, {"given": "a", "marginal": marginal}, "does not describe a RQS"),
        (model, {"context": 1}, None, "does not describe a FeatureConditioned"),
        (model, {"context": 1}, {"given": "label"}, "does not describe a FeatureConditioned"),
        (model, {"context": 1}, {"given": "b", "marginal": marginal}, "on feature 'a', condition names 'b'"),
    ]
    for flow, extra, condition, message in cases:
        with pytest.raises(ValueError, match=message):
            save_flow(path, flow, model="rqs", params={**PARAMS, **extra}, features=features, condition=condition)
    assert not path.exists()
    with pytest.raises(TypeError, match="save the flow inside the FixedContext"):
        save_flow(path, FixedContext(labelled, torch.zeros(1)), model="rqs", params=PARAMS, features=features)
