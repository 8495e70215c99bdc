"""Chunk-filled histograms and the template ROOT file, against numpy and uproot's own reading."""

from __future__ import annotations

import numpy as np
import pytest
import uproot

from flowsim.analysis.template_files import (
    CUTFLOW,
    MARGINALS,
    BinnedCounts,
    read_templates,
    write_templates,
)  # fmt: skip
from flowsim.analysis.templates import make_template, uniform_edges

EDGES = uniform_edges(0.0, 2.0, 8)


def _values(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(1.0, 0.8, n)
    x[:3] = [0.0, 2.0, 2.0]  # on the edges: the first bin and the last (closed) bin
    x[3] = np.nan
    return x.astype(np.float32)


def test_filling_chunk_by_chunk_equals_one_histogram_of_all():
    x = _values(5000, 1)
    counts = BinnedCounts(EDGES)
    for chunk in np.array_split(x, 7):
        counts.fill(chunk)
    expected = make_template(x, 6000, EDGES)
    np.testing.assert_array_equal(counts.counts, expected.counts)
    assert (counts.underflow, counts.overflow, counts.nonfinite) == (
        expected.n_below, expected.n_above, expected.n_nonfinite
    )
    inside = x[np.isfinite(x) & (x >= 0) & (x <= 2)].astype(float)
    assert counts.sum_x == pytest.approx(inside.sum(), rel=1e-12)
    assert counts.template(6000).counts.sum() == np.histogram(inside, EDGES)[0].sum()


def _filled(seed: int = 1) -> dict[str, BinnedCounts]:
    out = {}
    for name, shift in (("score", 0.0), ("m_bb", 0.3)):
        h = BinnedCounts(EDGES)
        h.fill(_values(3000, seed) + np.float32(shift))
        out[name] = h
    return out


def test_template_file_round_trip_and_root_histograms(tmp_path):
    path = tmp_path / "templates.root"
    histograms = _filled()
    write_templates(path, histograms, n_generated=4000, n_finite=3990, n_selected=3000)
    back = read_templates(path)
    assert (back.n_generated, back.n_finite, back.n_selected) == (4000, 3990, 3000)
    for name, h in histograms.items():
        t = back[name]
        np.testing.assert_array_equal(t.counts, h.counts)
        np.testing.assert_array_equal(t.edges, EDGES)
        assert (t.n_total, t.n_below, t.n_above, t.n_nonfinite) == (3990, h.underflow, h.overflow, h.nonfinite)
    with uproot.open(path) as f:
        hist = f["m_bb"]
        assert hist.classname == "TH1D"
        values = hist.values(flow=True)
        # unweighted: the sum of squared weights equals the sum of weights, bin by bin
        np.testing.assert_array_equal(hist.variances(flow=True), values)
        assert values[0] == histograms["m_bb"].underflow and values[-1] == histograms["m_bb"].overflow
        assert f[CUTFLOW].values().tolist() == [4000, 3990, 3000]
    with pytest.raises(KeyError, match="no template of 'pt'"):
        back["pt"]


def test_marginals_before_the_cut_round_trip_in_their_own_directory(tmp_path):
    path = tmp_path / "templates.root"
    x = _values(3990, 5)
    lepton = BinnedCounts(EDGES)
    lepton.fill(x)
    write_templates(path, _filled(), n_generated=4000, n_finite=3990, n_selected=3000, marginals={"lepton_pt": lepton})
    back = read_templates(path)
    assert sorted(back.templates) == ["m_bb", "score"]  # the directory is not an observable
    m = back.marginals["lepton_pt"]
    expected = make_template(x, 3990, EDGES)
    np.testing.assert_array_equal(m.counts, expected.counts)
    assert (m.n_total, m.n_below, m.n_above, m.n_nonfinite) == (
        3990, expected.n_below, expected.n_above, expected.n_nonfinite
    )
    with uproot.open(path) as f:
        assert f[f"{MARGINALS}/lepton_pt"].classname == "TH1D"
    with pytest.raises(ValueError, match="marginal 'lepton_pt' holds 3990 entries but 3991 events are finite"):
        write_templates(path, _filled(), n_generated=4000, n_finite=3991, n_selected=3000,
                        marginals={"lepton_pt": lepton})  # fmt: skip
    assert read_templates(path).marginals.keys() == {"lepton_pt"}  # the old file stays
    write_templates(path, _filled(), n_generated=4000, n_finite=3990, n_selected=3000)
    assert read_templates(path).marginals == {}


def test_inconsistent_counts_are_refused_and_leave_no_file(tmp_path):
    path = tmp_path / "templates.root"
    with pytest.raises(ValueError, match="holds 3000 entries but 2999"):
        write_templates(path, _filled(), n_generated=4000, n_finite=3990, n_selected=2999)
    with pytest.raises(ValueError, match="must not grow"):
        write_templates(path, _filled(), n_generated=10, n_finite=3990, n_selected=3000)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_weighted_histograms_are_refused_by_name(tmp_path):
    path = tmp_path / "weighted.root"
    write_templates(path, _filled(), n_generated=4000, n_finite=3990, n_selected=3000)
    with uproot.open(path) as f:
        cutflow = f[CUTFLOW]
    weighted = (np.array([1.5, 2.0, 0.5, 3.0]), EDGES[:5])
    with uproot.recreate(path) as f:
        f[CUTFLOW] = cutflow
        f["score"] = weighted
    with pytest.raises(ValueError, match=r"weighted\.root: histogram 'score' is weighted"):
        read_templates(path)


def test_a_file_without_cut_flow_is_not_a_template_file(tmp_path):
    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f["score"] = (np.array([1.0, 2.0]), np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="no 'cutflow' histogram"):
        read_templates(path)
