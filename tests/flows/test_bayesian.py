"""Bayesian flows: variational layers, frozen draws, the ELBO, persistence and training."""

from __future__ import annotations

import contextlib
import doctest
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd.functional import jacobian
from torch.distributions import Normal, kl_divergence

import flowsim.flows.bayesian as bayesian
from flowsim.flows import build_flow
from flowsim.flows.base import standard_normal_log_prob
from flowsim.flows.bayesian import (
    MaskedVariationalLinear,
    VariationalLinear,
    bayesianize,
    elbo_loss,
    freeze_draw,
    frozen_draw,
    is_bayesian,
    mean_weights,
    unfreeze,
    variational_layers,
)
from flowsim.flows.made import MaskedLinear, input_degrees, made_mask
from flowsim.flows.persist import load_flow, save_flow
from flowsim.flows.registry import accepted_params
from flowsim.model_files import read_model_file
from flowsim.training import TrainConfig, evaluate, train
from tests.flows.conftest import perturb_, tiny_hyper

FAMILIES = ["maf", "rqs", "glow", "nsf_coupling"]
#: wide enough that two draws give visibly different flows, narrow enough that they stay tame
WIDE = {"prior_std": 0.8, "init_std": 0.05}


def bayesian_flow(model: str, device, D: int = 3, perturb: bool = True, **override) -> torch.nn.Module:
    flow = build_flow(model, D, **tiny_hyper(model, **override), bayesian=WIDE).to(device)
    if perturb:
        perturb_(flow, 0.3)  # moves the means and the rho (sigma = softplus(rho) stays > 0)
    return flow.eval()


def masked_layer(device, prior_std: float = 0.7) -> MaskedVariationalLinear:
    """A hidden-to-output MADE layer (strict mask: some rows have no weights) with random mu, rho."""
    mask = made_mask(torch.tensor([1, 2, 1, 2]), input_degrees(3).repeat_interleave(2), strict=True)
    layer = MaskedVariationalLinear(mask, prior_std=prior_std).to(device)
    with torch.no_grad():
        for p in (layer.weight_mu, layer.bias_mu):
            p.normal_()
        for p in (layer.weight_rho, layer.bias_rho):
            p.uniform_(-2.0, 0.5)
    return layer


def torch_kl(layer: VariationalLinear) -> torch.Tensor:
    """The layer's KL through torch.distributions, over the weights that act."""
    prior = Normal(torch.zeros_like(layer.weight_mu), layer.prior_std)
    kl_w = kl_divergence(Normal(layer.weight_mu, F.softplus(layer.weight_rho)), prior)
    if isinstance(layer, MaskedVariationalLinear):
        kl_w = kl_w[layer.mask.bool()]
    prior_b = Normal(torch.zeros_like(layer.bias_mu), layer.prior_std)
    return kl_w.sum() + kl_divergence(Normal(layer.bias_mu, F.softplus(layer.bias_rho)), prior_b).sum()


def twin(model: str, flow: torch.nn.Module, D: int = 3, **override) -> torch.nn.Module:
    """The deterministic flow of the same architecture whose weights are those ``flow``'s
    variational layers act with now (the draw or the means): flowsim's own nn.Linear and
    MaskedLinear code, independent of the variational forward."""
    plain = build_flow(model, D, **tiny_hyper(model, **override)).to(next(flow.parameters()).device)
    state = {k: v for k, v in flow.state_dict().items() if not k.endswith(("_mu", "_rho"))}
    for name, layer in flow.named_modules():
        if isinstance(layer, VariationalLinear):
            state[f"{name}.weight"], state[f"{name}.bias"] = layer.weight.detach(), layer.bias.detach()
    plain.load_state_dict(state)
    return plain.eval()


def test_module_docstring_examples():
    result = doctest.testmod(bayesian, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_kl_is_the_closed_form_over_unmasked_weights(device):
    layer = masked_layer(device)
    assert 0 < layer.mask.sum() < layer.mask.numel()  # some weights are masked
    torch.testing.assert_close(layer.kl(), torch_kl(layer))
    plain = VariationalLinear(4, 3, prior_std=2.0).to(device)
    torch.testing.assert_close(plain.kl(), torch_kl(plain))
    both = torch.nn.Sequential(layer, torch.nn.ReLU(), plain)
    torch.testing.assert_close(bayesian.kl_divergence(both), torch_kl(layer) + torch_kl(plain))


def test_kl_matches_a_monte_carlo_estimate_over_frozen_draws(device):
    """KL = E_q[log q(w) - log p(w)], with w the weights the layer acts with in frozen draws."""
    layer = masked_layer(device)
    on = layer.mask.bool()
    q_w = Normal(layer.weight_mu.detach()[on], layer.weight_sigma.detach()[on])
    q_b = Normal(layer.bias_mu.detach(), layer.bias_sigma.detach())
    p = Normal(0.0, layer.prior_std)
    generator = torch.Generator().manual_seed(0)
    terms = []
    for _ in range(2000):
        freeze_draw(layer, generator)
        w, b = layer.weight.detach()[on], layer.bias.detach()
        terms.append((q_w.log_prob(w) - p.log_prob(w)).sum() + (q_b.log_prob(b) - p.log_prob(b)).sum())
    unfreeze(layer)
    terms = torch.stack(terms)
    error = terms.std() / math.sqrt(len(terms))
    assert abs(terms.mean() - layer.kl().detach()) < 4.0 * error, (terms.mean(), layer.kl(), error)
    assert error < 0.05 * layer.kl().abs()  # the check has power


def test_training_forward_is_the_exact_local_reparameterisation(device):
    """One event repeated: each copy's outputs are N(mu x + b_mu, sigma^2 x^2 + sigma_b^2)."""
    layer = masked_layer(device).train()
    x = torch.randn(1, 4, device=device).expand(20_000, 4)
    with torch.no_grad():
        y = layer(x)
        mean = F.linear(x[:1], layer.weight_mu * layer.mask, layer.bias_mu)[0]
        var = F.linear(x[:1].square(), layer.weight_sigma.square() * layer.mask, layer.bias_sigma.square())[0]
    z = (y.mean(0) - mean) / (var / len(y)).sqrt()
    assert z.abs().max() < 5.0, z
    torch.testing.assert_close(y.var(0), var, rtol=0.1, atol=0.0)
    assert (y.std(0) > 0).all()  # every event got its own draw, including the bias-only rows


@pytest.mark.parametrize("model", FAMILIES)
def test_frozen_draw_log_prob_is_the_change_of_variables(model, device):
    flow = bayesian_flow(model, device)
    x = 1.5 * torch.randn(4, 3, device=device)
    with frozen_draw(flow, 11):
        log_p = flow.log_prob(x)
        u, ladj = flow.transform(x)
        for i in range(len(x)):
            J = jacobian(lambda v: flow.transform(v.unsqueeze(0))[0].squeeze(0), x[i])
            logabsdet = torch.linalg.slogdet(J)[1]
            torch.testing.assert_close(ladj[i], logabsdet)
            torch.testing.assert_close(log_p[i], standard_normal_log_prob(u[i]) + logabsdet)


@pytest.mark.parametrize("model", FAMILIES)
def test_a_frozen_draw_is_one_bijection_and_the_deterministic_flow_of_its_weights(model, device):
    flow = bayesian_flow(model, device)
    x = 1.5 * torch.randn(20, 3, device=device)
    with frozen_draw(flow, 5):
        plain = twin(model, flow)
        samples = flow.sample(50, generator=torch.Generator(device=device).manual_seed(1))
        u = torch.randn(50, 3, generator=torch.Generator(device=device).manual_seed(1), device=device)
        # sample -> density -> inverse, all with the draw's weights
        torch.testing.assert_close(flow.transform(samples)[0], u, atol=1e-6, rtol=0)
        torch.testing.assert_close(flow.inverse(flow.transform(x)[0]), x, atol=1e-6, rtol=0)
        torch.testing.assert_close(flow.log_prob(x), plain.log_prob(x))
        torch.testing.assert_close(samples, plain.sample(50, generator=torch.Generator(device=device).manual_seed(1)))
        latent = flow.transform(x)[0]
    with frozen_draw(flow, 6):  # another draw is another bijection: its inverse is not this one's
        assert (flow.inverse(latent) - x).abs().max() > 1e-3


@pytest.mark.parametrize("model", ["maf", "glow"])
def test_mean_mode_is_the_deterministic_flow_of_the_means(model, device):
    flow = bayesian_flow(model, device)
    plain = twin(model, flow)  # outside a draw, in eval mode: the means
    x = torch.randn(30, 3, device=device)
    torch.testing.assert_close(flow.log_prob(x), plain.log_prob(x))
    torch.testing.assert_close(flow.inverse(x), plain.inverse(x))
    flow.train()
    plain.train()
    with mean_weights(flow), frozen_draw(flow, 3):  # the means win over training mode and a draw
        torch.testing.assert_close(flow.log_prob(x), plain.log_prob(x))


def test_seeds_and_modes_select_the_weights(device):
    flow = bayesian_flow("rqs", device)
    layer = variational_layers(flow)[0]
    x = torch.randn(10, 3, device=device)
    mean = flow.log_prob(x)

    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        with frozen_draw(flow, seed):
            return layer.weight.detach().clone(), flow.log_prob(x)

    (w1, lp1), (w1_again, lp1_again), (w2, lp2) = draw(1), draw(1), draw(2)
    assert torch.equal(w1, w1_again) and torch.equal(lp1, lp1_again)
    assert not torch.equal(w1, w2) and (lp1 - lp2).abs().max() > 1e-3
    assert (lp1 - mean).abs().max() > 1e-3 and torch.equal(flow.log_prob(x), mean)  # restored
    assert torch.equal(layer.weight, layer.weight_mu)
    generator = torch.Generator(device=device).manual_seed(1)
    with frozen_draw(flow, generator):  # a generator on the device works too
        torch.testing.assert_close(flow.log_prob(flow.inverse(x)), flow.log_prob(flow.inverse(x)))
    flow.train()  # fresh draws every call, unless a draw is frozen
    assert (flow.log_prob(x) - flow.log_prob(x)).abs().max() > 1e-4
    with frozen_draw(flow, 1):
        torch.testing.assert_close(flow.log_prob(x), lp1)


@pytest.mark.parametrize("training", [False, True], ids=["frozen-draw", "training-draw"])
def test_masked_layers_keep_the_made_autoregressive(training, device):
    """d theta_d / d x_j = 0 for every j of degree >= m(d), in a frozen draw and in the local
    reparameterisation (one call, one draw)."""
    flow = bayesian_flow("maf", device, D=4)
    made = flow.transforms[0].made
    made.train(training)
    x = torch.randn(4, device=device)
    with contextlib.nullcontext() if training else frozen_draw(flow, 2):
        J = jacobian(lambda v: made(v.unsqueeze(0)).squeeze(0), x)  # (D, P, D)
    degrees = made.degrees
    for d in range(4):
        for j in range(4):
            if degrees[j] >= degrees[d]:
                assert J[d, :, j].abs().max() == 0, (d, j)
            else:
                assert J[d, :, j].abs().max() > 0, (d, j)  # the allowed inputs do act


def test_build_flow_options_and_errors():
    assert "bayesian" in accepted_params("rqs") and "bayesian" not in accepted_params("zuko_nsf")
    assert not is_bayesian(build_flow("maf", 3, blocks=1, hidden=8, bayesian=None))
    flow = build_flow("maf", 3, blocks=1, hidden=8, bayesian={"prior_std": 0.5})
    assert is_bayesian(flow) and {layer.prior_std for layer in variational_layers(flow)} == {0.5}
    sigma = variational_layers(flow)[0].weight_sigma
    torch.testing.assert_close(sigma, torch.full_like(sigma, 1e-3))  # the default init_std
    with pytest.raises(ValueError, match=r"bayesian\.prior_std must be a real number in \(0"):
        build_flow("maf", 3, bayesian={"prior_std": 0.0})
    with pytest.raises(ValueError, match=r"'prior' for bayesian; valid: prior_std, init_std"):
        build_flow("maf", 3, bayesian={"prior": 1.0})
    with pytest.raises(ValueError, match="bayesian must be a mapping"):
        build_flow("maf", 3, bayesian=True)
    with pytest.raises(ValueError, match="'bayesian' for flow 'zuko_maf'"):
        build_flow("zuko_maf", 3, bayesian={})
    with pytest.raises(ValueError, match="Bayesian already"):
        bayesianize(flow)
    with pytest.raises(TypeError, match="replaces a MaskedLinear"):
        MaskedVariationalLinear.from_linear(torch.nn.Linear(2, 2))
    mask = torch.ones(2, 2)
    with pytest.raises(TypeError, match="replaces an nn.Linear"):
        VariationalLinear.from_linear(MaskedLinear(mask))


def test_the_model_file_round_trips_a_bayesian_flow(tmp_path, device):
    params = {**tiny_hyper("rqs"), "bayesian": WIDE}
    flow = bayesian_flow("rqs", device)
    path = tmp_path / "m.pt"
    save_flow(path, flow, model="rqs", params=params, features=["a", "b", "c"])
    assert read_model_file(path)["params"]["bayesian"] == WIDE  # plain data, weights_only
    loaded, info = load_flow(path, device)
    assert is_bayesian(loaded) and not loaded.training and info["params"] == params
    original = flow.state_dict()
    assert {k: torch.equal(v, original[k]) for k, v in loaded.state_dict().items()} == dict.fromkeys(original, True)
    x = torch.randn(8, 3, device=device)
    torch.testing.assert_close(loaded.log_prob(x), flow.log_prob(x), rtol=0, atol=0)
    with frozen_draw(loaded, 4):
        a = loaded.sample(6, generator=torch.Generator(device=device).manual_seed(0))
    with frozen_draw(flow, 4):
        b = flow.sample(6, generator=torch.Generator(device=device).manual_seed(0))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # params that would rebuild another model are refused when saving
    with pytest.raises(ValueError, match="the flow is Bayesian but params lack"):
        save_flow(path, flow, model="rqs", params=tiny_hyper("rqs"), features=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"bayesian.prior_std = 1.0, the flow's layers have \[0.8\]"):
        save_flow(path, flow, model="rqs", params={**params, "bayesian": {}}, features=["a", "b", "c"])
    with pytest.raises(ValueError, match="the flow is not Bayesian but params give"):
        save_flow(path, build_flow("rqs", 3, **tiny_hyper("rqs")), model="rqs", params=params, features=["a", "b", "c"])


def _elbo_by_draws(flow: torch.nn.Module, x: torch.Tensor, n_train: int, draws: int = 16) -> float:
    """-ELBO per event from frozen draws and torch.distributions' KL, independent of the loss."""
    with torch.no_grad():
        nll = []
        for seed in range(draws):
            with frozen_draw(flow, 1000 + seed):
                nll.append(-flow.log_prob(x).mean())
        kl = sum(torch_kl(layer) for layer in variational_layers(flow))
        return float(torch.stack(nll).mean() + kl / n_train)


def test_a_short_training_lowers_the_elbo_and_keeps_finite_widths(device):
    generator = torch.Generator().manual_seed(0)
    cov = torch.tensor([[1.0, 0.8, 0.0], [0.8, 1.0, -0.5], [0.0, -0.5, 1.0]])
    x = (torch.randn(400, 3, generator=generator) @ torch.linalg.cholesky(cov).T).to(device)
    x_train, x_val = x[:300], x[300:]
    torch.manual_seed(0)
    flow = build_flow("maf", 3, blocks=2, hidden=16, residual_blocks=1, bayesian={"init_std": 0.01}).to(device)
    before = _elbo_by_draws(flow.eval(), x_train, len(x_train))
    config = TrainConfig(lr=1e-2, batch_size=50, max_epochs=3, patience=3, scheduler="constant", seed=0)
    loss = elbo_loss(len(x_train))
    result = train(flow, loss, (x_train,), (x_val,), config, name="bayes")
    after = _elbo_by_draws(flow, x_train, len(x_train))
    assert after < before - 0.5, (before, after)
    history = [row["train_loss"] for row in result.history]
    assert history[-1] < history[0], history
    for layer in variational_layers(flow):
        for sigma in (layer.weight_sigma, layer.bias_sigma):
            assert torch.isfinite(sigma).all() and (sigma > 0).all()
    # validation and the best epoch are the mean weights' NLL, not a draw's nor the ELBO
    with mean_weights(flow), torch.no_grad():
        nll = -flow.log_prob(x_val).mean().item()
    assert result.best_val_loss == pytest.approx(nll, rel=1e-9)
    assert evaluate(flow, loss, (x_val,), 64) == pytest.approx(nll, rel=1e-9)
    with pytest.raises(ValueError, match="n_train must be a positive"):
        elbo_loss(0)


def test_the_flow_stage_trains_a_bayesian_run_on_the_elbo(tmp_path):
    """train_flow_model: the ELBO in training (KL / N in the train loss), the mean weights' NLL
    in validation and in the returned val_nll."""
    from flowsim import io
    from flowsim.data.scaling import fit_scaler, load_scaler
    from flowsim.runs import RunSpec
    from flowsim.stages.flows import train_flow_model

    torch.set_default_dtype(torch.float32)  # the workflow's dtype (the fixture restores float64)
    rng = np.random.default_rng(0)
    features = ["a", "b", "c"]
    for split, n in (("train", 300), ("val", 100)):
        values = rng.multivariate_normal(np.zeros(3), [[1, 0.8, 0], [0.8, 1, -0.5], [0, -0.5, 1]], size=n)
        io.write_events(tmp_path / f"{split}.root", dict(zip(features, values.T)))
    train_x = io.read_matrix(tmp_path / "train.root", features)
    fit_scaler(train_x, features, "gauss_rank").save(tmp_path / "scaler.npz")
    params = {"blocks": 2, "hidden": 8, "residual_blocks": 1, "bayesian": {"prior_std": 1.0}}
    training = TrainConfig(batch_size=100, max_epochs=2, patience=2, device="cpu", seed=3)
    spec = RunSpec(name="bayes", model="maf", params=params, training=training, n_generated="1x")
    trained = train_flow_model(
        spec, train_events=tmp_path / "train.root", val_events=tmp_path / "val.root",
        scaler=tmp_path / "scaler.npz", checkpoint=tmp_path / "checkpoint.pt",
    )  # fmt: skip
    torch.manual_seed(3)
    kl_start = bayesian.kl_divergence(build_flow("maf", 3, **params)).item()
    first = trained.result.history[0]
    # ~6 nats per weight at init_std 1e-3: the KL / N term dwarfs any NLL difference
    assert first["train_loss"] - first["val_loss"] > 0.5 * kl_start / trained.n_train
    scaler = load_scaler(tmp_path / "scaler.npz")
    x_val = torch.from_numpy(scaler.transform(io.read_matrix(tmp_path / "val.root", features)))
    with torch.no_grad():
        nll = -trained.flow.eval().log_prob(x_val).mean().item()
    assert trained.val_nll == pytest.approx(nll, rel=1e-5)
    assert is_bayesian(trained.flow)
