"""The luminosity scan: closure, monotonic limits, per-point failures, TSV and workspaces."""

from __future__ import annotations

import json
import logging
import math
import warnings

import numpy as np
import pyhf
import pytest
from scipy.stats import norm

import flowsim.analysis.scan as scan_module
from flowsim.analysis.config import AnalysisConfig
from flowsim.analysis.likelihood import FitError
from flowsim.analysis.results import TSV_COLUMNS, PointResult
from flowsim.analysis.scan import (
    lumi_grid,
    read_scan_tsv,
    scan_luminosity,
    scan_observable,
    write_scan_tsv,
    write_workspaces,
)
from flowsim.analysis.templates import Template
from tests.analysis.synthetic import pyhf_model

LUMIS = lumi_grid(10.0, 1000.0, 8)


@pytest.fixture(scope="module")
def reference(samples):
    return scan_luminosity(samples.signal, samples.test_a, samples.test_b, alpha=0.01, lumis=LUMIS)


def test_closure_prediction_equal_to_the_data_background_gives_mu_one(samples):
    scan = scan_luminosity(samples.signal, samples.test_a, samples.test_a, alpha=0.01, lumis=LUMIS)
    assert [p.status for p in scan.points] == ["ok"] * LUMIS.size
    np.testing.assert_allclose([p.mu_hat for p in scan.points], 1.0, atol=1e-8)
    # Asimov data of mu = 1: q~(1) = 0, so p_s+b = 1/2
    np.testing.assert_allclose([p.p_sb for p in scan.points], 0.5, rtol=1e-5)  # sqrt(q) of ~1e-13


def test_limits_and_errors_shrink_as_the_luminosity_grows(reference):
    points = reference.points
    assert all(p.status == "ok" for p in points)
    for field in ("mu_err", "ul_obs", "ul_exp_m2", "ul_exp_m1", "ul_exp", "ul_exp_p1", "ul_exp_p2"):
        values = np.array([getattr(p, field) for p in points])
        assert np.all(np.diff(values) < 0), field
    assert np.all(np.diff([p.z_disc for p in points]) > 0)
    for p in points:
        assert p.ul_exp_m2 < p.ul_exp_m1 < p.ul_exp < p.ul_exp_p1 < p.ul_exp_p2


def test_scan_points_agree_with_pyhf_on_their_workspaces(reference):
    for i in (0, LUMIS.size - 1):
        point, (model, data) = reference.points[i], pyhf_model(reference.workspaces[i])
        cls, (clsb, clb) = pyhf.infer.hypotest(1.0, data, model, return_tail_probs=True)
        assert point.cls == pytest.approx(float(cls), rel=0.01)
        assert point.p_sb == pytest.approx(float(clsb), rel=0.01)
        assert point.p_b == pytest.approx(1.0 - float(clb), rel=0.01, abs=1e-9)
        p0 = float(pyhf.infer.hypotest(0.0, data, model, test_stat="q0"))
        assert point.z_disc == pytest.approx(norm.isf(p0), rel=0.01)
        mu_hat = pyhf.infer.mle.fit(data, model)[model.config.poi_index]
        assert point.mu_hat == pytest.approx(float(mu_hat), abs=2e-3)


def test_workspaces_scale_linearly_and_one_per_point(reference):
    assert len(reference.workspaces) == len(reference.points) == LUMIS.size
    per_lumi = [
        np.asarray(ws["channels"][0]["samples"][1]["data"]) / lumi
        for ws, lumi in zip(reference.workspaces, LUMIS, strict=True)
    ]
    for b in per_lumi[1:]:
        np.testing.assert_allclose(b, per_lumi[0], rtol=1e-14)


def test_ml_prediction_scan_runs_and_logs_progress(samples, caplog):
    with caplog.at_level(logging.INFO, logger="flowsim.analysis.scan"):
        scan = scan_luminosity(
            samples.signal, samples.test_a, samples.ml, alpha=0.05, background="ml",
            lumis=LUMIS[:3], observable="m_bb",
        )  # fmt: skip
    assert scan.background == "ml" and all(p.status == "ok" for p in scan.points)
    assert "m_bb alpha=0.05 ml: point 1/3 L=10 fb^-1" in caplog.text
    assert "point 3/3" in caplog.text and scan.n_profiles > 0


def test_a_failed_point_is_kept_with_nan_fields(samples, monkeypatch):
    real = scan_module.AsymptoticCalculator
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise FitError("profile at mu=0 did not converge")
        return real(*args, **kwargs)

    monkeypatch.setattr(scan_module, "AsymptoticCalculator", flaky)
    scan = scan_luminosity(
        samples.signal, samples.test_a, samples.test_b, alpha=0.01, lumis=LUMIS[:3]
    )
    assert [p.lumi_fb for p in scan.points] == pytest.approx(LUMIS[:3].tolist())
    bad = scan.points[1]
    assert bad.status.startswith("fit failed: profile at mu=0")
    assert all(math.isnan(getattr(bad, f)) for f in TSV_COLUMNS[2:-1])
    assert scan.points[0].status == scan.points[2].status == "ok"


def test_empty_prediction_bins_merge_or_raise(samples, caplog):
    counts = samples.test_b.counts.copy()
    counts[-1] = 0
    holed = Template(samples.test_b.edges, counts, samples.test_b.n_total)
    with pytest.raises(ValueError, match=r"bins \[5\]"):
        scan_luminosity(
            samples.signal, samples.test_a, holed, alpha=0.01, lumis=[10.0], empty_bins="raise"
        )
    with caplog.at_level(logging.WARNING):
        scan = scan_luminosity(samples.signal, samples.test_a, holed, alpha=0.01, lumis=[10.0])
    assert "1 of 6 bins are empty" in caplog.text
    assert len(scan.workspaces[0]["observations"][0]["data"]) == 5
    assert scan.points[0].status == "ok"


def test_tsv_round_trip(tmp_path, reference):
    failed = PointResult.failed(5.0, "ml", "fit failed: test")
    path = tmp_path / "lumi_scan_score_alpha0.01.tsv"
    write_scan_tsv(path, [*reference.points, failed])
    header = path.read_text().splitlines()[0].split("\t")
    assert header == list(TSV_COLUMNS)
    assert header[:3] == ["lumi_fb", "background", "mu_hat"] and header[-1] == "status"
    back = read_scan_tsv(path)
    assert back[:-1] == list(reference.points)  # floats written at full precision
    assert back[-1].status == "fit failed: test" and math.isnan(back[-1].ul_obs)


def test_scan_observable_and_write_workspaces(tmp_path, samples):
    config = AnalysisConfig(lumi_fb=(10.0, 100.0, 2), observables={"m_bb": (0.0, 3.0)}, n_bins=6)
    scans = scan_observable(
        samples.signal, samples.test_a, {"mc": samples.test_b, "ml": samples.ml},
        config=config, observable="m_bb",
    )  # fmt: skip
    assert [(s.alpha, s.background) for s in scans] == [
        (0.01, "mc"), (0.01, "ml"), (0.05, "mc"), (0.05, "ml"),
    ]  # fmt: skip
    paths = write_workspaces(tmp_path, scans[1])
    assert [p.name for p in paths] == ["m_bb_alpha0.01_ml_L10.json", "m_bb_alpha0.01_ml_L100.json"]
    assert json.loads(paths[0].read_text()) == scans[1].workspaces[0]


def test_scan_observable_merges_bins_empty_in_any_prediction(samples):
    counts = samples.ml.counts.copy()
    counts[2] = 0
    holed = Template(samples.ml.edges, counts, samples.ml.n_total)
    config = AnalysisConfig(
        lumi_fb=(10.0, 10.0, 1), alphas=(0.05,), observables={"m_bb": (0.0, 3.0)}
    )
    mc, ml = scan_observable(
        samples.signal, samples.test_a, {"mc": samples.test_b, "ml": holed},
        config=config, observable="m_bb",
    )  # fmt: skip
    assert mc.workspaces[0]["observations"] == ml.workspaces[0]["observations"]
    assert len(mc.workspaces[0]["observations"][0]["data"]) == 5


@pytest.mark.parametrize(
    ("limits", "bounds"),
    [
        ([1.0, 2.0, 4.9], (0.0, 10.0)), ([5.0], (0.0, 10.0)), ([5.1], (0.0, 20.0)),
        ([882.0, 3.0], (0.0, 2000.0)), ([30.0], (0.0, 100.0)), ([math.nan, 1.0], (0.0, 10.0)),
        ([math.nan], (0.0, 10.0)), ([2400.0], (0.0, 5000.0)),
    ],
)  # fmt: skip
def test_poi_bounds_cover_twice_every_limit(limits, bounds):
    from flowsim.analysis.model import poi_bounds_covering

    assert poi_bounds_covering(limits) == bounds


@pytest.fixture(scope="module")
def weak_signal(samples):
    """A scan whose low-luminosity limits lie far above the paper's POI bound of 10."""
    return scan_luminosity(
        samples.signal, samples.test_a, samples.test_b, alpha=0.001, lumis=lumi_grid(0.01, 1000.0, 6)
    )


def _poi_bounds(workspace: dict) -> list[float]:
    (parameter,) = workspace["measurements"][0]["config"]["parameters"]
    return parameter["bounds"][0]


def test_every_workspace_holds_the_limits_reported_for_it(weak_signal):
    assert max(p.ul_exp_p2 for p in weak_signal.points) > 500  # the case of the issue
    for point, workspace in zip(weak_signal.points, weak_signal.workspaces, strict=True):
        low, high = _poi_bounds(workspace)
        assert low == 0.0 and all(0 < limit and 2 * limit <= high for limit in point.limits)
        # the paper's bounds wherever they suffice
        assert high == 10.0 or max(point.limits) > 5.0


@pytest.mark.parametrize("i", [1, 2, 3])  # limits up to 219, 51 and 20; POI bounds 500, 200, 50
def test_pyhf_reproduces_limits_above_the_papers_bound_from_the_workspace(weak_signal, i):
    point, workspace = weak_signal.points[i], weak_signal.workspaces[i]
    assert max(point.limits) > 10.0
    model, data = pyhf_model(workspace)
    with warnings.catch_warnings():  # pyhf's 0/0 at the lower bound, which it survives
        warnings.simplefilter("ignore", RuntimeWarning)
        observed, expected = pyhf.infer.intervals.upper_limits.upper_limit(data, model, rtol=1e-4)
    assert point.ul_obs == pytest.approx(float(observed), rel=2e-3)
    np.testing.assert_allclose(point.limits[1:], np.asarray(expected, float), rtol=2e-3)


def _resampled(template: Template, seed: int) -> Template:
    """Another 'member': the template's counts redrawn (a flow trained on another replica)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(template.counts * rng.normal(1.0, 0.08, template.n_bins).clip(0.5))
    return Template(template.edges, counts, template.n_total)


def test_an_ensemble_of_identical_members_adds_nothing_to_the_fit(samples):
    from flowsim.analysis.templates import EnsembleTemplate

    config = AnalysisConfig(lumi_fb=(10.0, 1000.0, 3), alphas=(0.01,), observables={"m_bb": (0.0, 3.0)}, n_bins=6)
    ensemble = EnsembleTemplate((samples.ml,) * 3)
    mc, ml, surrogate = scan_observable(
        samples.signal, samples.test_a, {"mc": samples.test_b, "ml": ensemble}, config=config, observable="m_bb"
    )
    assert (mc.background, ml.background, surrogate.background) == ("mc", "ml", "ml_surrogate")
    # the same numbers as today's fit of the pooled template, and no surrogate modifier
    alone = scan_luminosity(samples.signal, samples.test_a, ensemble.pooled, alpha=0.01, background="ml",
                            lumis=config.lumis())  # fmt: skip
    for a, b, c in zip(alone.points, ml.points, surrogate.points, strict=True):
        assert a._replace(background="x") == b._replace(background="x") == c._replace(background="x")
    assert surrogate.workspaces == ml.workspaces == alone.workspaces


def test_the_surrogate_uncertainty_of_a_spread_ensemble_weakens_the_expected_limits(samples):
    from flowsim.analysis.templates import EnsembleTemplate

    config = AnalysisConfig(lumi_fb=(10.0, 1000.0, 3), alphas=(0.01,), observables={"m_bb": (0.0, 3.0)}, n_bins=6)
    ensemble = EnsembleTemplate(tuple(_resampled(samples.ml, seed) for seed in range(4)))
    assert np.all(ensemble.surrogate_error() > 0)
    _, ml, surrogate = scan_observable(
        samples.signal, samples.test_a, {"mc": samples.test_b, "ml": ensemble}, config=config, observable="m_bb"
    )
    modifiers = {m["name"] for m in surrogate.workspaces[0]["channels"][0]["samples"][1]["modifiers"]}
    assert "bkg_surrogate" in modifiers
    for plain, wider in zip(ml.points, surrogate.points, strict=True):
        assert wider.status == plain.status == "ok"
        assert wider.ul_exp > plain.ul_exp and wider.mu_err > plain.mu_err
    # the workspace refits in pyhf to the TSV's numbers (its own CLs of mu = 1)
    model, data = pyhf_model(surrogate.workspaces[-1])
    cls = float(pyhf.infer.hypotest(1.0, data, model, test_stat="qtilde"))
    assert cls == pytest.approx(surrogate.points[-1].cls, rel=1e-3)
