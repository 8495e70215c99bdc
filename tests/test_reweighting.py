"""Classifier reweighting recovers a known density ratio between two Gaussians."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from flowsim.reweighting import ReweightSettings, density_ratio_weights, effective_size, fit_reweighter

SHIFT = np.array([0.5, -0.3])
QUICK = ReweightSettings(
    hidden=32, residual_blocks=1, dropout=0.0, training={"batch_size": 512, "max_epochs": 20, "device": "cpu"}
)


def true_log_ratio(x: np.ndarray) -> np.ndarray:
    """log N(x; SHIFT, I) − log N(x; 0, I) = SHIFT·x − |SHIFT|²/2."""
    return x @ SHIFT - 0.5 * SHIFT @ SHIFT


@pytest.fixture(scope="module")
def reweighter():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(20000, 2)) + SHIFT  # "MC"
    generated = rng.normal(size=(20000, 2))  # "flow"
    return fit_reweighter(reference, generated, settings=QUICK, seed=0)


def test_weights_recover_the_density_ratio(reweighter):
    x = np.random.default_rng(1).normal(size=(20000, 2))  # fresh generated events
    weights, n_clipped = density_ratio_weights(reweighter, x, max_weight=50.0)
    assert n_clipped == 0
    bulk = np.abs(x).max(axis=1) < 2.0
    error = np.log(weights[bulk]) - true_log_ratio(x[bulk])
    assert np.sqrt(np.mean(error**2)) < 0.1
    assert np.corrcoef(np.log(weights), true_log_ratio(x))[0, 1] > 0.98


def test_weighted_generated_events_have_the_reference_moments(reweighter):
    x = np.random.default_rng(2).normal(size=(40000, 2))
    weights, _ = density_ratio_weights(reweighter, x)
    assert np.mean(weights) == pytest.approx(1.0, abs=0.03)  # E_gen[p_ref/p_gen] = 1
    np.testing.assert_allclose(np.average(x, axis=0, weights=weights), SHIFT, atol=0.03)
    assert 0.5 * len(x) < effective_size(weights) < len(x)


def test_clipping_is_counted_and_logged(reweighter, caplog):
    x = np.random.default_rng(3).normal(size=(5000, 2))
    with caplog.at_level(logging.INFO, logger="flowsim.reweighting"):
        weights, n_clipped = density_ratio_weights(reweighter, x, max_weight=1.5)
    expected = np.count_nonzero(np.exp(true_log_ratio(x)) > 1.5)
    assert n_clipped == pytest.approx(expected, rel=0.1)
    assert weights.max() == 1.5
    assert f"{n_clipped} weight(s) clipped at 1.5" in caplog.text


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_weight must exceed 1"):
        ReweightSettings(max_weight=1.0)
    with pytest.raises(ValueError, match=r"samples must be \(n, F\) alike"):
        fit_reweighter(np.zeros((10, 2)), np.zeros((10, 3)))


def test_settings_come_from_the_config_section():
    settings = ReweightSettings.from_section({"enabled": True, "seed": 3, "max_weight": 5.0, "hidden": 8})
    assert (settings.max_weight, settings.hidden) == (5.0, 8)


def test_weights_of_another_sample_are_refused(tmp_path):
    from flowsim import io
    from flowsim.evaluation import eval_weighted_job

    columns = {"a": np.zeros(10), "b": np.ones(10)}
    io.write_events(tmp_path / "mc.root", columns)
    io.write_events(tmp_path / "gen.root", columns)
    io.write_events(tmp_path / "w.root", {"weight": np.ones(9)})
    with pytest.raises(ValueError, match=r"w.root has 9 weights but .*gen.root has 10 events"):
        eval_weighted_job(
            test_a=tmp_path / "mc.root", generated=tmp_path / "gen.root", weights=tmp_path / "w.root",
            features=["a", "b"], seed=0, table_out=tmp_path / "t.tsv", plot_out=tmp_path / "p.png",
        )  # fmt: skip
    assert not (tmp_path / "t.tsv").exists()
