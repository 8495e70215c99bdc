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


# -- odd maps for a sign-flip symmetry -----------------------------------------------------------


@pytest.fixture
def symmetric() -> np.ndarray:
    """pt and two etas whose joint sign flip is a symmetry (eta2 = eta1 + noise), quantised
    like HIGGS's etas so that ties occur, including ties at 0."""
    rng = np.random.default_rng(1)
    n = 20_000
    eta1 = np.round(rng.normal(0.0, 1.2, n), 2)
    eta2 = np.round(eta1 + rng.normal(0.0, 0.5, n), 3)
    return np.stack([rng.exponential(1.0, n) + 0.2, eta1, eta2], axis=1).astype(np.float32)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("max_knots", [10_000, 50])
def test_odd_features_get_odd_maps(symmetric, method, max_knots):
    features = ("pt", "eta1", "eta2")
    scaler = fit_scaler(symmetric, features, method, odd=["eta1", "eta2"], max_knots=max_knots)
    assert scaler.odd_features == ("eta1", "eta2")
    mirrored = symmetric * np.array([1, -1, -1], dtype=np.float32)
    z, z_mirrored = scaler.transform(symmetric), scaler.transform(mirrored)
    # odd up to float32 rounding, beyond the fitted range too
    np.testing.assert_allclose(z_mirrored[:, 1:], -z[:, 1:], rtol=0, atol=2e-6)
    np.testing.assert_array_equal(z_mirrored[:, 0], z[:, 0])
    outside = np.array([[1.0, 9.0, -9.0]], dtype=np.float32)
    np.testing.assert_allclose(scaler.transform(-outside)[:, 1:], -scaler.transform(outside)[:, 1:], atol=1e-5)
    # still an exact round trip, and still N(0, 1) on the training data
    np.testing.assert_allclose(scaler.inverse(z), symmetric, rtol=1e-5, atol=1e-5)
    if method != "none":
        assert abs(z[:, 1:].mean()) < 0.03 and abs(z[:, 1:].std() - 1) < 0.03


def test_odd_gauss_rank_is_the_rank_map_of_the_mirrored_sample(symmetric):
    # independent computation: Φ⁻¹ of the mid-rank CDF of {x} ∪ {−x}, at the sample's values
    x = symmetric[:, 1].astype(np.float64)
    both = np.concatenate([x, -x])
    expected = stats.norm.ppf((stats.rankdata(both, method="average") - 0.5) / len(both))[: len(x)]
    z = fit_scaler(symmetric, ("pt", "eta1", "eta2"), "gauss_rank", odd=["eta1"]).transform(symmetric)[:, 1]
    np.testing.assert_allclose(z, expected, atol=2e-6)


def test_odd_features_survive_save_and_load(tmp_path, symmetric):
    scaler = fit_scaler(symmetric, ("pt", "eta1", "eta2"), "gauss_rank", odd=["eta2"])
    scaler.save(tmp_path / "s.npz")
    assert load_scaler(tmp_path / "s.npz").odd_features == ("eta2",)
    assert fit_scaler(symmetric, ("pt", "eta1", "eta2"), "gauss_rank").odd_features == ()


def test_odd_feature_must_be_a_feature(symmetric):
    with pytest.raises(ValueError, match=r"'phi'.*not among the features"):
        fit_scaler(symmetric, ("pt", "eta1", "eta2"), "gauss_rank", odd=["phi"])


def test_an_asymmetric_odd_feature_is_reported(symmetric, caplog):
    with caplog.at_level("INFO", logger="flowsim.data.scaling"):
        fit_scaler(symmetric, ("pt", "eta1", "eta2"), "gauss_rank", odd=["pt", "eta1"])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("pt is not symmetric")
    assert any(r.getMessage().startswith("eta1: KS distance") for r in caplog.records)


def test_asymmetry_threshold_has_the_stated_false_alarm_rate():
    # independent computation: the statistic by brute force over a grid, and its null rate by
    # simulation (1000 symmetric samples: 10⁻³ expected, so at most a few alarms)
    from flowsim.data.scaling import _asymmetry

    rng = np.random.default_rng(5)
    x = rng.standard_normal(500)
    t = np.sort(np.concatenate([x, -x]))
    brute = max(abs(np.mean(x <= s) - np.mean(-x <= s)) for s in t)
    assert _asymmetry(x)[0] == pytest.approx(brute)
    alarms = sum(d > c for d, c in (_asymmetry(rng.standard_normal(2000)) for _ in range(1000)))
    assert alarms <= 5
    distance, critical = _asymmetry(rng.standard_normal(2000) + 0.2)  # a shift of 0.2σ is seen
    assert distance > critical


# -- event weights -------------------------------------------------------------------------------


@pytest.fixture
def weighted() -> tuple[np.ndarray, np.ndarray]:
    """A few thousand events with ties and integer weights 0..3 (0: as good as absent)."""
    rng = np.random.default_rng(2)
    n = 3000
    x = np.stack([rng.exponential(1.0, n) + 0.2, np.round(rng.normal(0, 1, n), 2), rng.normal(0, 1, n)], axis=1)
    return x, rng.integers(0, 4, n)


@pytest.mark.parametrize("max_knots", [10_000, 50])
@pytest.mark.parametrize("odd", [(), ("eta",)])
def test_gauss_rank_integer_weights_are_repeated_rows(weighted, max_knots, odd):
    x, w = weighted
    fitted = fit_scaler(x, FEATURES, "gauss_rank", odd=odd, max_knots=max_knots, weights=w)
    repeated = fit_scaler(np.repeat(x, w, axis=0), FEATURES, "gauss_rank", odd=odd, max_knots=max_knots)
    for key in ("x_knots", "z_knots", "offsets", "slope_lo", "slope_hi"):
        np.testing.assert_array_equal(fitted.params[key], repeated.params[key], err_msg=key)


def test_logit_integer_weights_are_repeated_rows(weighted):
    x, w = weighted
    w = w + 1  # zero weights would change the range, which ignores the weights
    fitted = fit_scaler(x, FEATURES, "logit", odd=("eta",), weights=w)
    repeated = fit_scaler(np.repeat(x, w, axis=0), FEATURES, "logit", odd=("eta",))
    np.testing.assert_allclose(fitted.transform(x), repeated.transform(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_unit_weights_give_the_unweighted_scaler(train, method):
    fitted = fit_scaler(train, FEATURES, method, odd=("eta",), weights=np.ones(len(train)))
    plain = fit_scaler(train, FEATURES, method, odd=("eta",))
    for key, value in plain.params.items():
        if method == "logit":  # weighted moments sum in another order
            np.testing.assert_allclose(fitted.params[key], value, rtol=1e-12, err_msg=key)
        else:
            np.testing.assert_array_equal(fitted.params[key], value, err_msg=key)


def test_weighted_logit_standardises_the_weighted_sample(train):
    w = np.random.default_rng(3).normal(1.0, 1.0, len(train))  # some negative
    z = fit_scaler(train, FEATURES, "logit", weights=w).transform(train).astype(np.float64)
    mean = z.T @ w / w.sum()
    np.testing.assert_allclose(mean, 0.0, atol=1e-5)
    np.testing.assert_allclose(((z - mean) ** 2).T @ w / w.sum(), 1.0, atol=1e-5)


def test_negative_weights_drop_the_knots_where_the_cdf_falls(caplog):
    # F̂ = (W_below + W_at/2) / W: W = 2, so 0.25, 0.75, then 0.625 and 0.625 (falls: dropped)
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    with caplog.at_level("INFO", logger="flowsim.data.scaling"):
        scaler = fit_scaler(x, ("a",), "gauss_rank", weights=[1.0, 1.0, -1.5, 1.5])
    assert "2 of 4 knots dropped" in caplog.text
    np.testing.assert_array_equal(scaler.params["x_knots"], [0.0, 1.0])
    np.testing.assert_allclose(scaler.params["z_knots"], stats.norm.ppf([0.25, 0.75]), rtol=1e-12)
    # F̂ outside (0, 1): W = 2.5, F̂ = (−0.25, 0, 1, 2) / 2.5 drops the first two
    scaler = fit_scaler(x, ("a",), "gauss_rank", weights=[-0.5, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(scaler.params["x_knots"], [2.0, 3.0])
    np.testing.assert_allclose(scaler.params["z_knots"], stats.norm.ppf([0.4, 0.8]), rtol=1e-12)


def test_negative_weights_keep_the_map_monotone_and_invertible(train):
    w = np.random.default_rng(4).normal(1.0, 1.5, len(train))  # about a quarter negative
    scaler = fit_scaler(train, FEATURES, "gauss_rank", weights=w)
    for j in range(3):
        xk, zk = scaler._knots(j)
        assert (np.diff(xk) > 0).all() and (np.diff(zk) > 0).all() and np.isfinite(zk).all()
    np.testing.assert_allclose(scaler.inverse(scaler.transform(train)), train, rtol=1e-5, atol=1e-5)


def test_bad_weights_are_refused(train):
    with pytest.raises(ValueError, match="expected 20000 event weights"):
        fit_scaler(train, FEATURES, "gauss_rank", weights=np.ones(3))
    with pytest.raises(ValueError, match="sum to"):
        fit_scaler(train, FEATURES, "logit", weights=-np.ones(len(train)))
