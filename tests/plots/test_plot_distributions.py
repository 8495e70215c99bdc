"""Tests of flowsim.plots.distributions: the numbers behind the panels, input checks, PNGs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from flowsim.data.higgs import DEFAULT_FEATURES, FEATURE_COLUMNS
from flowsim.metrics.distances import DistanceRow, distance_table
from flowsim.plots import distributions as D

FEATURES = ["lepton_pt", "lepton_eta", "met", "m_bb", "m_wwbb"]


def _events(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    """Positive, long-tailed 'momenta' and Gaussian 'etas' in the column order of FEATURES."""
    x = np.exp(0.4 * scale * rng.normal(size=(n, len(FEATURES))))
    x[:, 1] = rng.normal(size=n)
    return x


# ---------------------------------------------------------------------------------------------
# labels


def test_feature_label_covers_all_branches():
    assert list(D.FEATURE_LABELS) == list(FEATURE_COLUMNS)  # all 28, file order
    assert D.feature_label("lepton_pt") == "lepton $p_T$ [a.u.]"
    assert D.feature_label("m_bb") == r"$m_{b\bar{b}}$ [a.u.]"
    assert D.feature_label("m_lv", unit=False) == r"$m_{\ell\nu}$"
    assert D.feature_label("jet3_eta") == r"jet 3 $\eta$"  # dimensionless: no unit
    for name in FEATURE_COLUMNS:
        has_unit = name.endswith("_pt") or name.startswith("m_") or name == "met"
        assert D.feature_label(name).endswith("[a.u.]") == has_unit, name
    assert D.feature_label("some_other") == "some_other"


# ---------------------------------------------------------------------------------------------
# histogram and ratio numbers


def test_normalised_hist_by_hand():
    x = np.array([0.5, 1.5, 1.5, 2.5, 3.0, -1.0, 5.0])  # 3.0 is the closed last edge
    edges = np.array([0.0, 1.0, 2.0, 4.0])  # unequal widths 1, 1, 2
    h = D.normalised_hist(x, edges)
    n = 7  # normalised to all events, the two outside included
    np.testing.assert_allclose(h.density, [1 / n, 2 / n, 2 / (n * 2)])
    np.testing.assert_allclose(h.error, [1 / n, math.sqrt(2) / n, math.sqrt(2) / (n * 2)])
    assert (h.underflow, h.overflow, h.total) == (1, 1, 7.0)
    # integral = fraction inside the binning
    assert np.sum(h.density * np.diff(edges)) == pytest.approx(5 / 7)


def test_normalised_hist_weighted_sqrt_sum_w2():
    x = np.array([0.2, 0.7, 1.5, 9.0])
    w = np.array([2.0, 3.0, 0.5, 1.0])
    h = D.normalised_hist(x, np.array([0.0, 1.0, 2.0]), weights=w)
    total = w.sum()  # 6.5, the overflow event's weight included
    np.testing.assert_allclose(h.density, [5.0 / total, 0.5 / total])
    np.testing.assert_allclose(h.error, [math.sqrt(4 + 9) / total, 0.5 / total])
    assert h.overflow == 1 and h.total == pytest.approx(6.5)


def test_ratio_with_errors_by_hand_and_empty_bins_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings either
        r = D.ratio_with_errors(num=[2.0, 0.0, 1.0, 0.0], num_err=[0.2, 0.0, 0.1, 0.0],
                                den=[1.0, 4.0, 0.0, 0.0], den_err=[0.1, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(r.ratio[:2], [2.0, 0.0])
    np.testing.assert_allclose(r.error_num[:2], [0.2, 0.0])
    np.testing.assert_allclose(r.error_den[:2], [2.0 * 0.1 / 1.0, 0.0])
    np.testing.assert_allclose(r.error[:2], [math.hypot(0.2, 0.2), 0.0])
    for a in r:
        assert np.isnan(a[2:]).all()  # empty denominator: NaN, never inf
        assert not np.isinf(a).any()


def test_ratio_with_errors_shape_mismatch():
    with pytest.raises(ValueError, match="equal shapes"):
        D.ratio_with_errors([1.0, 2.0], [0.1, 0.1], [1.0], [0.1])


def test_compare_histograms_matches_hand_computation(rng):
    mc = rng.normal(size=400)
    gen = rng.normal(size=300)
    w = rng.uniform(0.5, 1.5, 300)
    edges = np.linspace(-2, 2, 9)
    comp = D.compare_histograms(mc, gen, edges, weights=w)
    n_mc, _ = np.histogram(mc, edges)
    s_w, _ = np.histogram(gen, edges, weights=w)
    s_w2, _ = np.histogram(gen, edges, weights=w**2)
    width = 0.5
    m, g = n_mc / (400 * width), s_w / (w.sum() * width)
    sm, sg = np.sqrt(n_mc) / (400 * width), np.sqrt(s_w2) / (w.sum() * width)
    np.testing.assert_allclose(comp.ratio.ratio, g / m)
    np.testing.assert_allclose(comp.ratio.error, (g / m) * np.sqrt((sg / g) ** 2 + (sm / m) ** 2))
    assert comp.mc.underflow + comp.mc.overflow == np.count_nonzero(np.abs(mc) > 2)


def test_tail_edges_are_mc_quantiles():
    mc = np.arange(10001.0)
    assert D.tail_edges(mc) == (5.0, 9995.0)  # the 0.05% and 99.95% quantiles
    rng = np.random.default_rng(3)
    x = rng.exponential(size=5000)
    assert D.tail_edges(x) == tuple(np.quantile(x, [0.0005, 0.9995]))
    with pytest.raises(ValueError, match="fraction"):
        D.tail_edges(x, fraction=1.5)


def test_default_binning_is_wider_than_the_tail_markers(rng):
    x = rng.exponential(size=50_000)
    e = D.feature_edges(x)
    lo, hi = D.tail_edges(x)
    assert e.size == D.DEFAULT_N_BINS + 1
    assert e[0] < lo < hi < e[-1]  # so the markers (and the tail) are inside the plot
    np.testing.assert_allclose(D.feature_edges(x, bins=[0.0, 1.0, 3.0]), [0, 1, 3])
    assert D.feature_edges(x, bins=10).size == 11


# ---------------------------------------------------------------------------------------------
# 1-D plots


def test_plot_feature_comparison_png_and_counts(tmp_path, rng, check_png):
    mc = np.exp(0.4 * rng.normal(size=3000))
    gen = np.concatenate((np.exp(0.4 * rng.normal(size=2993)), np.full(7, 1e3)))
    comp = D.plot_feature_comparison(mc, gen, "lepton_pt", tmp_path / "a.png")
    check_png(tmp_path / "a.png")
    assert comp.gen.overflow >= 7  # far out of range: counted, not dropped
    assert comp.gen.total == 3000
    w = rng.uniform(0.5, 2.0, gen.size)
    comp_w = D.plot_feature_comparison(mc, gen, "lepton_pt", tmp_path / "sub" / "b.png",
                                       log=True, weights=w, bins=30)
    check_png(tmp_path / "sub" / "b.png")
    assert comp_w.edges.size == 31
    assert comp_w.gen.total == pytest.approx(w.sum())


def test_plot_feature_comparison_bad_input(tmp_path):
    with pytest.raises(ValueError, match="mc is empty"):
        D.plot_feature_comparison([], [1.0, 2.0], "met", tmp_path / "x.png")
    with pytest.raises(ValueError, match="generated is empty"):
        D.plot_feature_comparison([1.0, 2.0], [], "met", tmp_path / "x.png")
    with pytest.raises(ValueError, match="non-finite"):
        D.plot_feature_comparison([1.0, 2.0], [1.0, np.nan], "met", tmp_path / "x.png")
    with pytest.raises(ValueError, match="weights"):
        D.plot_feature_comparison([1.0, 2.0], [1.0, 2.0], "met", tmp_path / "x.png",
                                  weights=[1.0])
    with pytest.raises(ValueError, match="edges"):
        D.plot_feature_comparison([1.0, 2.0], [1.0, 2.0], "met", tmp_path / "x.png",
                                  bins=[1.0, 0.0])
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("log", [False, True])
def test_plot_feature_grid(tmp_path, rng, check_png, log):
    mc, gen = _events(rng, 3000), _events(rng, 2500, scale=1.05)
    comps = D.plot_feature_grid(mc, gen, FEATURES, tmp_path / "grid.png", log=log, ncols=3)
    check_png(tmp_path / "grid.png", min_kb=60)
    assert len(comps) == len(FEATURES)
    np.testing.assert_allclose(comps[3].edges, D.feature_edges(mc[:, 3]))


@pytest.mark.parametrize(("ncols", "gen_label"), [
    (1, "generated"), (2, "generated"), (4, "generated"),
    (4, "a run with a label as long as this one, " * 3),  # too long for one legend row
])
def test_plot_feature_grid_fits_its_canvas(tmp_path, rng, monkeypatch, ncols, gen_label):
    """The grid is saved uncropped, so its own margins must hold every label and the legend."""
    boxes = {}

    def measure(fig, path, **kwargs):
        renderer = fig.canvas.get_renderer()
        fig.canvas.draw()
        boxes["figure"] = fig.bbox
        boxes["axes"] = [ax.get_tightbbox(renderer) for ax in fig.axes]
        (legend,) = fig.legends  # the ones that did not fit were removed
        boxes["legend"] = legend.get_window_extent(renderer)

    monkeypatch.setattr(D, "save_figure", measure)
    mc, gen = _events(rng, 2000), _events(rng, 2000, scale=1.05)
    D.plot_feature_grid(mc, gen, FEATURES, tmp_path / "grid.png", log=True, ncols=ncols,
                        gen_label=gen_label)
    canvas = boxes["figure"].padded(1.0)  # one pixel of rounding
    for box in [*boxes["axes"], boxes["legend"]]:
        assert canvas.contains(box.x0, box.y0) and canvas.contains(box.x1, box.y1), box
    assert not any(boxes["legend"].overlaps(box) for box in boxes["axes"])


def test_plot_feature_grid_bad_input(tmp_path, rng):
    mc = _events(rng, 100)
    with pytest.raises(ValueError, match="generated has 4 columns but 5 features"):
        D.plot_feature_grid(mc, mc[:, :4], FEATURES, tmp_path / "g.png")
    with pytest.raises(ValueError, match="mc is empty"):
        D.plot_feature_grid(mc[:0], mc, FEATURES, tmp_path / "g.png")
    with pytest.raises(ValueError, match="not unique"):
        D.plot_feature_grid(mc, mc, ["met"] * 5, tmp_path / "g.png")
    with pytest.raises(ValueError, match="features is empty"):
        D.plot_feature_grid(mc, mc, [], tmp_path / "g.png")


def test_plot_all_features(tmp_path, rng, check_png):
    mc, gen = _events(rng, 1000)[:, :2], _events(rng, 1000)[:, :2]
    paths = D.plot_all_features(mc, gen, FEATURES[:2], tmp_path, log=True)
    assert [p.name for p in paths] == ["lepton_pt_log.png", "lepton_eta_log.png"]
    for p in paths:
        check_png(p)


# ---------------------------------------------------------------------------------------------
# corner


def test_average_ranks_ties():
    np.testing.assert_allclose(D._average_ranks(np.array([3.0, 1.0, 3.0, 2.0])),
                               [3.5, 1.0, 3.5, 2.0])


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_select_pairs_finds_planted_correlation(rng, method):
    x = rng.normal(size=(2000, 6))
    x[:, 4] = np.exp(x[:, 1]) + 0.3 * rng.normal(size=2000)  # strong, monotone, long-tailed
    x[:, 5] = -x[:, 2] + 1.0 * rng.normal(size=2000)  # weaker, negative
    x[:, 3] = 7.0  # a constant column must not break anything
    pairs = D.select_pairs(x, 2, method=method)
    assert (pairs[0].i, pairs[0].j) == (1, 4) and pairs[0].rho > 0.6
    assert (pairs[1].i, pairs[1].j) == (2, 5) and pairs[1].rho < -0.5
    assert len(D.select_pairs(x, 100)) == 15  # all 6·5/2 pairs at most
    with pytest.raises(ValueError, match="n_pairs"):
        D.select_pairs(x, 0)
    with pytest.raises(ValueError, match="method"):
        D.select_pairs(x, 1, method="kendall")


def test_hdr_levels_by_hand():
    h = np.array([[4.0, 3.0], [2.0, 1.0]])
    np.testing.assert_allclose(D.hdr_levels(h, [0.4, 0.7, 0.9, 1.0]), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(D.hdr_levels(h, [0.5]), [3.0])  # 4 alone holds only 40%
    # fractions of a larger total: 99% is out of reach of a grid holding 10 of 20 events
    np.testing.assert_allclose(D.hdr_levels(h, [0.2, 0.99], total=20.0), [4.0])
    assert D.hdr_levels(np.zeros((2, 2)), [0.5]).size == 0


def test_plot_copula_pairs(tmp_path, rng, check_png):
    from flowsim.metrics.copula import copula_pair_table

    mc, gen, mc_b = _events(rng, 4000), _events(rng, 4000, scale=1.3), _events(rng, 4000)
    rows = copula_pair_table(mc, gen, mc_b, FEATURES)
    D.plot_copula_pairs(rows, FEATURES, tmp_path / "copula_pairs.png")
    check_png(tmp_path / "copula_pairs.png", min_kb=20)
    with pytest.raises(ValueError, match="not among"):
        D.plot_copula_pairs(rows, FEATURES[:3], tmp_path / "c.png")


def test_plot_corner(tmp_path, rng, check_png):
    mc, gen = _events(rng, 3000), _events(rng, 3000)
    mc[:, 4] = mc[:, 0] * 2 + 0.05 * rng.normal(size=3000)
    gen[:, 4] = gen[:, 0] * 2 + 0.05 * rng.normal(size=3000)
    pairs = D.plot_corner(mc, gen, FEATURES, tmp_path / "corner.png", n_pairs=4,
                          max_points=2000, n_bins=25)
    check_png(tmp_path / "corner.png", min_kb=40)
    assert (pairs[0].i, pairs[0].j) == (0, 4)
    assert len(pairs) == 4
    with pytest.raises(ValueError, match="at least 2 features"):
        D.plot_corner(mc[:, :1], gen[:, :1], FEATURES[:1], tmp_path / "c.png")


# ---------------------------------------------------------------------------------------------
# distance summary


def test_plot_distance_summary(tmp_path, rng, check_png):
    a, g, b = _events(rng, 800), _events(rng, 1600, scale=1.2), _events(rng, 800)
    rows = distance_table(a, g, b, FEATURES, n_bins=20, n_resamples=3)
    D.plot_distance_summary(rows, tmp_path / "d.png")
    check_png(tmp_path / "d.png", min_kb=40)
    # a single draw (std NaN) and a metric that is not one of the four still plot
    rows1 = [r._replace(std=float("nan")) for r in rows] + [DistanceRow("met", "other", 1, 0, 1)]
    D.plot_distance_summary(rows1, tmp_path / "d1.png")
    check_png(tmp_path / "d1.png")


def test_plot_distance_summary_bad_input(tmp_path):
    with pytest.raises(ValueError, match="rows is empty"):
        D.plot_distance_summary([], tmp_path / "d.png")
    with pytest.raises(ValueError, match="only 'mean' rows"):
        D.plot_distance_summary([DistanceRow("mean", "kl", 1, 0, 1)], tmp_path / "d.png")
    row = DistanceRow("met", "kl", 1, 0, 1)
    with pytest.raises(ValueError, match="repeat"):
        D.plot_distance_summary([row, row], tmp_path / "d.png")


def test_default_features_all_have_labels():
    assert all(D.feature_label(f) != f for f in DEFAULT_FEATURES)
