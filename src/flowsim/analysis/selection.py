r"""The cut on the classifier score: score friend trees, selection counts, selected values.

Scores are written as a ROOT *friend tree*: a TTree ``events`` with one float32 branch ``score``,
entry ``i`` belonging to entry ``i`` of the scored file, so ``score > cut`` selects events of the
original sample without copying them (``tree.AddFriend("s=events", "scores.root")`` in ROOT).
The selection efficiency :math:`\varepsilon = n_{\rm sel}/N` has the binomial error
:math:`\sqrt{\varepsilon(1-\varepsilon)/N}`. Nothing here needs torch.

An MC events file with a ``weight`` branch (:func:`flowsim.io.read_weights`) is weighted: its
templates are weighted ones (:func:`~flowsim.analysis.templates.make_template` with the weights
of the selected events and of all events). The parts of one sample must all be weighted or all
unweighted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from flowsim import io
from flowsim.analysis.config import SCORE, AnalysisConfig
from flowsim.analysis.templates import Template, make_template
from flowsim.weights import WeightError

__all__ = [
    "SCORE_BRANCH",
    "SampleFiles",
    "SelectionCounts",
    "read_scores",
    "read_sample_weights",
    "read_selected",
    "read_selected_events",
    "read_selected_weights",
    "selected_template",
]

PathLike = str | os.PathLike[str]
#: (events file, its score friend tree) of each part of one sample.
SampleFiles = Sequence[tuple[PathLike, PathLike]]

#: Branch of the score friend trees.
SCORE_BRANCH = "score"


class SelectionCounts(NamedTuple):
    """Events of one sample before and after ``score > cut``."""

    n_total: int
    n_selected: int
    cut: float

    @property
    def efficiency(self) -> float:
        """ε = n_selected / n_total (NaN for an empty sample)."""
        return self.n_selected / self.n_total if self.n_total else math.nan

    @property
    def efficiency_error(self) -> float:
        """Binomial error √(ε(1−ε)/N)."""
        eff = self.efficiency
        return math.sqrt(eff * (1.0 - eff) / self.n_total) if self.n_total else math.nan

    def as_dict(self) -> dict[str, float | int | str | None]:
        """Plain JSON: an empty sample's efficiency is null, with ``efficiency_undefined``
        saying why."""
        counts: dict[str, float | int | str | None] = {
            "cut": self.cut, "n_total": self.n_total, "n_selected": self.n_selected,
            "efficiency": self.efficiency, "efficiency_error": self.efficiency_error,
        }  # fmt: skip
        if not self.n_total:
            counts.update(
                efficiency=None, efficiency_error=None,
                efficiency_undefined="the sample has no events",
            )  # fmt: skip
        return counts


def read_scores(files: SampleFiles) -> np.ndarray:
    """The scores of every event of a sample (its parts concatenated in order)."""
    return np.concatenate(
        [io.read_events(scores, [SCORE_BRANCH])[SCORE_BRANCH] for _, scores in files]
    )


def read_selected(
    files: SampleFiles, observable: str, cut: float, *, name: str = "sample"
) -> tuple[np.ndarray, int]:
    """Values of ``observable`` for the events with score > ``cut``, and the events before the cut.

    ``files`` pairs each events file with its score friend tree; their entry counts must agree
    (a stale score file names both files). ``observable`` is ``"score"`` or a branch of the
    events.
    """
    values, n_total = [], 0
    for events, scores in files:
        score, n_events = _checked_scores(events, scores, name)
        selected = score > cut
        if observable == SCORE:
            values.append(score[selected])
        else:
            values.append(io.read_events(events, [observable])[observable][selected])
        n_total += n_events
    return (np.concatenate(values) if values else np.empty(0)), n_total


def read_selected_events(
    files: SampleFiles, columns: Sequence[str], cut: float, *, name: str = "sample"
) -> np.ndarray:
    """The events with score > ``cut`` as one (n, len(columns)) float32 array (parts in order);
    their weights, if the sample has any: :func:`read_selected_weights`."""
    parts = []
    for events, scores in files:
        score, _ = _checked_scores(events, scores, name)
        parts.append(io.read_matrix(events, list(columns))[score > cut])
    return np.concatenate(parts) if parts else np.empty((0, len(columns)), np.float32)


def read_sample_weights(files: SampleFiles, *, name: str = "sample") -> np.ndarray | None:
    """The weights of every event of a sample (parts in order), or None if it is unweighted.

    Raises:
        WeightError: some parts weighted and others not (naming the unweighted files), or weights
            :func:`flowsim.io.read_weights` refuses.
    """
    parts = [io.read_weights(events) for events, _ in files]
    if all(w is None for w in parts):
        return None
    unweighted = [str(events) for (events, _), w in zip(files, parts) if w is None]
    if unweighted:
        # a missing weight branch is not weight 1 in general (other normalisation): refuse
        raise WeightError(
            f"{name}: some parts have a {io.WEIGHT!r} branch and {unweighted} do not; "
            "a sample must be weighted throughout or not at all"
        )
    return np.concatenate(parts)


def read_selected_weights(files: SampleFiles, cut: float, *, name: str = "sample") -> np.ndarray | None:
    """The weights of the events with score > ``cut``, row for row those of
    :func:`read_selected_events` and :func:`read_selected`; None for an unweighted sample."""
    weights = read_sample_weights(files, name=name)
    if weights is None:
        return None
    score = np.concatenate([_checked_scores(events, scores, name)[0] for events, scores in files])
    return weights[score > cut]


def _checked_scores(events: PathLike, scores: PathLike, name: str) -> tuple[np.ndarray, int]:
    """The score friend tree of ``events`` and the events' count, which must agree."""
    score = io.read_events(scores, [SCORE_BRANCH])[SCORE_BRANCH]
    n_events = io.root_entries(events)
    if len(score) != n_events:
        raise ValueError(
            f"{name}: {scores} has {len(score)} scores but {events} has {n_events} events; "
            "rescore the sample (rule score_and_cut)"
        )
    return score, n_events


def selected_template(files: SampleFiles, observable: str, config: AnalysisConfig, name: str) -> Template:
    """The after-cut template of ``observable`` of a scored sample, on the binning of ``config``;
    weighted if the sample's events files have weights (:func:`read_sample_weights`)."""
    values, n_total = read_selected(files, observable, config.cut, name=name)
    weights = read_sample_weights(files, name=name)
    if weights is None:
        return make_template(values, n_total, config.edges(observable), name=name)
    selected = read_scores(files) > config.cut  # the rows of values, in the same order
    return make_template(
        values, n_total, config.edges(observable), name=name, weights=weights[selected], all_weights=weights
    )
