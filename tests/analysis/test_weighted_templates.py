"""Weighted MC templates (per-event weights, some negative) against independent computations.

Exactness: all-ones weights give bit-identical counts, N and efficiencies (sums of ones are exact
in float64), and errors equal to 1e-12 (the weighted formula rounds differently from the binomial
one); integer weights give the efficiencies of repeated events exactly.
"""

from __future__ import annotations

import logging

import numpy as np
import pyhf
import pytest

from flowsim import io
from flowsim.analysis.config import AnalysisConfig
from flowsim.analysis.likelihood import BinnedLikelihood
from flowsim.analysis.model import POI, SHAPESYS, build_workspace, channel_yields, staterror_name
from flowsim.analysis.scan import scan_luminosity
from flowsim.analysis.selection import (
    SCORE_BRANCH,
    read_selected,
    read_selected_events,
    read_selected_weights,
    selected_template,
)  # fmt: skip
from flowsim.analysis.templates import (
    EnsembleTemplate,
    Template,
    background_total,
    empty_bin_groups,
    make_template,
    merge_empty_bins,
)  # fmt: skip
from flowsim.weights import WeightError
from tests.analysis.synthetic import EDGES, pyhf_model


def _in_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(K, n) membership by explicit comparisons, ``[a, b)`` and the last bin closed."""
    rows = [(values >= a) & (values < b) for a, b in zip(edges[:-1], edges[1:])]
    rows[-1] |= values == edges[-1]
    return np.array(rows)


def _sample(seed: int, n: int, efficiency: float, draw: str, negative: float = 0.1):
    """Values and weights of ``n`` events before the cut and which pass it; weights of both signs."""
    rng = np.random.default_rng(seed)
    values = rng.normal(1.6, 0.3, n) if draw == "bump" else rng.exponential(0.7, n)
    weights = np.where(rng.random(n) < negative, -1.0, 1.0) * rng.uniform(0.5, 1.5, n)
    return values, weights, rng.random(n) < efficiency


def _weighted(seed: int, n: int, efficiency: float, draw: str, *, name: str = "sample") -> Template:
    values, w, sel = _sample(seed, n, efficiency, draw)
    return make_template(values[sel], n, EDGES, name=name, weights=w[sel], all_weights=w)


def _by_hand(values: np.ndarray, w: np.ndarray, sel: np.ndarray, edges: np.ndarray):
    """Efficiency and error of the module docstring's formula, and the delta method written per
    event: var(eff_i) = Σ_j w_j² (1[j in i] - eff_i)² / W² over every event j before the cut."""
    inside = _in_bins(values, edges) & sel
    total, total2 = w.sum(), np.sum(w**2)
    eff = (inside * w).sum(axis=1) / total
    s2 = (inside * w**2).sum(axis=1)
    formula = np.sqrt(s2 * (1 - eff) ** 2 + (total2 - s2) * eff**2) / total
    delta = np.sqrt([np.sum(w**2 * (row - e) ** 2) for row, e in zip(inside, eff)]) / total
    return eff, formula, delta, s2


def test_weighted_efficiency_and_error_against_numpy():
    values, w, sel = _sample(1, 20_000, 0.3, "falling")
    t = make_template(values[sel], values.size, EDGES, weights=w[sel], all_weights=w)
    assert t.weighted and t.n_total == pytest.approx(w.sum(), rel=1e-13)
    assert t.sumw2_total == pytest.approx(np.sum(w**2), rel=1e-13)
    hist_w, _ = np.histogram(values[sel], EDGES, weights=w[sel])
    hist_w2, _ = np.histogram(values[sel], EDGES, weights=w[sel] ** 2)
    np.testing.assert_allclose(t.counts, hist_w, rtol=1e-12)
    np.testing.assert_allclose(t.sumw2, hist_w2, rtol=1e-12)
    np.testing.assert_allclose(t.efficiency, hist_w / w.sum(), rtol=1e-12)
    eff, formula, delta, _ = _by_hand(values, w, sel, EDGES)
    np.testing.assert_allclose(t.efficiency, eff, rtol=1e-12)
    np.testing.assert_allclose(formula, delta, rtol=1e-10)  # the formula is the delta method
    np.testing.assert_allclose(t.error, formula, rtol=1e-12)
    np.testing.assert_allclose(t.stat_errors(123.0), 123.0 * formula, rtol=1e-12)
    assert t.n_effective == pytest.approx(w.sum() ** 2 / np.sum(w**2), rel=1e-12)


def test_integer_weights_give_the_efficiency_of_repeated_events():
    rng = np.random.default_rng(2)
    values = rng.exponential(0.7, 5000)
    w = rng.integers(1, 4, values.size).astype(float)
    sel = rng.random(values.size) < 0.4
    weighted = make_template(values[sel], values.size, EDGES, weights=w[sel], all_weights=w)
    n_rep = int(w.sum())
    repeated = make_template(np.repeat(values[sel], w[sel].astype(int)), n_rep, EDGES)
    np.testing.assert_array_equal(weighted.counts, repeated.counts)
    assert weighted.n_total == repeated.n_total == n_rep
    np.testing.assert_array_equal(weighted.efficiency, repeated.efficiency)
    # the error is not that of repeated *independent* events: a weight-2 event is one event
    # counted twice (variance 4, not 2), so the weighted error is larger
    _, formula, _, _ = _by_hand(values, w, sel, EDGES)
    np.testing.assert_allclose(weighted.error, formula, rtol=1e-12)
    assert np.all(weighted.error > repeated.error)


def test_unit_weights_reproduce_the_unweighted_template(caplog):
    rng = np.random.default_rng(3)
    values = np.r_[rng.exponential(0.7, 3000), -1.0, 7.0, np.nan]  # below, above, non-finite
    n_total = 9000
    plain = make_template(values, n_total, EDGES)
    ones = make_template(values, n_total, EDGES, weights=np.ones(values.size), all_weights=np.ones(n_total))
    assert not plain.weighted and ones.weighted
    assert plain.counts.dtype == np.int64 and isinstance(plain.n_total, int) and plain.sumw2 is None
    np.testing.assert_array_equal(ones.counts, plain.counts)  # exact
    assert ones.n_total == plain.n_total and ones.n_effective == plain.n_effective
    np.testing.assert_array_equal(ones.efficiency, plain.efficiency)  # exact
    np.testing.assert_allclose(ones.error, plain.error, rtol=1e-12)  # rounding differs
    assert (ones.n_below, ones.n_above, ones.n_nonfinite) == (plain.n_below, plain.n_above, 1)
    groups = [[0, 1], [2], [3, 4, 5]]
    np.testing.assert_array_equal(ones.rebinned(groups).efficiency, plain.rebinned(groups).efficiency)
    np.testing.assert_allclose(ones.rebinned(groups).error, plain.rebinned(groups).error, rtol=1e-12)


def test_negative_bins_are_clipped_to_zero_with_a_warning(caplog):
    rng = np.random.default_rng(4)
    values = rng.uniform(0.0, 3.0, 600)
    w = np.ones(values.size)
    w[(values >= 1.0) & (values < 1.5)] = -1.0  # bin 2: only negative weights
    w[:10] = 5.0  # keep the sample's total positive wherever they fall
    sel = np.ones(values.size, bool)
    with caplog.at_level(logging.WARNING, logger="flowsim.analysis.templates"):
        t = make_template(values, values.size, EDGES, name="nlo", weights=w, all_weights=w)
    assert "nlo: 1 of 6 bins have a negative sum of weights (bins [2]" in caplog.text
    assert "set to 0" in caplog.text
    _, _, _, s2 = _by_hand(values, w, sel, EDGES)
    assert t.counts[2] == 0.0 and t.efficiency[2] == 0.0
    assert t.sumw2[2] == pytest.approx(s2[2])  # the bin's Σw² (its error) is kept
    assert t.error[2] == pytest.approx(np.sqrt(s2[2]) / w.sum(), rel=1e-12)
    # the clipped bin is empty for the fit: merged into its right neighbour, or refused
    assert empty_bin_groups(t) == [[0], [1], [2, 3], [4], [5]]
    merged = merge_empty_bins(t)[0]
    assert merged.counts[2] == pytest.approx(t.counts[3]) and merged.sumw2[2] == pytest.approx(s2[2] + s2[3])
    with pytest.raises(ValueError, match=r"bins \[2\] have no background-prediction event"):
        channel_yields(t, t, t, lumi_fb=10.0, alpha=0.05)
    with pytest.raises(ValueError, match=r"bins \[1\] have a negative sum of weights"):
        Template(EDGES[:3], np.array([1.0, -0.5]), 10.0, sumw2=np.ones(2), sumw2_total=10.0)


def test_weighted_template_checks():
    values, w, sel = _sample(5, 1000, 0.5, "falling")
    with pytest.raises(WeightError, match="weights and all_weights"):
        make_template(values[sel], values.size, EDGES, weights=w[sel])
    with pytest.raises(WeightError, match="one per selected value"):
        make_template(values[sel], values.size, EDGES, weights=w, all_weights=w)
    with pytest.raises(WeightError, match=r"s: expected 1000 event weights"):
        make_template(values[sel], values.size, EDGES, name="s", weights=w[sel], all_weights=w[:-1])
    with pytest.raises(WeightError, match="sum to"):
        make_template(values[sel], values.size, EDGES, weights=w[sel], all_weights=-np.abs(w))
    with pytest.raises(ValueError, match="both sumw2"):
        Template(EDGES[:2], np.array([1.0]), 2.0, sumw2=np.ones(1))
    with pytest.raises(ValueError, match="must count every event"):
        Template(EDGES[:3], np.array([1.0, 1.0]), 2.0, sumw2=np.array([1.0, 2.0]), sumw2_total=2.0)


def test_rebinning_a_weighted_template_equals_histogramming_on_the_coarser_bins():
    values, w, sel = _sample(6, 20_000, 0.3, "falling")
    fine = make_template(values[sel], values.size, EDGES, weights=w[sel], all_weights=w)
    groups = [[0], [1, 2], [3, 4, 5]]
    coarse_edges = EDGES[[0, 1, 3, 6]]
    coarse = make_template(values[sel], values.size, coarse_edges, weights=w[sel], all_weights=w)
    merged = fine.rebinned(groups)
    np.testing.assert_array_equal(merged.edges, coarse_edges)
    for attr in ("counts", "sumw2", "efficiency", "error"):
        np.testing.assert_allclose(getattr(merged, attr), getattr(coarse, attr), rtol=1e-12)
    assert merged.n_total == fine.n_total and merged.sumw2_total == fine.sumw2_total


def test_ensembles_pool_weighted_members_and_refuse_mixtures():
    a, b = _weighted(7, 5000, 0.3, "falling"), _weighted(8, 5000, 0.3, "falling")
    pooled = EnsembleTemplate((a, b)).pooled
    assert pooled.weighted
    np.testing.assert_allclose(pooled.efficiency, (a.counts + b.counts) / (a.n_total + b.n_total), rtol=1e-12)
    np.testing.assert_allclose(pooled.sumw2, a.sumw2 + b.sumw2, rtol=1e-12)
    assert pooled.sumw2_total == pytest.approx(a.sumw2_total + b.sumw2_total)
    assert EnsembleTemplate((a, b)).surrogate_error().shape == (6,)
    plain = Template(EDGES, np.ones(6, dtype=int), 100)
    with pytest.raises(ValueError, match="mix weighted and unweighted"):
        EnsembleTemplate((a, plain))


def test_empty_bins_of_several_predictions_weighted_and_not():
    weighted = Template(EDGES, np.array([1.0, 0.0, 2.0, 3.0, 1.0, 0.5]), 20.0, sumw2=np.ones(6), sumw2_total=30.0)
    plain = Template(EDGES, np.array([1, 1, 1, 0, 1, 1]), 10)
    assert empty_bin_groups(weighted, plain) == [[0], [1, 2], [3, 4], [5]]
    assert empty_bin_groups(plain, weighted) == empty_bin_groups(weighted, plain)
    with pytest.raises(ValueError, match="same bin edges"):
        empty_bin_groups(weighted, Template(EDGES + 0.1, np.ones(6, dtype=int), 10))


# --- the fit: staterror, fast likelihood against pyhf ---------------------------------------


@pytest.fixture(scope="module")
def weighted_yields():
    signal = _weighted(10, 10_000, 0.6, "bump", name="signal")
    data = _weighted(11, 40_000, 0.25, "falling", name="test_a")
    prediction = _weighted(12, 40_000, 0.25, "falling", name="test_b")
    return prediction, channel_yields(signal, data, prediction, lumi_fb=30.0, alpha=0.05)


def test_workspace_staterror_of_a_weighted_template(weighted_yields):
    prediction, yields = weighted_yields
    values, w, sel = _sample(12, 40_000, 0.25, "falling")
    n_b = background_total(30.0, 1000.0)
    eff, formula, _, s2 = _by_hand(values, w, sel, EDGES)
    ws = build_workspace(yields)
    background = ws["channels"][0]["samples"][1]
    (stat,) = [m["data"] for m in background["modifiers"] if m["type"] == "staterror"]
    np.testing.assert_allclose(background["data"], n_b * eff, rtol=1e-12)
    # pyhf's absolute staterror: the weighted binomial error scaled to the yield ...
    np.testing.assert_allclose(stat, n_b * formula, rtol=1e-12)
    # ... i.e. sqrt(Σw²) scaled to the yield, (N_B/W) sqrt(S_i), up to the binomial factor
    # sqrt((1 - e)² + (S/S_i - 1) e²) = 1 - O(e)
    poisson = n_b * np.sqrt(s2) / w.sum()
    np.testing.assert_allclose(stat, poisson, rtol=eff.max())
    assert not np.allclose(stat, poisson, rtol=1e-6)
    # and pyhf turns it into the relative width stat_i / B_i of its Gaussian constraint
    model, _ = pyhf_model(ws)
    sigmas = np.asarray(model.config.param_set(staterror_name("signal_region")).sigmas, dtype=float)
    np.testing.assert_allclose(sigmas, formula / eff, rtol=1e-12)
    np.testing.assert_allclose(prediction.error, formula, rtol=1e-12)


def _pars(model, mu, beta, gamma) -> np.ndarray:
    pars = np.asarray(model.config.suggested_init(), dtype=float)
    pars[model.config.par_slice(POI)] = mu
    pars[model.config.par_slice(SHAPESYS)] = beta
    pars[model.config.par_slice(staterror_name("signal_region"))] = gamma
    return pars


def test_fast_likelihood_equals_pyhf_on_a_weighted_workspace(weighted_yields):
    _, yields = weighted_yields
    lik = BinnedLikelihood.from_yields(yields)
    ws = build_workspace(yields)
    model, data = pyhf_model(ws)
    rng = np.random.default_rng(0)
    for _ in range(5):
        mu, beta, gamma = rng.uniform(0, 3), rng.uniform(0.7, 1.3, 6), rng.uniform(0.7, 1.3, 6)
        theirs = -float(model.logpdf(_pars(model, mu, beta, gamma), data)[0])
        assert lik.nll(mu, beta, gamma) == pytest.approx(theirs, rel=1e-12)
    best = lik.fit()
    lik.check_against_pyhf(ws, best)
    pars, twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    assert lik.twice_nll(best) <= float(twice_nll) + 1e-7
    assert lik.twice_nll(best) == pytest.approx(float(twice_nll), abs=1e-5)
    assert best.mu == pytest.approx(float(pars[model.config.par_slice(POI)][0]), abs=2e-3)


def test_scan_of_weighted_templates_runs_and_checks_pyhf():
    signal = _weighted(10, 10_000, 0.6, "bump", name="signal")
    data = _weighted(11, 40_000, 0.25, "falling", name="test_a")
    prediction = _weighted(12, 40_000, 0.25, "falling", name="test_b")
    result = scan_luminosity(signal, data, prediction, alpha=0.05, lumis=[10.0, 300.0], check_pyhf=True)
    assert [p.status for p in result.points] == ["ok", "ok"]
    assert all(np.isfinite(p.mu_hat) and np.isfinite(p.ul_exp) for p in result.points)


# --- MC files with a weight branch -------------------------------------------------------------


def _write_part(path_events, path_scores, x: np.ndarray, score: np.ndarray, weights: np.ndarray | None):
    columns = {"m_bb": x}
    if weights is not None:
        columns[io.WEIGHT] = weights
    io.write_events(path_events, columns)
    io.write_events(path_scores, {SCORE_BRANCH: score})


def test_selected_template_of_weighted_mc_files(tmp_path):
    rng = np.random.default_rng(13)
    config = AnalysisConfig(observables={"m_bb": (0.0, 3.0)}, n_bins=6, cut=0.5)
    parts, xs, scores, ws = [], [], [], []
    for i, n in enumerate((700, 500)):
        x = rng.exponential(0.7, n).astype(np.float32)
        score = rng.random(n).astype(np.float32)
        w = (np.where(rng.random(n) < 0.1, -0.5, 1.0) * rng.integers(1, 5, n)).astype(np.float32)
        parts.append((tmp_path / f"e{i}.root", tmp_path / f"s{i}.root"))
        _write_part(*parts[-1], x, score, w)
        xs.append(x), scores.append(score), ws.append(w.astype(np.float64))
    x, score, w = np.concatenate(xs), np.concatenate(scores), np.concatenate(ws)
    sel = score > 0.5
    t = selected_template(parts, "m_bb", config, "MC test")
    expected = make_template(x[sel], x.size, EDGES, weights=w[sel], all_weights=w)
    assert t.weighted
    for attr in ("counts", "sumw2", "efficiency", "error"):
        np.testing.assert_array_equal(getattr(t, attr), getattr(expected, attr))
    assert (t.n_total, t.sumw2_total) == (w.sum(), np.sum(w**2))
    # the kinematics: the selected events' weights, row for row
    events = read_selected_events(parts, ["m_bb"], 0.5)
    selected_w = read_selected_weights(parts, 0.5)
    np.testing.assert_array_equal(events[:, 0], x[sel])
    np.testing.assert_array_equal(selected_w, w[sel])
    # a part without weights next to weighted ones is refused, naming it
    _write_part(tmp_path / "e2.root", tmp_path / "s2.root", xs[0], scores[0], None)
    mixed = [*parts, (tmp_path / "e2.root", tmp_path / "s2.root")]
    with pytest.raises(WeightError, match=r"MC test: .*e2\.root.* do not"):
        selected_template(mixed, "m_bb", config, "MC test")


def test_selected_template_of_unweighted_files_is_unchanged(tmp_path):
    rng = np.random.default_rng(14)
    config = AnalysisConfig(observables={"m_bb": (0.0, 3.0)}, n_bins=6, cut=0.5)
    x, score = rng.exponential(0.7, 900).astype(np.float32), rng.random(900).astype(np.float32)
    parts = [(tmp_path / "e.root", tmp_path / "s.root")]
    _write_part(*parts[0], x, score, None)
    t = selected_template(parts, "m_bb", config, "MC test")
    values, n_total = read_selected(parts, "m_bb", 0.5)
    expected = make_template(values, n_total, EDGES)
    assert not t.weighted and t.counts.dtype == np.int64 and t.n_total == 900
    np.testing.assert_array_equal(t.counts, expected.counts)
    np.testing.assert_array_equal(t.error, expected.error)
    assert read_selected_weights(parts, 0.5) is None
