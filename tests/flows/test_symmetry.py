"""Sign-flip symmetry: the mixture's density by numerical integration, its samples, the
augmentation, and model files that carry the symmetry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from flowsim.flows import build_flow
from flowsim.flows.persist import load_flow, save_flow
from flowsim.flows.symmetry import RandomSignFlip, SignFlipMixture, flip_signs
from flowsim.training import TrainConfig, train


def _lopsided_maf(seed: int = 0) -> torch.nn.Module:
    """A 2-D MAF whose density is far from symmetric in its first coordinate."""
    torch.manual_seed(seed)
    flow = build_flow("maf", 2, blocks=2, hidden=8, residual_blocks=1)
    x = torch.randn(4000, 2) * torch.tensor([0.5, 1.0]) + torch.tensor([1.5, 0.0])
    config = TrainConfig(max_epochs=15, patience=15, batch_size=200, lr=1e-2, seed=seed, device="cpu")
    train(flow, lambda m, b: -m(b[0]).mean(), (x[:3000],), (x[3000:],), config)
    return flow.eval()


@pytest.fixture(scope="module")
def lopsided() -> torch.nn.Module:
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _lopsided_maf()
    finally:
        torch.set_default_dtype(dtype)


def test_flip_signs_marks_the_flipped_features():
    assert flip_signs(4, [1, 3]).tolist() == [1.0, -1.0, 1.0, -1.0]
    assert flip_signs(2, []).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="outside 0..2"):
        flip_signs(3, [3])


def test_mixture_density_is_the_average_of_the_flow_and_its_mirror_image(lopsided):
    mixture = SignFlipMixture(lopsided, flip_signs(2, [0]))
    z = torch.randn(500, 2) * 2
    with torch.no_grad():
        p = lopsided(z).exp() + lopsided(z * torch.tensor([-1.0, 1.0])).exp()
        np.testing.assert_allclose(mixture.log_prob(z), torch.log(p / 2), rtol=1e-10)
        # invariant under the flip, and the flow itself is not
        mirrored = z * torch.tensor([-1.0, 1.0])
        np.testing.assert_allclose(mixture(mirrored), mixture(z), rtol=1e-10)
        assert (lopsided(mirrored) - lopsided(z)).abs().max() > 1.0


def test_mixture_density_integrates_to_one(lopsided):
    # trapezoidal integration on a grid that holds all but a negligible part of the mass
    u = torch.linspace(-7, 7, 561)
    grid = torch.cartesian_prod(u, u)
    with torch.no_grad():
        density = SignFlipMixture(lopsided, flip_signs(2, [0]))(grid).exp().reshape(len(u), len(u))
    integral = np.trapezoid(np.trapezoid(density.numpy(), u.numpy(), axis=1), u.numpy())
    assert integral == pytest.approx(1.0, abs=2e-3)


def test_mixture_samples_follow_the_mixture_density(lopsided):
    mixture = SignFlipMixture(lopsided, flip_signs(2, [0]))
    generator = torch.Generator().manual_seed(3)
    z = mixture.sample(40_000, generator=generator)
    # the first coordinate's marginal CDF by numerical integration of the density
    u = torch.linspace(-7, 7, 701)
    with torch.no_grad():
        density = mixture(torch.cartesian_prod(u, u)).exp().reshape(len(u), len(u)).numpy()
    marginal = np.trapezoid(density, u.numpy(), axis=1)
    cdf = np.concatenate([[0.0], np.cumsum((marginal[1:] + marginal[:-1]) / 2 * np.diff(u.numpy()))])
    result = stats.kstest(z[:, 0].numpy(), lambda t: np.interp(t, u.numpy(), cdf))
    assert result.pvalue > 1e-3
    # about half the events were flipped: the flow alone puts ~all of them at z0 > 0
    assert abs((z[:, 0] > 0).double().mean().item() - 0.5) < 4 * math.sqrt(0.25 / len(z))


def test_mixture_samples_are_seeded(lopsided):
    mixture = SignFlipMixture(lopsided, flip_signs(2, [0]))
    a = mixture.sample(100, generator=torch.Generator().manual_seed(1))
    b = mixture.sample(100, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_random_sign_flip_mirrors_about_half_the_events_and_nothing_else():
    augment = RandomSignFlip(flip_signs(3, [0, 2]))
    x, y = torch.randn(10_000, 3), torch.arange(10_000)
    out_x, out_y = augment([x, y], torch.Generator().manual_seed(0))
    flipped = (out_x[:, 0] == -x[:, 0]) & (out_x[:, 2] == -x[:, 2])
    kept = (out_x == x).all(dim=1)
    assert torch.equal(out_x[:, 1], x[:, 1]) and torch.equal(out_y, y)
    assert bool((flipped | kept).all())
    assert abs(flipped.double().mean().item() - 0.5) < 0.02
    again, _ = augment([x, y], torch.Generator().manual_seed(0))
    assert torch.equal(again, out_x)


def test_training_with_the_flip_learns_a_symmetric_flow():
    # data symmetric only jointly: (a, b) and (−a, −b), never (−a, b)
    torch.manual_seed(0)
    a = torch.randn(4000).abs() + 0.5
    x = torch.stack([a, a + 0.1 * torch.randn(4000)], dim=1)  # the training set: z > 0 only
    signs = flip_signs(2, [0, 1])
    flow = build_flow("maf", 2, blocks=2, hidden=16, residual_blocks=1)
    config = TrainConfig(max_epochs=20, patience=20, batch_size=200, lr=5e-3, seed=0, device="cpu")
    val = torch.cat([x[3000:], x[3000:] * signs])
    train(flow, lambda m, b: -m(b[0]).mean(), (x[:3000],), (val,), config, augment=RandomSignFlip(signs))
    flow.eval()
    with torch.no_grad():
        sample = flow.sample(4000, generator=torch.Generator().manual_seed(0))
    # the flow alone, not the mixture, put mass on both sides, and not across the diagonal
    assert 0.4 < (sample[:, 0] < 0).float().mean() < 0.6
    assert (sample[:, 0] * sample[:, 1] > 0).float().mean() > 0.9


def test_model_file_carries_the_symmetry(tmp_path, lopsided):
    path = tmp_path / "flow.pt"
    save_flow(path, lopsided, model="maf", params={"blocks": 2, "hidden": 8, "residual_blocks": 1},
              features=["eta", "pt"], sign_flip=["eta"])  # fmt: skip
    loaded, info = load_flow(path)
    assert isinstance(loaded, SignFlipMixture) and info["sign_flip"] == ["eta"]
    z = torch.randn(50, 2)
    with torch.no_grad():
        expected = SignFlipMixture(lopsided, flip_signs(2, [0]))(z)
        np.testing.assert_allclose(loaded(z), expected, rtol=1e-12)
    with pytest.raises(TypeError, match="inside the SignFlipMixture"):
        save_flow(path, loaded, model="maf", params={}, features=["eta", "pt"])
    with pytest.raises(ValueError, match=r"\['phi'\], which are not among the features"):
        save_flow(path, lopsided, model="maf", params={}, features=["eta", "pt"], sign_flip=["phi"])


def test_model_file_without_symmetry_loads_the_plain_flow(tmp_path, lopsided):
    save_flow(tmp_path / "flow.pt", lopsided, model="maf",
              params={"blocks": 2, "hidden": 8, "residual_blocks": 1}, features=["a", "b"])  # fmt: skip
    loaded, info = load_flow(tmp_path / "flow.pt")
    assert not isinstance(loaded, SignFlipMixture) and info["sign_flip"] == []
