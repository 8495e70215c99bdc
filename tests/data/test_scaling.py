"""Scalers: exact round trip, N(0,1) moments, sane tails, arrays-only files."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from flowsim.data.scaling import METHODS, fit_scaler, load_scaler

FEATURES = ("pt", "eta", "mass")


@pytest.fixture
def train() -> np.ndarray:
    rng = np.random.default_rng(0)
    n = 20_000
    pt = rng.exponential(1.0, n) + 0.2
    eta = rng.normal(0.0, 1.0, n)
    mass = np.round(rng.gamma(4.0, 0.25, n), 2)  # rounded: many ties
    return np.stack([pt, eta, mass], axis=1).astype(np.float32)


@pytest.mark.parametrize("method", METHODS)
def test_round_trip_on_training_data(train, method):
    scaler = fit_scaler(train, FEATURES, method)
    back = scaler.inverse(scaler.transform(train))
    np.testing.assert_allclose(back, train, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["gauss_rank", "logit"])
def test_training_data_become_standard_normal(train, method):
    z = scaler_z = fit_scaler(train, FEATURES, method).transform(train)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.02)
    if method == "gauss_rank":
        # mid-rank quantiles of N(0,1): unit variance up to the discreteness of ties
        np.testing.assert_allclose(z[:, :2].std(axis=0), 1.0, atol=0.01)
        assert stats.kstest(scaler_z[:, 0], "norm").statistic < 0.01
    else:
        np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)


def test_gauss_rank_has_the_sqrt2(train):
    # Φ⁻¹ of the empirical CDF: the median maps to 0 and the 84.13% quantile to +1
    z = fit_scaler(train, FEATURES, "gauss_rank").transform(train)[:, 1]
    assert np.quantile(z, stats.norm.cdf(1.0)) == pytest.approx(1.0, abs=0.02)


def test_gauss_rank_ties_map_to_one_value(train):
    z = fit_scaler(train, FEATURES, "gauss_rank").transform(train)[:, 2]
    for value in np.unique(train[:, 2])[:20]:
        assert len(np.unique(z[train[:, 2] == value])) == 1


def test_gauss_rank_is_deterministic_under_reordering(train):
    a = fit_scaler(train, FEATURES, "gauss_rank")
    b = fit_scaler(train[::-1].copy(), FEATURES, "gauss_rank")
    np.testing.assert_array_equal(a.transform(train), b.transform(train))


@pytest.mark.parametrize("method", METHODS)
def test_values_outside_the_fitted_range_stay_finite_monotone_and_invertible(train, method):
    scaler = fit_scaler(train, FEATURES, method)
    lo, hi = train.min(axis=0), train.max(axis=0)
    span = hi - lo
    grid = np.linspace(lo - 0.005 * span, hi + 0.005 * span, 2001).astype(np.float32)
    z = scaler.transform(grid)
    assert np.isfinite(z).all()
    assert (np.diff(z, axis=0) >= 0).all()
    np.testing.assert_allclose(scaler.inverse(z), grid, rtol=1e-4, atol=1e-4)
    far = scaler.inverse(np.full((2, 3), [[-9.0], [9.0]], dtype=np.float32))
    assert np.isfinite(far).all() and (far[0] < far[1]).all()


@pytest.mark.parametrize("method", METHODS)
def test_saved_scaler_loads_without_pickle_and_maps_identically(tmp_path, train, method):
    scaler = fit_scaler(train, FEATURES, method)
    path = tmp_path / "scaler.npz"
    scaler.save(path)
    loaded = load_scaler(path)  # np.load(allow_pickle=False) inside
    assert loaded.method == method and loaded.features == FEATURES
    np.testing.assert_array_equal(loaded.transform(train), scaler.transform(train))


def test_bad_arguments_are_named(train):
    with pytest.raises(ValueError, match="scaling.method must be one of"):
        fit_scaler(train, FEATURES, "minmax")
    with pytest.raises(ValueError, match="need at least 2 events with 3 features"):
        fit_scaler(train[:, :2], FEATURES, "gauss_rank")
    scaler = fit_scaler(train, FEATURES, "gauss_rank")
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        scaler.transform(train[:, :2])
