"""Event weights: Kish's effective size, the checks, the normalisation and the summary."""

from __future__ import annotations

import numpy as np
import pytest

from flowsim.weights import WeightError, check_weights, effective_sample_size, normalised, weight_summary


def test_effective_sample_size_by_hand():
    assert effective_sample_size(np.ones(7)) == pytest.approx(7.0, rel=1e-15)
    assert effective_sample_size([1.0, 2.0, 3.0]) == pytest.approx(36 / 14, rel=1e-15)
    assert effective_sample_size([2.0, -1.0]) == pytest.approx(1 / 5, rel=1e-15)  # (2 − 1)² / (4 + 1)
    assert effective_sample_size(np.zeros(0)) == 0.0
    w = np.random.default_rng(0).exponential(size=500)
    assert effective_sample_size(1e-3 * w) == pytest.approx(effective_sample_size(w), rel=1e-12)
    assert effective_sample_size(w) <= 500  # Cauchy–Schwarz


def test_check_weights_passes_good_weights_and_none():
    assert check_weights(None, 3, name="x") is None
    w = check_weights(np.array([1, -2, 4], dtype=np.int32), 3, name="x")
    assert w.dtype == np.float64 and w.tolist() == [1.0, -2.0, 4.0]


@pytest.mark.parametrize(
    "weights, match",
    [
        (np.ones(2), r"mc.root: expected 3 event weights, got shape \(2,\)"),
        (np.ones((3, 1)), r"expected 3 event weights, got shape \(3, 1\)"),
        ([1.0, np.nan, np.inf], r"2 non-finite event weight\(s\), the first at event 1 \(nan\)"),
        ([1.0, -2.0, 0.5], "the event weights sum to -0.5 over 3 events"),
        ([0.0, 0.0, 0.0], "sum to 0 over 3 events"),
    ],
)
def test_check_weights_refuses_bad_weights(weights, match):
    with pytest.raises(WeightError, match=match):
        check_weights(weights, 3, name="mc.root")
    assert issubclass(WeightError, ValueError)


def test_normalised_weights_turn_weighted_means_into_plain_means():
    rng = np.random.default_rng(1)
    w, f = rng.normal(1.0, 2.0, 300), rng.normal(size=300)
    w[0] += 1000.0  # a positive sum
    assert np.mean(normalised(w) * f) == pytest.approx(np.sum(w * f) / np.sum(w), rel=1e-12)
    assert np.mean(normalised(w)) == pytest.approx(1.0, rel=1e-12)


def test_weight_summary_counts_and_logs(caplog):
    with caplog.at_level("INFO", logger="flowsim.weights"):
        summary = weight_summary(np.array([2.0, -1.0, 1.0, 1.0]), name="test_a")
    assert summary == {
        "events": 4,
        "sum_w": 3.0,
        "sum_w2": 7.0,
        "effective_events": pytest.approx(9 / 7),
        "negative": 1,
    }
    assert caplog.records[-1].getMessage().startswith("test_a: 4 weighted events, Σw = 3")
