"""The bin-by-bin profile likelihood against pyhf's own model, fits and Asimov data."""

from __future__ import annotations

import numpy as np
import pyhf
import pytest

from flowsim.analysis.likelihood import BinnedLikelihood
from flowsim.analysis.model import POI, SHAPESYS, build_workspace, channel_yields, staterror_name
from tests.analysis.synthetic import pyhf_model


def _setup(samples, prediction: str, lumi: float, alpha: float):
    yields = channel_yields(
        samples.signal, samples.test_a, getattr(samples, prediction), lumi_fb=lumi, alpha=alpha
    )
    model, data = pyhf_model(build_workspace(yields))
    return BinnedLikelihood.from_yields(yields), model, data


def _pars(model, mu, beta, gamma) -> np.ndarray:
    pars = np.asarray(model.config.suggested_init(), dtype=float)
    pars[model.config.par_slice(POI)] = mu
    pars[model.config.par_slice(SHAPESYS)] = beta
    pars[model.config.par_slice(staterror_name("signal_region"))] = gamma
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


def test_asimov_data_match_pyhf(samples):
    lik, model, data = _setup(samples, "ml", 50.0, 0.05)
    asimov = lik.asimov(0.0)
    theirs = pyhf.infer.calculators.generate_asimov_data(
        0.0, data, model, model.config.suggested_init(), model.config.suggested_bounds(),
        model.config.suggested_fixed(),
    )  # fmt: skip
    order = {name: i for i, name in enumerate(model.config.auxdata_order)}
    aux = [asimov.aux_shapesys, asimov.aux_staterror]
    names = [SHAPESYS, staterror_name("signal_region")]
    in_pyhf_order = [aux[names.index(n)] for n in sorted(order, key=order.get)]
    ours = np.concatenate([asimov.observed, *in_pyhf_order])
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=2e-4)


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
