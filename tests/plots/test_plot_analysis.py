"""Tests of flowsim.plots.analysis: classifier scores and the luminosity-scan plots."""

from __future__ import annotations

import math

import numpy as np

from flowsim.analysis.results import PointResult
from flowsim.plots import analysis as A


def _scan_points(failed_at: float | None = None) -> list[PointResult]:
    points = []
    for background, shift in (("mc", 0.0), ("ml", 0.1)):
        for lumi in np.geomspace(10, 1000, 6):
            scale = 3.0 / np.sqrt(lumi)
            if lumi == failed_at and background == "ml":
                points.append(PointResult.failed(lumi, background, "fit failed: test"))
                continue
            exp = [scale * f for f in (0.55, 0.75, 1.0, 1.4, 1.9)]
            points.append(PointResult(
                lumi, background, 1.0 + shift, scale / 2, 0.01, 0.4, 0.02, 2 / scale,
                1.2 * exp[2], *exp, "ok",
            ))  # fmt: skip
    return points


def test_plot_classifier_scores(tmp_path, rng, check_png):
    signal, mc, ml = rng.beta(5, 2, 4000), rng.beta(2, 5, 4000), rng.beta(2.1, 5, 5000)
    A.plot_classifier_scores(signal, mc, ml, tmp_path / "scores.png", cut=0.51, run="glow")
    check_png(tmp_path / "scores.png", min_kb=30)


def test_scan_plots_with_and_without_failed_points(tmp_path, check_png):
    title = A.scan_title("m_bb", 0.01, "glow")
    assert "m_bb" in title and "1\\%" in title and "glow" in title
    for tag, points in (("ok", _scan_points()), ("failed", _scan_points(failed_at=100.0))):
        A.plot_mu_hat(points, tmp_path / f"mu_{tag}.png", title=title)
        A.plot_pvalues(points, tmp_path / f"p_{tag}.png", title=title)
        A.plot_upper_limits(points, tmp_path / f"ul_{tag}.png", title=title)
        for name in ("mu", "p", "ul"):
            check_png(tmp_path / f"{name}_{tag}.png", min_kb=20)


def test_scan_plots_survive_a_scan_where_every_point_failed(tmp_path, check_png):
    points = [PointResult.failed(lumi, bkg, "fit failed") for bkg in ("mc", "ml") for lumi in (10, 100)]
    assert all(math.isnan(p.ul_obs) for p in points)
    A.plot_upper_limits(points, tmp_path / "ul.png", title="all failed")
    check_png(tmp_path / "ul.png", min_kb=10)
