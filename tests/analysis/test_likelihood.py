"""The bin-by-bin profile likelihood against pyhf's own model, fits and Asimov data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyhf
import pytest

from flowsim.analysis.likelihood import BinnedLikelihood, Profile
from flowsim.analysis.model import (
    POI,
    SHAPESYS,
    SURROGATE,
    ChannelYields,
    build_workspace,
    channel_yields,
    staterror_name,
)
from tests.analysis.synthetic import pyhf_model

#: relative surrogate uncertainty per bin: 5-20%, none in bin 2 (pyhf fixes that parameter)
SURROGATE_REL = np.array([0.05, 0.1, 0.0, 0.2, 0.15, 0.08])


def _yields(samples, prediction: str, lumi: float, alpha: float, *, surrogate: bool = False):
    template = getattr(samples, prediction)
    return channel_yields(
        samples.signal, samples.test_a, template, lumi_fb=lumi, alpha=alpha,
        surrogate_error=SURROGATE_REL * template.efficiency if surrogate else None,
    )  # fmt: skip


def _setup(samples, prediction: str, lumi: float, alpha: float, *, surrogate: bool = False):
    yields = _yields(samples, prediction, lumi, alpha, surrogate=surrogate)
    model, data = pyhf_model(build_workspace(yields))
    return BinnedLikelihood.from_yields(yields), model, data


def _pars(model, mu, beta, gamma, eta=None) -> np.ndarray:
    pars = np.asarray(model.config.suggested_init(), dtype=float)
    pars[model.config.par_slice(POI)] = mu
    pars[model.config.par_slice(SHAPESYS)] = beta
    pars[model.config.par_slice(staterror_name("signal_region"))] = gamma
    if eta is not None:
        pars[model.config.par_slice(SURROGATE)] = eta
    return pars


def _split(model, pars):
    return (
        float(pars[model.config.par_slice(POI)][0]),
        pars[model.config.par_slice(SHAPESYS)],
        pars[model.config.par_slice(staterror_name("signal_region"))],
    )


@pytest.mark.parametrize("prediction", ["test_a", "test_b", "ml"])
def test_nll_is_minus_pyhf_logpdf(samples, prediction):
    lik, model, data = _setup(samples, prediction, lumi=30.0, alpha=0.05)
    rng = np.random.default_rng(0)
    for _ in range(5):
        mu, beta, gamma = rng.uniform(0, 3), rng.uniform(0.7, 1.3, 6), rng.uniform(0.7, 1.3, 6)
        theirs = -float(model.logpdf(_pars(model, mu, beta, gamma), data)[0])
        assert lik.nll(mu, beta, gamma) == pytest.approx(theirs, rel=1e-12)


@pytest.mark.parametrize(
    ("prediction", "lumi", "alpha"), [("test_b", 20.0, 0.01), ("ml", 300.0, 0.05)]
)
def test_fits_agree_with_pyhf(samples, prediction, lumi, alpha):
    lik, model, data = _setup(samples, prediction, lumi, alpha)
    best = lik.fit()
    pars, twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    # ours is the exact minimum: never above pyhf's SLSQP result, and equal to its tolerance
    assert lik.twice_nll(best) <= float(twice_nll) + 1e-7
    assert lik.twice_nll(best) == pytest.approx(float(twice_nll), abs=1e-5)
    assert best.mu == pytest.approx(_split(model, pars)[0], abs=2e-3)
    for mu in (0.0, 0.5, 2.5):
        prof = lik.profile(mu)
        pars, twice_nll = pyhf.infer.mle.fixed_poi_fit(mu, data, model, return_fitted_val=True)
        assert lik.twice_nll(prof) <= float(twice_nll) + 1e-7
        assert lik.twice_nll(prof) == pytest.approx(float(twice_nll), abs=1e-5)
        np.testing.assert_allclose(prof.beta, _split(model, pars)[1], atol=2e-3)


def test_hesse_error_is_the_inverse_hessian_of_pyhf_likelihood(samples):
    lik, model, data = _setup(samples, "ml", 100.0, 0.05)
    best = lik.fit()
    x0 = _pars(model, best.mu, best.beta, best.gamma)

    def nll(x):
        return -float(model.logpdf(x, data)[0])

    k, h = x0.size, 1e-4
    hess = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h, np.eye(k)[j] * h
            corners = nll(x0 + ei + ej) - nll(x0 + ei - ej) - nll(x0 - ei + ej) + nll(x0 - ei - ej)
            hess[i, j] = corners / (4 * h * h)
    poi = model.config.par_slice(POI).start
    sigma_pyhf = np.sqrt(np.linalg.inv(hess)[poi, poi])
    assert 1.0 / np.sqrt(best.d2nll) == pytest.approx(sigma_pyhf, rel=1e-3)


@pytest.mark.parametrize("surrogate", [False, True], ids=["plain", "surrogate"])
def test_asimov_data_match_pyhf(samples, surrogate):
    lik, model, data = _setup(samples, "ml", 50.0, 0.05, surrogate=surrogate)
    asimov = lik.asimov(0.0)
    theirs = pyhf.infer.calculators.generate_asimov_data(
        0.0, data, model, model.config.suggested_init(), model.config.suggested_bounds(),
        model.config.suggested_fixed(),
    )  # fmt: skip
    order = {name: i for i, name in enumerate(model.config.auxdata_order)}
    aux = [asimov.aux_shapesys, asimov.aux_staterror] + ([asimov.aux_surrogate] if surrogate else [])
    names = [SHAPESYS, staterror_name("signal_region")] + ([SURROGATE] if surrogate else [])
    in_pyhf_order = [aux[names.index(n)] for n in sorted(order, key=order.get)]
    ours = np.concatenate([asimov.observed, *in_pyhf_order])
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=2e-4)
    if surrogate:
        assert asimov.aux_surrogate[2] == 1.0
        np.testing.assert_array_equal(asimov.tau_surrogate, lik.tau_surrogate)


def test_bounded_nuisances_in_signal_dominated_bins_match_pyhf(samples):
    # a large signal strength on a mismodelled background pushes the staterror of the
    # signal-dominated bins towards its lower bound (1e-10) as in pyhf's bounded fit
    lik, model, data = _setup(samples, "ml", 1000.0, 0.05)
    for mu in (2.0, 4.0):
        prof = lik.profile(mu)
        _, twice_nll = pyhf.infer.mle.fixed_poi_fit(mu, data, model, return_fitted_val=True)
        assert lik.twice_nll(prof) <= float(twice_nll) + 1e-6
        assert lik.twice_nll(prof) == pytest.approx(float(twice_nll), rel=1e-6)


def test_check_against_pyhf_catches_a_different_model(samples):
    lik, model, _ = _setup(samples, "test_b", 10.0, 0.01)
    yields = channel_yields(
        samples.signal, samples.test_a, samples.test_b, lumi_fb=10.0, alpha=0.01
    )
    best = lik.fit()
    lik.check_against_pyhf(build_workspace(yields), best)
    other = channel_yields(samples.signal, samples.test_a, samples.test_b, lumi_fb=11.0, alpha=0.01)
    with pytest.raises(RuntimeError, match="drifted apart"):
        lik.check_against_pyhf(build_workspace(other), best)


def test_bad_likelihood_inputs_are_refused():
    with pytest.raises(ValueError, match="background must be positive"):
        BinnedLikelihood([1.0], [0.0], [1.0], [100.0], [0.1])
    with pytest.raises(ValueError, match="shape"):
        BinnedLikelihood([1.0, 2.0], [1.0], [1.0], [100.0], [0.1])


def test_profile_is_robust_to_the_start_and_to_parameters_on_bounds():
    # a tail bin with a tiny background, 100% stat error and a large signal: at mu = 0 the
    # background must grow ~400x and the staterror ends on its upper bound (10)
    from flowsim.analysis.model import ChannelYields

    b, s = np.array([100.0, 50.0, 0.26]), np.array([1.0, 5.0, 100.0])
    yields = ChannelYields(s, b, np.array([0.03, 0.05, 1.0]) * b, s + b, 0.1)
    lik = BinnedLikelihood.from_yields(yields)
    model, data = pyhf_model(build_workspace(yields))
    rng = np.random.default_rng(0)
    starts = [None] + [tuple(rng.choice([1e-10, 0.5, 1.0, 3.0, 10.0], (2, 3))) for _ in range(15)]
    for mu in (0.0, 1.3, 5.0):
        values = [lik.twice_nll(lik.profile(mu, start)) for start in starts]
        _, theirs = pyhf.infer.mle.fixed_poi_fit(mu, data, model, return_fitted_val=True)
        assert max(values) - min(values) < 1e-9
        assert min(values) == pytest.approx(float(theirs), abs=1e-6)
    assert lik.profile(0.0).gamma[2] == 10.0



# the surrogate uncertainty: a second shapesys eta, fixed at 1 in bin 2 ----------------------
@pytest.mark.parametrize(("prediction", "lumi"), [("ml", 30.0), ("test_b", 1000.0)])
def test_nll_with_surrogate_is_minus_pyhf_logpdf(samples, prediction, lumi):
    lik, model, data = _setup(samples, prediction, lumi=lumi, alpha=0.05, surrogate=True)
    assert lik.has_surrogate and lik.tau_surrogate[2] == 0.0
    rng = np.random.default_rng(1)
    for i in range(6):
        mu, (beta, gamma, eta) = rng.uniform(0, 3), rng.uniform(0.7, 1.3, (3, 6))
        if i % 2:
            eta[2] = 1.0  # where pyhf holds the fixed parameter; the formula holds for any value
        theirs = -float(model.logpdf(_pars(model, mu, beta, gamma, eta), data)[0])
        assert lik.nll(mu, beta, gamma, eta) == pytest.approx(theirs, rel=1e-12, abs=1e-10)


@pytest.mark.parametrize(
    ("prediction", "lumi", "alpha", "mu_fixed"),
    [("ml", 40.0, 0.05, 0.0), ("test_b", 20.0, 0.01, 2.5)],
)
def test_fits_with_surrogate_agree_with_pyhf(samples, prediction, lumi, alpha, mu_fixed):
    # (pyhf's SLSQP stops ~1e-7 in twice-NLL above the minimum: where the likelihood is flat in
    # mu, e.g. test_b at 300/fb with alpha = 0.01, its mu_hat is then ~2e-4 off)
    yields = _yields(samples, prediction, lumi, alpha, surrogate=True)
    workspace = build_workspace(yields)
    model, data = pyhf_model(workspace)
    lik = BinnedLikelihood.from_yields(yields)
    best = lik.fit()
    pars, twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    assert lik.twice_nll(best) <= float(twice_nll) + 1e-7
    assert lik.twice_nll(best) == pytest.approx(float(twice_nll), abs=1e-5)
    assert best.mu == pytest.approx(float(pars[model.config.par_slice(POI)][0]), abs=1e-4)
    assert best.eta[2] == 1.0  # fixed where the surrogate uncertainty is 0
    np.testing.assert_allclose(best.eta, pars[model.config.par_slice(SURROGATE)], atol=2e-3)
    prof = lik.profile(mu_fixed, best.nuisances)
    pars, twice_nll = pyhf.infer.mle.fixed_poi_fit(mu_fixed, data, model, return_fitted_val=True)
    assert lik.twice_nll(prof) <= float(twice_nll) + 1e-7
    assert lik.twice_nll(prof) == pytest.approx(float(twice_nll), abs=1e-5)
    np.testing.assert_allclose(prof.beta, pars[model.config.par_slice(SHAPESYS)], atol=2e-3)
    np.testing.assert_allclose(prof.eta, pars[model.config.par_slice(SURROGATE)], atol=2e-3)
    assert lik.check_against_pyhf(workspace, best) == pytest.approx(lik.twice_nll(best) / 2)


def test_hesse_error_with_surrogate_is_the_inverse_hessian_of_pyhf_likelihood(samples):
    lik, model, data = _setup(samples, "ml", 100.0, 0.05, surrogate=True)
    best = lik.fit()
    x0 = _pars(model, best.mu, best.beta, best.gamma, best.eta)
    free = np.flatnonzero(~np.asarray(model.config.suggested_fixed()))  # not the fixed eta

    def nll(x):
        return -float(model.logpdf(x, data)[0])

    k, h = free.size, 1e-4
    hess = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.zeros_like(x0), np.zeros_like(x0)
            ei[free[i]], ej[free[j]] = h, h
            corners = nll(x0 + ei + ej) - nll(x0 + ei - ej) - nll(x0 - ei + ej) + nll(x0 - ei - ej)
            hess[i, j] = hess[j, i] = corners / (4 * h * h)
    poi = int(np.flatnonzero(free == model.config.par_slice(POI).start)[0])
    sigma_pyhf = np.sqrt(np.linalg.inv(hess)[poi, poi])
    assert 1.0 / np.sqrt(best.d2nll) == pytest.approx(sigma_pyhf, rel=1e-3)


def test_profile_with_surrogate_is_robust_to_the_start_and_to_parameters_on_bounds():
    # the tail bin of the staterror test (tiny background, 100% stat error, large signal), with
    # a surrogate uncertainty of 10% and 50% in the outer bins and none in the middle one
    b, s = np.array([100.0, 50.0, 0.26]), np.array([1.0, 5.0, 100.0])
    surrogate = np.array([0.1, 0.0, 0.5]) * b
    yields = ChannelYields(s, b, np.array([0.03, 0.05, 1.0]) * b, s + b, 0.1, surrogate)
    lik = BinnedLikelihood.from_yields(yields)
    model, data = pyhf_model(build_workspace(yields))
    rng = np.random.default_rng(0)
    starts = [None] + [tuple(rng.choice([1e-10, 0.5, 1.0, 3.0, 10.0], (3, 3))) for _ in range(15)]
    for mu in (0.0, 1.3, 5.0):
        profiles = [lik.profile(mu, start) for start in starts]
        values = [lik.twice_nll(prof) for prof in profiles]
        _, theirs = pyhf.infer.mle.fixed_poi_fit(mu, data, model, return_fitted_val=True)
        assert max(values) - min(values) < 1e-9
        assert min(values) <= float(theirs) + 1e-7
        assert min(values) == pytest.approx(float(theirs), abs=1e-6)
        assert all(prof.eta[1] == 1.0 for prof in profiles)
    at_zero = lik.profile(0.0)
    assert at_zero.eta[2] == 10.0  # the surrogate of the tail bin ends on its upper bound


def test_zero_surrogate_uncertainty_is_no_surrogate(samples):
    plain = _yields(samples, "ml", 30.0, 0.05)
    zero = plain._replace(background_surrogate=np.zeros(6))
    lik_plain, lik_zero = BinnedLikelihood.from_yields(plain), BinnedLikelihood.from_yields(zero)
    assert lik_zero.tau_surrogate is None and not lik_zero.has_surrogate
    best_plain, best_zero = lik_plain.fit(), lik_zero.fit()
    assert best_zero.eta is None and best_zero.nuisances == (best_zero.beta, best_zero.gamma)
    for a, b in zip(best_plain, best_zero):
        np.testing.assert_array_equal(a, b)  # exactly the same numbers
    # a model with the modifier fixed in every bin (pyhf: all-zero shapesys data) has the same
    # profile, found by the 3-parameter solver, and one constant Pois(1|1) per bin more
    fixed = replace(lik_plain, tau_surrogate=np.zeros(6))
    best_fixed = fixed.fit()
    assert best_fixed.mu == pytest.approx(best_plain.mu, abs=1e-8)
    assert fixed.twice_nll(best_fixed) == pytest.approx(lik_plain.twice_nll(best_plain) + 12.0)
    np.testing.assert_allclose(best_fixed.beta, best_plain.beta, atol=1e-8)
    assert best_fixed.d2nll == pytest.approx(best_plain.d2nll, rel=1e-8)
    assert best_fixed.eta.tolist() == [1.0] * 6


def test_check_against_pyhf_catches_a_missing_or_extra_surrogate(samples):
    with_sur = _yields(samples, "ml", 20.0, 0.05, surrogate=True)
    without = with_sur._replace(background_surrogate=None)
    lik_sur, lik = BinnedLikelihood.from_yields(with_sur), BinnedLikelihood.from_yields(without)
    best_sur, best = lik_sur.fit(), lik.fit()
    lik_sur.check_against_pyhf(build_workspace(with_sur), best_sur)
    lik.check_against_pyhf(build_workspace(without), best)
    with pytest.raises(RuntimeError, match="drifted apart"):
        lik_sur.check_against_pyhf(build_workspace(without), best_sur)
    with pytest.raises(RuntimeError, match="drifted apart"):
        lik.check_against_pyhf(build_workspace(with_sur), best)


def test_profile_keeps_its_positional_fields_and_bad_surrogate_inputs_are_refused():
    prof = Profile(1.0, 2.0, np.ones(2), np.ones(2), 0.5, 3.0)  # as before the surrogate
    assert prof.eta is None and len(prof.nuisances) == 2
    args = ([1.0, 2.0], [10.0, 20.0], [11.0, 22.0], [100.0, 100.0], [0.1, 0.1])
    with pytest.raises(ValueError, match="aux_surrogate needs tau_surrogate"):
        BinnedLikelihood(*args, aux_surrogate=[1.0, 1.0])
    with pytest.raises(ValueError, match="tau_surrogate must be >= 0"):
        BinnedLikelihood(*args, tau_surrogate=[-1.0, 4.0])
    with pytest.raises(ValueError, match="tau_surrogate must be a finite 1-D array"):
        BinnedLikelihood(*args, tau_surrogate=[4.0])
    with pytest.raises(ValueError, match="no surrogate"):
        BinnedLikelihood(*args).nll(1.0, [1.0, 1.0], [1.0, 1.0], eta=[1.0, 1.0])
    lik = BinnedLikelihood(*args, tau_surrogate=[25.0, 0.0])
    assert lik.aux_surrogate.tolist() == [25.0, 1.0]
    assert lik.profile(1.0).eta[1] == 1.0
