"""Tests of flowsim.plots.c2st: ROC, scores, density ratio and its tails."""

from __future__ import annotations

import numpy as np
import pytest

from flowsim.metrics.roc import RocCurve, auc_delong, density_ratio, roc_curve
from flowsim.plots import c2st as C

FEATURES = ["lepton_pt", "lepton_eta", "m_jj", "m_bb"]


def _scores(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    """Classifier-like outputs near ½, shifted for 'generated' events."""
    return 1.0 / (1.0 + np.exp(-(0.3 * rng.normal(size=n) + shift)))


def test_format_pm():
    assert C.format_pm(0.51234, 0.00113) == "0.5123 ± 0.0011"
    assert C.format_pm(0.5, 0.02) == "0.500 ± 0.020"
    assert C.format_pm(0.5, float("nan")) == "0.5000"


def test_thin_curve_keeps_ends_and_shape():
    f = np.linspace(0, 1, 100_001)
    t = np.sqrt(f)
    ft, tt = C.thin_curve(f, t, max_points=1000)
    assert ft.size <= 1000 and (ft[0], ft[-1]) == (0.0, 1.0)
    np.testing.assert_allclose(tt, np.sqrt(ft))
    assert C.thin_curve(f[:10], t[:10])[0].size == 10


def test_plot_roc(tmp_path, rng, check_png):
    d_mc, d_gen, d_mc2 = _scores(rng, 3000, 0), _scores(rng, 3000, 0.1), _scores(rng, 3000, 0)
    gen, null = auc_delong(d_gen, d_mc), auc_delong(d_mc2, d_mc)
    C.plot_roc(roc_curve(d_gen, d_mc), tmp_path / "roc.png", auc=gen.auc, auc_err=gen.std,
               curve_null=roc_curve(d_mc2, d_mc), auc_null=null.auc, auc_null_err=null.std)
    check_png(tmp_path / "roc.png", min_kb=30)
    C.plot_roc(roc_curve(d_gen, d_mc), tmp_path / "roc1.png", auc=gen.auc, auc_err=gen.std)
    check_png(tmp_path / "roc1.png")


def test_plot_roc_bad_input(tmp_path, rng):
    curve = roc_curve(_scores(rng, 50, 0.1), _scores(rng, 50, 0))
    with pytest.raises(ValueError, match="auc_null is required"):
        C.plot_roc(curve, tmp_path / "r.png", auc=0.5, auc_err=0.01, curve_null=curve)
    bad = RocCurve(np.array([0.0, 1.5]), np.array([0.0, 1.0]), np.array([np.inf, 0.0]))
    with pytest.raises(ValueError, match="fpr must lie in"):
        C.plot_roc(bad, tmp_path / "r.png", auc=0.5, auc_err=0.01)
    short = RocCurve(np.array([0.0, 1.0]), np.array([0.0]), np.array([np.inf]))
    with pytest.raises(ValueError, match="equal length"):
        C.plot_roc(short, tmp_path / "r.png", auc=0.5, auc_err=0.01)


def test_plot_density_ratio(tmp_path, rng, check_png):
    r_mc = density_ratio(_scores(rng, 4000, 0)).ratio
    r_gen = density_ratio(_scores(rng, 4000, 0.1)).ratio
    C.plot_density_ratio(r_mc, r_gen, tmp_path / "r.png")
    check_png(tmp_path / "r.png", min_kb=25)
    with pytest.raises(ValueError, match="non-positive"):
        C.plot_density_ratio(np.array([1.0, 0.0]), r_gen, tmp_path / "x.png")
    with pytest.raises(ValueError, match="r_gen is empty"):
        C.plot_density_ratio(r_mc, [], tmp_path / "x.png")


def test_plot_ratio_tails(tmp_path, rng, check_png):
    n = 3000
    mc = np.exp(0.4 * rng.normal(size=(n, 4)))
    gen = np.exp(0.4 * rng.normal(size=(n, 4)))
    r_gen = np.exp(0.2 * rng.normal(size=n) + 0.3 * (gen[:, 0] > 2))  # flow overshoots high pT
    tails = C.plot_ratio_tails(mc, gen, r_gen, FEATURES, tmp_path / "t.png", quantile=0.02)
    check_png(tmp_path / "t.png", min_kb=40)
    assert tails.low.sum() == tails.high.sum() == 60
    # the planted failure: events with high r are the high-pT ones
    assert np.median(gen[tails.high, 0]) > np.median(gen[:, 0])
    with pytest.raises(ValueError, match="r_gen has 2999 values but generated has 3000"):
        C.plot_ratio_tails(mc, gen, r_gen[:-1], FEATURES, tmp_path / "x.png")
    with pytest.raises(ValueError, match="mc has 3 columns but 4 features"):
        C.plot_ratio_tails(mc[:, :3], gen, r_gen, FEATURES, tmp_path / "x.png")


def test_plot_score_distributions(tmp_path, rng, check_png):
    C.plot_score_distributions(_scores(rng, 4000, 0), _scores(rng, 4000, 0.1), tmp_path / "s.png")
    check_png(tmp_path / "s.png", min_kb=25)
    with pytest.raises(ValueError, match="outside"):
        C.plot_score_distributions(np.array([0.2, 1.2]), np.array([0.5]), tmp_path / "x.png")
    with pytest.raises(ValueError, match="d_mc is empty"):
        C.plot_score_distributions([], np.array([0.5]), tmp_path / "x.png")
    # a constant classifier (all D = ½) still draws
    C.plot_score_distributions(np.full(10, 0.5), np.full(10, 0.5), tmp_path / "c.png")
    check_png(tmp_path / "c.png", min_kb=5)
