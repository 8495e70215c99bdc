"""Templates filled on the fly equal the templates of the stored, scored sample of the same seed."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from flowsim import io
from flowsim.analysis.filling import fill_from_chunks
from flowsim.analysis.selection import read_selected
from flowsim.analysis.signal_classifier import score_file
from flowsim.analysis.templates import make_template, uniform_edges
from flowsim.classifier import MLPClassifier
from flowsim.data.scaling import fit_scaler
from flowsim.flows import build_flow
from flowsim.metrics.amplification import quantile_edges
from flowsim.sampling import GeneratedChunks, generate_to_root

FEATURES = ("lepton_pt", "m_bb", "jet1_eta")
EDGES = {"score": uniform_edges(0.3, 1.0, 12), "m_bb": uniform_edges(0.0, 3.0, 10)}
CUT = 0.3


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    x = np.stack([rng.exponential(1.0, 4000), rng.gamma(3.0, 0.4, 4000), rng.normal(0, 1.5, 4000)], 1)
    scaler = fit_scaler(x, FEATURES, "gauss_rank")
    classifier_scaler = fit_scaler(x, FEATURES, "gauss_rank")
    torch.manual_seed(0)
    flow = build_flow("maf", len(FEATURES), blocks=2, hidden=16, residual_blocks=1).eval()
    classifier = MLPClassifier(len(FEATURES), hidden=8, residual_blocks=1, dropout=0.0).eval()
    return flow, scaler, classifier, classifier_scaler


def _chunks(setup, n: int, chunk_size: int = 700, seed: int = 11) -> GeneratedChunks:
    flow, scaler, _, _ = setup
    return GeneratedChunks(flow, scaler, n, chunk_size=chunk_size, seed=seed, name="test flow")


def test_filling_equals_histogramming_the_stored_scored_sample(tmp_path, setup):
    flow, scaler, classifier, classifier_scaler = setup
    events, scores = tmp_path / "generated.root", tmp_path / "scores.root"
    generate_to_root(flow, scaler, 5000, events, chunk_size=700, seed=11)
    score_file(classifier, classifier_scaler, events, scores, cut=CUT, chunk_size=700)
    filled = fill_from_chunks(_chunks(setup, 5000), classifier, classifier_scaler, cut=CUT, edges=EDGES)
    assert filled.n_generated == 5000 and filled.n_finite == io.root_entries(events)
    assert 0 < filled.n_selected < filled.n_finite  # the cut selects, and rejects
    for observable, edges in EDGES.items():
        values, n_total = read_selected([(events, scores)], observable, CUT)
        stored = make_template(values, n_total, edges)
        on_the_fly = filled.histograms[observable].template(filled.n_finite)
        np.testing.assert_array_equal(on_the_fly.counts, stored.counts)
        assert (on_the_fly.n_total, on_the_fly.n_below, on_the_fly.n_above) == (
            stored.n_total, stored.n_below, stored.n_above
        )
        assert filled.n_selected == len(values)


def test_marginals_equal_histogramming_every_stored_event(tmp_path, setup):
    flow, scaler, classifier, classifier_scaler = setup
    events = tmp_path / "generated.root"
    generate_to_root(flow, scaler, 3000, events, chunk_size=700, seed=11)
    stored = io.read_matrix(events, list(FEATURES))
    marginal_edges = {"lepton_pt": quantile_edges(stored[:, 0], 7), "jet1_eta": uniform_edges(-2.0, 2.0, 5)}
    filled = fill_from_chunks(
        _chunks(setup, 3000), classifier, classifier_scaler, cut=CUT, edges=EDGES, marginal_edges=marginal_edges
    )
    for name, column in (("lepton_pt", 0), ("jet1_eta", 2)):
        expected = make_template(stored[:, column], len(stored), marginal_edges[name])
        h = filled.marginals[name]
        np.testing.assert_array_equal(h.counts, expected.counts)
        assert (h.underflow, h.overflow) == (expected.n_below, expected.n_above)
    assert filled.marginals["lepton_pt"].counts.sum() == filled.n_finite  # quantile edges hold every event
    with pytest.raises(ValueError, match="marginals of \\['met'\\] asked for"):
        fill_from_chunks(_chunks(setup, 10), classifier, classifier_scaler, cut=CUT, edges=EDGES,
                         marginal_edges={"met": uniform_edges(0.0, 1.0, 2)})  # fmt: skip


class _CountingFlow(torch.nn.Module):
    """Standard-normal events; records the largest number of events asked for at once."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.largest = 0

    def sample(self, n, generator=None):
        self.largest = max(self.largest, n)
        return torch.randn(n, len(FEATURES), generator=generator)


def _peak_bytes(setup, n: int) -> tuple[int, int]:
    _, scaler, classifier, classifier_scaler = setup
    flow = _CountingFlow()
    chunks = GeneratedChunks(flow, scaler, n, chunk_size=1000, seed=0)
    tracemalloc.start()
    fill_from_chunks(chunks, classifier, classifier_scaler, cut=CUT, edges=EDGES)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, flow.largest


def test_memory_does_not_grow_with_the_number_of_events(setup):
    small, largest_small = _peak_bytes(setup, 3_000)
    large, largest_large = _peak_bytes(setup, 30_000)
    assert largest_small == largest_large == 1000  # never more than one chunk at once
    # numpy's buffers (traced): the same chunk-sized peak for 10x the events
    assert large < 1.5 * small + 200_000


def test_unknown_observable_and_foreign_classifier_scaler_are_refused(setup):
    flow, scaler, classifier, classifier_scaler = setup
    with pytest.raises(ValueError, match=r"\['pt'\] are neither 'score' nor features"):
        fill_from_chunks(_chunks(setup, 10), classifier, classifier_scaler, cut=CUT, edges={"pt": EDGES["m_bb"]})
    other = fit_scaler(np.random.default_rng(1).normal(size=(100, 3)), ("a", "b", "c"), "gauss_rank")
    with pytest.raises(ValueError, match="the classifier scales"):
        fill_from_chunks(_chunks(setup, 10), classifier, other, cut=CUT, edges=EDGES)
