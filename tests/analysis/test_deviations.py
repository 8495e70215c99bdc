"""The run-level summary of a scan: largest pull of μ̂ and largest shift of the expected limit."""

from __future__ import annotations

import math

import pytest

from flowsim.analysis.results import PointResult, largest_deviations


def _point(lumi, background, mu_hat=1.0, mu_err=0.5, exp=(1.0, 1.5, 2.0, 3.0, 4.0), status="ok"):
    nan = math.nan
    return PointResult(lumi, background, mu_hat, mu_err, nan, nan, nan, nan, nan, *exp, status)


def test_pull_and_band_shift_by_hand():
    points = [
        _point(10, "mc"), _point(100, "mc"),
        # pull |0.2-1|/0.4 = 2; expected 2.5 above the MC median 2: (2.5-2)/(3-2) = +0.5σ
        _point(10, "ml", mu_hat=0.2, mu_err=0.4, exp=(1, 1, 2.5, 3, 4)),
        # pull |1.3-1|/0.6 = 0.5; expected 1.25 below 2: (1.25-2)/(2-1.5) = -1.5σ
        _point(100, "ml", mu_hat=1.3, mu_err=0.6, exp=(1, 1, 1.25, 3, 4)),
    ]  # fmt: skip
    pull, shift = largest_deviations(points, "score_alpha0.01")
    assert pull.value == pytest.approx(2.0) and pull.where == "score_alpha0.01 L=10"
    assert shift.value == pytest.approx(-1.5) and shift.where == "score_alpha0.01 L=100"


def test_failed_points_are_skipped_and_nothing_left_gives_nan():
    points = [
        _point(10, "mc"),
        _point(10, "ml", mu_hat=5.0, status="fit failed: x"),
        _point(100, "ml", mu_hat=1.5, mu_err=0.5),  # no MC point at L=100: no shift
    ]
    pull, shift = largest_deviations(points)
    assert pull.value == pytest.approx(1.0) and pull.where == "L=100"
    assert math.isnan(shift.value) and shift.where == ""
    pull, _ = largest_deviations([_point(10, "mc")])
    assert math.isnan(pull.value) and pull.where == ""
