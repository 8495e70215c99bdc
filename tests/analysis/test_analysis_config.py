"""Analysis settings: defaults from the paper, and a clear ValueError naming each bad value."""

from __future__ import annotations

import numpy as np
import pytest

from flowsim.analysis.config import SCORE, AnalysisConfig
from flowsim.analysis.scan import lumi_grid, scan_luminosity


def test_defaults_follow_the_paper():
    config = AnalysisConfig.from_mapping(None)
    assert config.cut == 0.51 and config.n_bins == 25
    assert config.observables == {SCORE: (0.51, 1.0), "m_bb": (0.0, 3.0)}
    np.testing.assert_allclose(config.edges(SCORE)[[0, -1]], [0.51, 1.0])
    assert config.edges("m_bb").size == 26
    lumis = config.lumis()
    assert lumis.size == 30
    assert lumis[0] == pytest.approx(10.0) and lumis[-1] == pytest.approx(1000.0)
    np.testing.assert_allclose(np.diff(np.log(lumis)), np.log(100.0) / 29)
    assert config.alphas == (0.01, 0.05) and config.sigma_b_fb == 1000.0
    assert config.shapesys_rel == 0.1 and config.cl == 0.95


def test_from_mapping_reads_the_config_section():
    config = AnalysisConfig.from_mapping(
        {"cut": 0.55, "lumi_fb": {"min": 1, "max": 10, "n": 3}, "alphas": [0.02],
         "observables": {"score": None, "m_bb": [0, 2]}}
    )  # fmt: skip
    assert config.observables[SCORE] == (0.55, 1.0) and config.observables["m_bb"] == (0.0, 2.0)
    np.testing.assert_allclose(config.lumis(), [1.0, np.sqrt(10.0), 10.0])
    assert config.alphas == (0.02,)


@pytest.mark.parametrize(
    ("section", "names"),
    [
        ({"observables": {"m_bb": [3.0, 3.0]}}, ["observables.m_bb", "empty or decreasing"]),
        ({"observables": {"m_bb": [3.0, 0.0]}}, ["observables.m_bb", "empty or decreasing"]),
        ({"cut": 1.0}, ["analysis.observables.score", "empty or decreasing"]),  # range (1, 1)
        ({"cut": 1.2}, ["analysis.cut", "[0, 1]"]),
        ({"cut": -0.1}, ["analysis.cut", "[0, 1]"]),
        ({"lumi_fb": {"min": 0, "max": 100, "n": 5}}, ["analysis.lumi_fb.min", "positive"]),
        ({"lumi_fb": {"min": 10, "max": -5, "n": 5}}, ["analysis.lumi_fb.max", "positive"]),
        ({"lumi_fb": {"min": 100, "max": 10, "n": 5}}, ["analysis.lumi_fb", "below min"]),
        ({"alphas": [0.01, 0.0]}, ["analysis.alphas", "positive"]),
        ({"alphas": [-0.05]}, ["analysis.alphas", "positive"]),
        ({"n_bins": 0}, ["analysis.n_bins", "positive integer"]),
        ({"sigma_b_fb": 0}, ["analysis.sigma_b_fb", "positive"]),
        ({"shapesys_rel": -0.1}, ["analysis.shapesys_rel", "positive"]),
        ({"cl": 1.0}, ["analysis.cl"]),
        ({"empty_bins": "drop"}, ["analysis.empty_bins", "merge"]),
        ({"observables": {"m_jj": None}}, ["analysis.observables.m_jj", "range"]),
        ({"lumi": 3}, ["analysis", "unknown key", "lumi"]),
    ],
)
def test_bad_settings_raise_a_value_error_naming_the_key(section, names):
    with pytest.raises(ValueError) as info:
        AnalysisConfig.from_mapping(section)
    for name in names:
        assert name in str(info.value)


def test_scan_arguments_are_checked_too(samples):
    s = samples
    with pytest.raises(ValueError, match="luminosities must be positive"):
        scan_luminosity(s.signal, s.test_a, s.test_b, alpha=0.01, lumis=[10.0, 0.0])
    with pytest.raises(ValueError, match="alpha = S/B must be positive"):
        scan_luminosity(s.signal, s.test_a, s.test_b, alpha=0.0)
    with pytest.raises(ValueError, match="background must be one of"):
        scan_luminosity(s.signal, s.test_a, s.test_b, alpha=0.01, background="flow")
    with pytest.raises(ValueError, match="positive"):
        lumi_grid(-1.0, 10.0, 3)
    with pytest.raises(ValueError, match="decreasing"):
        lumi_grid(100.0, 10.0, 3)
