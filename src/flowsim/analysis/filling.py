r"""Templates from generated events without event files: sample, score, cut and histogram on the fly.

Each chunk of :class:`~flowsim.sampling.GeneratedChunks` (the flow's events in data units, as
``sample_flow`` would store them) is scored by the signal classifier, the events with
``score > cut`` are kept, and every observable's :class:`~flowsim.analysis.template_files.BinnedCounts`
is filled; then the chunk is dropped. Memory is one chunk whatever the number of events, so
templates of 10⁸-10⁹ events cost time, not disk or memory. The same seed and chunk size as a
stored sample give exactly the histograms of that sample scored by ``score_and_cut``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from flowsim.analysis.config import SCORE
from flowsim.analysis.template_files import BinnedCounts
from flowsim.classifier import predict_proba
from flowsim.data.scaling import Scaler
from flowsim.sampling import GeneratedChunks

__all__ = ["FilledTemplates", "fill_from_chunks"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilledTemplates:
    """The histograms of one filling and its counts and timing.

    ``seconds_sampling`` is the flow's own sampling (as in ``sampling.tsv``),
    ``seconds_total`` everything: sampling, unscaling, scoring and filling.
    """

    histograms: Mapping[str, BinnedCounts]
    marginals: Mapping[str, BinnedCounts]
    n_generated: int
    n_finite: int
    n_nonfinite: int
    n_selected: int
    cut: float
    seconds_sampling: float
    seconds_total: float
    device: str

    def summary(self) -> dict[str, Any]:
        """The counts and the throughput, for the job's JSON."""
        total = max(self.seconds_total, 1e-12)
        return {
            "n_requested": self.n_generated,
            "n_written": self.n_finite,
            "n_nonfinite": self.n_nonfinite,
            "n_selected": self.n_selected,
            "cut": self.cut,
            "efficiency": self.n_selected / max(self.n_finite, 1),
            "seconds_sampling": self.seconds_sampling,
            "seconds_total": self.seconds_total,
            "events_per_second": self.n_generated / total,
            "sampling_share": self.seconds_sampling / total,
            "device": self.device,
            "observables": {
                name: {"bins": int(h.counts.size), "in_range": int(h.counts.sum()),
                       "underflow": h.underflow, "overflow": h.overflow}
                for name, h in self.histograms.items()
            },  # fmt: skip
        }


def fill_from_chunks(
    chunks: GeneratedChunks,
    classifier: nn.Module,
    classifier_scaler: Scaler,
    *,
    cut: float,
    edges: Mapping[str, np.ndarray],
    marginal_edges: Mapping[str, np.ndarray] | None = None,
    progress_every: float = 10.0,
) -> FilledTemplates:
    """Fill the after-cut histogram of every observable of ``edges`` from ``chunks``, and the
    marginal before the cut of every feature of ``marginal_edges``.

    Arguments:
        chunks: the generated events (data units), iterated once.
        classifier, classifier_scaler: the signal classifier and its input scaler.
        cut: events with ``score > cut`` are selected.
        edges: observable -> bin edges; ``"score"`` or a feature of the events.
        marginal_edges: defaults to None (no marginals); else feature -> bin edges.

    Raises:
        ValueError: an observable that is neither the score nor a feature, or an event with a
            non-finite score (it could be neither selected nor rejected honestly).
    """
    features = chunks.features
    columns = {name: features.index(name) for name in edges if name != SCORE and name in features}
    unknown = sorted(set(edges) - set(columns) - {SCORE})
    if unknown:
        raise ValueError(f"observables {unknown} are neither {SCORE!r} nor features of the flow {features}")
    if list(classifier_scaler.features) != features:
        raise ValueError(
            f"the classifier scales {list(classifier_scaler.features)}, the flow generates {features}"
        )
    marginal_edges = marginal_edges or {}
    strangers = sorted(set(marginal_edges) - set(features))
    if strangers:
        raise ValueError(f"marginals of {strangers} asked for, but the flow generates {features}")
    histograms = {name: BinnedCounts(e) for name, e in edges.items()}
    marginals = {name: BinnedCounts(e) for name, e in marginal_edges.items()}
    n_selected = done = 0
    started = last = time.perf_counter()
    for x in chunks:
        score = predict_proba(classifier, classifier_scaler.transform(x)).astype(np.float32)
        bad = int(np.count_nonzero(~np.isfinite(score)))
        if bad:
            raise ValueError(f"{chunks.name}: {bad} generated events got a non-finite classifier score")
        selected = score > cut
        n_selected += int(np.count_nonzero(selected))
        for name, h in histograms.items():
            h.fill(score[selected] if name == SCORE else x[selected, columns[name]])
        for name, h in marginals.items():
            h.fill(x[:, features.index(name)])
        done += len(x)
        if time.perf_counter() - last > progress_every:
            last = time.perf_counter()
            rate = done / (last - started)
            log.info("%s: filled %d events, %.3g events/s", chunks.name, done, rate)
    seconds = time.perf_counter() - started
    log.info(
        "%s: %d of %d events pass score > %g; %.3g events/s in all, %.0f%% of the time sampling",
        chunks.name, n_selected, chunks.n_finite, cut, chunks.n_events / max(seconds, 1e-12),
        100 * chunks.seconds_sampling / max(seconds, 1e-12),
    )  # fmt: skip
    return FilledTemplates(
        histograms, marginals, chunks.n_events, chunks.n_finite, chunks.n_nonfinite, n_selected, float(cut),
        chunks.seconds_sampling, seconds, str(chunks.device),
    )  # fmt: skip
