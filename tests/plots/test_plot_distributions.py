"""Tests of the distribution plots (flowsim.plots.distributions, .pairs, .labels): input checks, PNGs."""

from __future__ import annotations

import numpy as np
import pytest

from flowsim.data.higgs import DEFAULT_FEATURES, FEATURE_COLUMNS
from flowsim.metrics.distances import DistanceRow, distance_table
from flowsim.metrics.histograms import feature_edges
from flowsim.plots import distributions as D
from flowsim.plots import labels as L
from flowsim.plots import pairs as P

FEATURES = ["lepton_pt", "lepton_eta", "met", "m_bb", "m_wwbb"]


def _events(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    """Positive, long-tailed 'momenta' and Gaussian 'etas' in the column order of FEATURES."""
    x = np.exp(0.4 * scale * rng.normal(size=(n, len(FEATURES))))
    x[:, 1] = rng.normal(size=n)
    return x


# ---------------------------------------------------------------------------------------------
# labels


def test_feature_label_covers_all_branches():
    assert list(L.FEATURE_LABELS) == list(FEATURE_COLUMNS)  # all 28, file order
    assert L.feature_label("lepton_pt") == "lepton $p_T$ [a.u.]"
    assert L.feature_label("m_bb") == r"$m_{b\bar{b}}$ [a.u.]"
    assert L.feature_label("m_lv", unit=False) == r"$m_{\ell\nu}$"
    assert L.feature_label("jet3_eta") == r"jet 3 $\eta$"  # dimensionless: no unit
    for name in FEATURE_COLUMNS:
        has_unit = name.endswith("_pt") or name.startswith("m_") or name == "met"
        assert L.feature_label(name).endswith("[a.u.]") == has_unit, name
    assert L.feature_label("some_other") == "some_other"


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
    np.testing.assert_allclose(comps[3].edges, feature_edges(mc[:, 3]))


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
# feature pairs


def test_plot_copula_pairs(tmp_path, rng, check_png):
    from flowsim.metrics.copula import copula_pair_table

    mc, gen, mc_b = _events(rng, 4000), _events(rng, 4000, scale=1.3), _events(rng, 4000)
    rows = copula_pair_table(mc, gen, mc_b, FEATURES)
    P.plot_copula_pairs(rows, FEATURES, tmp_path / "copula_pairs.png")
    check_png(tmp_path / "copula_pairs.png", min_kb=20)
    with pytest.raises(ValueError, match="not among"):
        P.plot_copula_pairs(rows, FEATURES[:3], tmp_path / "c.png")


def test_plot_corner(tmp_path, rng, check_png):
    mc, gen = _events(rng, 3000), _events(rng, 3000)
    mc[:, 4] = mc[:, 0] * 2 + 0.05 * rng.normal(size=3000)
    gen[:, 4] = gen[:, 0] * 2 + 0.05 * rng.normal(size=3000)
    pairs = P.plot_corner(mc, gen, FEATURES, tmp_path / "corner.png", n_pairs=4,
                          max_points=2000, n_bins=25)
    check_png(tmp_path / "corner.png", min_kb=40)
    assert (pairs[0].i, pairs[0].j) == (0, 4)
    assert len(pairs) == 4
    with pytest.raises(ValueError, match="at least 2 features"):
        P.plot_corner(mc[:, :1], gen[:, :1], FEATURES[:1], tmp_path / "c.png")


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
    assert all(L.feature_label(f) != f for f in DEFAULT_FEATURES)
