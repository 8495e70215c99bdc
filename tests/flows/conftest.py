"""Fixtures of the flow tests: float64 by default, seeded, one thread, tiny models."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import torch

from flowsim.flows import build_flow, hyperparameters

#: Small values for every hyperparameter a family may take; each family gets those it accepts, so
#: a family added to the registry is tested without editing the tests.
TINY: dict[str, Any] = {
    "blocks": 2,
    "hidden": 8,
    "residual_blocks": 1,
    "mixtures": 3,
    "bins": 5,
    "tail_bound": 3.0,
    "steps": 32,  # cfm's RK4 steps
}


@pytest.fixture(autouse=True)
def _float64_seeded_single_thread():
    # float64 makes the invariants testable at tight tolerances; one thread because the test
    # machine's cores are shared and the models are tiny.
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


@pytest.fixture
def device() -> torch.device:
    """The device under test, from ``FLOWSIM_TEST_DEVICE`` (default ``cpu``)."""
    return torch.device(os.environ.get("FLOWSIM_TEST_DEVICE", "cpu"))


def tiny_hyper(model: str, **override: Any) -> dict[str, Any]:
    valid = hyperparameters(model)
    hyper = {k: v for k, v in TINY.items() if k in valid}
    hyper.update({k: v for k, v in override.items() if k in valid})
    return hyper


def perturb_(flow: torch.nn.Module, scale: float = 0.3) -> torch.nn.Module:
    """Move every parameter and batch-norm statistic away from the (near-identity) init."""
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
        for name, b in flow.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(scale * torch.randn_like(b))
            elif name.endswith("running_var"):
                b.copy_(torch.exp(scale * torch.randn_like(b)))
    return flow


@pytest.fixture
def make_flow(device) -> Callable[..., torch.nn.Module]:
    """Factory ``make_flow(model, n_features, perturb=True, **override)`` of tiny eval flows."""

    def make(model: str, n_features: int, perturb: bool = True, **override: Any):
        flow = build_flow(model, n_features, **tiny_hyper(model, **override)).to(device)
        if perturb:
            perturb_(flow)
        return flow.eval()

    return make
