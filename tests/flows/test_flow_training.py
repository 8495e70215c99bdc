"""Brief training on a 2-D Gaussian mixture: samples must match the target (seeded, fast)."""

from __future__ import annotations

import math

import pytest
import torch

from flowsim.flows import FLOWS

# Target: three correlated Gaussians, clearly non-Gaussian as a whole.
MEANS = torch.tensor([[-1.5, -1.0], [1.5, -0.5], [0.0, 1.5]], dtype=torch.float64)
CHOLESKY = torch.tensor(
    [[[0.5, 0.0], [0.3, 0.4]], [[0.4, 0.0], [-0.2, 0.5]], [[0.6, 0.0], [0.0, 0.3]]],
    dtype=torch.float64,
)
TRAIN = {
    "blocks": 4, "hidden": 32, "residual_blocks": 1, "mixtures": 6, "bins": 8, "tail_bound": 4.0
}  # fmt: skip
STEPS = 500
#: cfm regresses a velocity field over all times at once: in 500 steps a 32-wide net fits the
#: mixture 0.17 nats short of it, a 64-wide one with two blocks 0.03 nats
OVERRIDES = {"cfm": {"hidden": 64, "residual_blocks": 2}}


def target_sample(n: int, generator: torch.Generator) -> torch.Tensor:
    k = torch.randint(0, 3, (n,), generator=generator)
    eps = torch.randn(n, 2, 1, generator=generator, dtype=torch.float64)
    return MEANS[k] + (CHOLESKY[k] @ eps).squeeze(-1)


def target_log_prob(x: torch.Tensor) -> torch.Tensor:
    components = torch.distributions.MultivariateNormal(MEANS, scale_tril=CHOLESKY)
    return torch.logsumexp(components.log_prob(x.unsqueeze(1)), dim=1) - math.log(3.0)


def energy_test(x: torch.Tensor, y: torch.Tensor, permutations: int, generator) -> tuple:
    """Energy distance of two equal-size samples and its permutation p-value.

    With s = +1/n on x and -1/n on y and D the pooled distance matrix, the energy distance is
    -s^T D s, so all permutations cost one matrix product.
    """
    n = len(x)
    d = torch.cdist(torch.cat([x, y]), torch.cat([x, y]))
    s = torch.cat([torch.ones(n), -torch.ones(n)]) / n
    keys = torch.rand(2 * n, permutations, generator=generator)
    s_perm = s[keys.argsort(dim=0)]  # each column a random relabelling
    observed = -(s @ d @ s)
    null = -((d @ s_perm) * s_perm).sum(dim=0)
    return observed.item(), ((null >= observed).sum().item() + 1) / (permutations + 1)


@pytest.fixture(scope="module")
def data() -> torch.Tensor:
    return target_sample(4000, torch.Generator().manual_seed(0)).double()


@pytest.mark.parametrize("model", list(FLOWS))
def test_trained_samples_match_target(model, make_flow, data, device):
    flow = make_flow(model, 2, perturb=False, **{**TRAIN, **OVERRIDES.get(model, {})}).train()
    data = data.to(device)
    optimizer = torch.optim.Adam(flow.parameters(), lr=5e-3, foreach=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, STEPS)
    batches = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        batch = data[torch.randint(0, len(data), (256,), generator=batches)]
        # a family with a loss of its own (cfm: flow matching) trains on it, the others on the NLL
        loss = flow.training_loss((batch,)) if hasattr(flow, "training_loss") else -flow.log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    flow.eval()

    gen = torch.Generator().manual_seed(2)
    reference = target_sample(800, gen).double()
    # Likelihood: within 0.25 nats of the target's own (the entropy bound, estimated).
    with torch.no_grad():
        model_log_prob = flow.log_prob(reference.to(device)).cpu()
        gap = (target_log_prob(reference) - model_log_prob).mean().item()
    assert -0.05 < gap < 0.25, gap

    generated = flow.sample(800, generator=torch.Generator(device=device).manual_seed(3)).cpu()
    stat, p_value = energy_test(generated, reference, 300, gen)
    assert p_value > 0.01, (stat, p_value)
    # The samples carry the log-densities the model assigns to the data: E_q[log q] ~ E_p[log q].
    with torch.no_grad():
        on_samples = flow.log_prob(generated.to(device)).mean().item()
        on_data = flow.log_prob(reference.to(device)).mean().item()
    assert abs(on_samples - on_data) < 0.15, (on_samples, on_data)


def test_energy_test_has_power():
    gen = torch.Generator().manual_seed(4)
    reference = target_sample(800, gen).double()
    # Same first two moments as the target, wrong shape.
    cholesky = torch.linalg.cholesky(torch.cov(reference.T))
    gaussian = reference.mean(0) + torch.randn(800, 2, generator=gen).double() @ cholesky.T
    assert energy_test(gaussian, reference, 300, gen)[1] < 0.01
    assert energy_test(target_sample(800, gen).double(), reference, 300, gen)[1] > 0.01
