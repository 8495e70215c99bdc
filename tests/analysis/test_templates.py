"""Templates: efficiencies and binomial errors by hand, out-of-range events, merging, yields."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from flowsim.analysis.templates import (
    EnsembleTemplate,
    Template,
    background_total,
    make_template,
    merge_empty_bins,
    signal_total,
    uniform_edges,
)


def test_make_template_matches_a_hand_computation():
    values = [0.1, 0.2, 0.6, 0.7, 0.75, 1.0]  # 1.0 is the last edge: in the last bin
    t = make_template(values, 20, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(t.counts, [2, 4])
    np.testing.assert_allclose(t.efficiency, [2 / 20, 4 / 20])
    np.testing.assert_allclose(
        t.error, [np.sqrt(0.1 * 0.9 / 20), np.sqrt(0.2 * 0.8 / 20)], rtol=1e-15
    )
    np.testing.assert_allclose(t.yields(1000.0), [100.0, 200.0])
    np.testing.assert_allclose(t.stat_errors(1000.0), 1000.0 * t.error)


def test_out_of_range_and_nonfinite_events_are_counted_and_logged(caplog):
    values = [-0.5, 0.2, 0.4, 1.5, 2.0, np.nan, np.inf]
    with caplog.at_level(logging.INFO, logger="flowsim.analysis.templates"):
        t = make_template(values, 10, [0.0, 0.5, 1.0], name="probe")
    assert (t.n_below, t.n_above, t.n_nonfinite) == (1, 2, 2)
    np.testing.assert_array_equal(t.counts, [2, 0])
    np.testing.assert_allclose(t.efficiency, [0.2, 0.0])  # outside events lower the efficiency
    text = caplog.text
    assert "probe" in text and "3 of 7 selected events outside" in text
    assert "2 selected events with non-finite values" in text


@pytest.mark.parametrize(
    ("edges", "match"),
    [
        ([0.0], "at least two"),
        ([0.0, 0.0], "strictly increasing"),
        ([1.0, 0.5], "strictly increasing"),
        ([0.0, np.nan], "finite"),
    ],
)
def test_bad_edges_are_refused(edges, match):
    with pytest.raises(ValueError, match=match):
        make_template([0.1], 5, edges)


def test_n_before_the_cut_must_cover_the_entries():
    with pytest.raises(ValueError, match="less than the 3"):
        make_template([0.1, 0.2, 0.3], 2, [0.0, 1.0])
    with pytest.raises(ValueError, match="less than the"):
        Template(np.array([0.0, 1.0]), np.array([5]), 4)


@pytest.mark.parametrize(("low", "high", "n"), [(1.0, 1.0, 5), (2.0, 1.0, 5), (0.0, 1.0, 0)])
def test_uniform_edges_refuses_empty_ranges(low, high, n):
    with pytest.raises(ValueError, match="empty or decreasing|positive integer"):
        uniform_edges(low, high, n)


def test_merge_empty_bins_joins_runs_to_the_right_and_trailing_to_the_left(caplog):
    edges = np.arange(7.0)
    pred = Template(edges, np.array([0, 3, 0, 0, 2, 0]), 100)
    other = Template(edges, np.array([1, 1, 1, 1, 1, 1]), 50)
    with caplog.at_level(logging.WARNING):
        p, o = merge_empty_bins(pred, other)
    np.testing.assert_array_equal(p.edges, [0.0, 2.0, 6.0])
    np.testing.assert_array_equal(p.counts, [3, 2])
    np.testing.assert_array_equal(o.counts, [2, 4])
    assert o.n_total == 50 and "4 of 6 bins are empty" in caplog.text
    np.testing.assert_allclose(o.efficiency.sum(), other.efficiency.sum())


def test_merge_empty_bins_refuses_an_empty_prediction():
    t = Template(np.arange(3.0), np.array([0, 0]), 10)
    with pytest.raises(ValueError, match="no event in any bin"):
        merge_empty_bins(t)


def test_totals_are_linear_in_the_luminosity_and_checked():
    assert background_total(10.0, 1000.0) == 1e4
    assert signal_total(10.0, 1000.0, 0.05) == pytest.approx(500.0, rel=1e-15)
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="luminosity must be positive"):
            background_total(bad, 1000.0)
    with pytest.raises(ValueError, match="alpha = S/B must be positive"):
        signal_total(10.0, 1000.0, 0.0)


# --- ensembles -------------------------------------------------------------------------------


def _member(counts, n_total=1000):
    return Template(np.linspace(0.0, 1.0, len(counts) + 1), np.asarray(counts), n_total)


def test_ensemble_pools_counts_and_its_surrogate_error_is_the_spread_less_the_own_noise():
    members = [_member([100, 300, 50]), _member([120, 280, 50]), _member([110, 330, 52])]
    ens = EnsembleTemplate(tuple(members))
    pooled = ens.pooled
    np.testing.assert_array_equal(pooled.counts, [330, 910, 152])
    assert pooled.n_total == 3000
    # by hand: s² with K - 1 = 2, minus the mean binomial variance eff (1 - eff) / N
    eff = np.array([[0.100, 0.300, 0.050], [0.120, 0.280, 0.050], [0.110, 0.330, 0.052]])
    spread = ((eff - eff.mean(0)) ** 2).sum(0) / 2
    own = (eff * (1 - eff) / 1000).mean(0)
    expected = np.sqrt(np.clip(spread - own, 0, None))
    np.testing.assert_allclose(ens.surrogate_error(), expected, rtol=1e-12)
    assert expected[0] > 0 and expected[2] == 0  # bin 2: spread below the binomial noise


def test_identical_members_and_a_single_member_have_no_surrogate_error():
    same = _member([100, 300, 50])
    np.testing.assert_array_equal(EnsembleTemplate((same, same, same)).surrogate_error(), 0.0)
    np.testing.assert_array_equal(EnsembleTemplate((same,)).surrogate_error(), 0.0)
    np.testing.assert_array_equal(EnsembleTemplate((same,)).pooled.counts, same.counts)


def test_ensemble_rebinning_merges_every_member_alike_and_edges_must_agree():
    ens = EnsembleTemplate((_member([100, 0, 50]), _member([90, 3, 40])))
    merged = ens.rebinned([[0], [1, 2]])
    assert [m.counts.tolist() for m in merged.members] == [[100, 50], [90, 43]]
    other = Template(np.linspace(0.0, 2.0, 4), np.array([1, 2, 3]), 10)
    with pytest.raises(ValueError, match="different bin edges"):
        EnsembleTemplate((ens.members[0], other))
    with pytest.raises(ValueError, match="at least one member"):
        EnsembleTemplate(())
