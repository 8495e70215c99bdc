"""Classifier reweighting recovers a known density ratio between two Gaussians."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from flowsim.reweighting import (
    ReweightSettings,
    accept_by_weight,
    density_ratio_weights,
    effective_size,
    fit_reweighter,
)

SHIFT = np.array([0.5, -0.3])
QUICK = ReweightSettings(
    classifier="mlp", hidden=32, residual_blocks=1, dropout=0.0,
    training={"batch_size": 512, "max_epochs": 20, "device": "cpu"},
)
TREE = ReweightSettings(classifier="tree")
#: how closely each classifier learns the linear log-ratio: trees are piecewise constant
TOLERANCE = {"mlp": {"rms": 0.1, "corr": 0.98, "mean": 0.03}, "tree": {"rms": 0.15, "corr": 0.97, "mean": 0.05}}


def true_log_ratio(x: np.ndarray) -> np.ndarray:
    """log N(x; SHIFT, I) − log N(x; 0, I) = SHIFT·x − |SHIFT|²/2."""
    return x @ SHIFT - 0.5 * SHIFT @ SHIFT


@pytest.fixture(scope="module", params=["mlp", "tree"])
def trained(request):
    """(classifier kind, D) for reference N(SHIFT, I) against generated N(0, I)."""
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(20000, 2)) + SHIFT  # "MC"
    generated = rng.normal(size=(20000, 2))  # "flow"
    settings = QUICK if request.param == "mlp" else TREE
    return request.param, fit_reweighter(reference, generated, settings=settings, seed=0)


@pytest.fixture(scope="module")
def reweighter(trained):
    return trained[1]


def test_weights_recover_the_density_ratio(trained):
    kind, reweighter = trained
    x = np.random.default_rng(1).normal(size=(20000, 2))  # fresh generated events
    weights, n_clipped = density_ratio_weights(reweighter, x, max_weight=50.0)
    assert n_clipped == 0
    bulk = np.abs(x).max(axis=1) < 2.0
    error = np.log(weights[bulk]) - true_log_ratio(x[bulk])
    assert np.sqrt(np.mean(error**2)) < TOLERANCE[kind]["rms"]
    assert np.corrcoef(np.log(weights), true_log_ratio(x))[0, 1] > TOLERANCE[kind]["corr"]


def test_weighted_generated_events_have_the_reference_moments(trained):
    kind, reweighter = trained
    x = np.random.default_rng(2).normal(size=(40000, 2))
    weights, _ = density_ratio_weights(reweighter, x)
    assert np.mean(weights) == pytest.approx(1.0, abs=0.03)  # E_gen[p_ref/p_gen] = 1
    np.testing.assert_allclose(np.average(x, axis=0, weights=weights), SHIFT, atol=TOLERANCE[kind]["mean"])
    assert 0.5 * len(x) < effective_size(weights) < len(x)


def test_rejection_by_the_true_ratio_samples_the_reference():
    """Events of N(0, I) kept with probability w/max w, w the exact ratio, follow N(SHIFT, I)."""
    x = np.random.default_rng(4).normal(size=(200_000, 2))
    weights = np.exp(true_log_ratio(x))
    kept = x[accept_by_weight(weights, np.random.default_rng(5))]
    assert len(kept) == pytest.approx(len(x) * weights.mean() / weights.max(), rel=0.05)
    np.testing.assert_allclose(kept.mean(axis=0), SHIFT, atol=0.03)
    np.testing.assert_allclose(kept.std(axis=0), [1.0, 1.0], atol=0.03)


def test_rejection_below_the_largest_weight_counts_what_it_under_keeps(caplog):
    weights = np.array([0.5, 1.0, 2.0, 4.0])
    with caplog.at_level(logging.INFO, logger="flowsim.reweighting"):
        keep = accept_by_weight(np.tile(weights, 10_000), np.random.default_rng(6), bound=2.0)
    np.testing.assert_allclose(keep.reshape(-1, 4).mean(axis=0), [0.25, 0.5, 1.0, 1.0], atol=0.02)
    assert "10000 weight(s) above it" in caplog.text
    with pytest.raises(ValueError, match="non-negative weights"):
        accept_by_weight(np.array([1.0, -0.1]), np.random.default_rng(0))


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
    with pytest.raises(ValueError, match=r"reweighting.classifier must be one of \['mlp', 'tree'\], got 'bdt'"):
        ReweightSettings(classifier="bdt")
    with pytest.raises(ValueError, match="reweighting.tree: unknown setting 'depth'"):
        ReweightSettings(classifier="tree", tree={"depth": 3})
    with pytest.raises(ValueError, match=r"samples must be \(n, F\) alike"):
        fit_reweighter(np.zeros((10, 2)), np.zeros((10, 3)))


def test_settings_come_from_the_config_section():
    settings = ReweightSettings.from_section({"enabled": True, "seed": 3, "max_weight": 5.0, "hidden": 8})
    assert (settings.max_weight, settings.hidden, settings.classifier) == (5.0, 8, "tree")
    tree = ReweightSettings.from_section({"classifier": "tree", "tree": {"learning_rate": 0.1}})
    assert (tree.classifier, tree.tree) == ("tree", {"learning_rate": 0.1})


def test_weights_of_another_sample_are_refused(tmp_path):
    from flowsim import io
    from flowsim.stages.evaluate import WeightedOutputs, eval_weighted

    columns = {"a": np.zeros(10), "b": np.ones(10)}
    io.write_events(tmp_path / "mc.root", columns)
    io.write_events(tmp_path / "gen.root", columns)
    io.write_events(tmp_path / "w.root", {"weight": np.ones(9)})
    with pytest.raises(ValueError, match=r"w.root has 9 weights but .*gen.root has 10 events"):
        eval_weighted(
            WeightedOutputs(table=tmp_path / "t.tsv", features=tmp_path / "p.png"),
            test_a=tmp_path / "mc.root", generated=tmp_path / "gen.root", weights=tmp_path / "w.root",
            features=["a", "b"], seed=0,
        )  # fmt: skip
    assert not (tmp_path / "t.tsv").exists()
