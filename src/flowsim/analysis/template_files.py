r"""Binned templates filled chunk by chunk, and their ROOT file (``results/templates/{run}``).

A template file holds one ``TH1D`` per observable (the events after the classifier cut, with
ROOT's under- and overflow bins and the sums of weights and of squared weights), and the
``TH1D`` ``cutflow`` whose three bins count the events asked for, those with every feature
finite, and those selected. The directory ``marginals`` may hold one ``TH1D`` per feature
before the cut (every finite event; the amplification's quantile-binned marginals). Generated
events are unweighted, so both sums equal the counts; the
reader refuses weighted histograms rather than round them. :func:`read_templates` turns each
histogram into a :class:`~flowsim.analysis.templates.Template` with ``N`` = the finite events,
as histogramming a stored sample of the same events would (rows with a non-finite feature are
not part of a stored sample either).

ROOT conventions: bin 0 is the underflow, bin K + 1 the overflow; bins are ``[a, b)`` except the
last in-range bin, which includes its upper edge (numpy's convention, as
:func:`~flowsim.analysis.templates.make_template`): a value exactly on the upper edge is counted
in bin K, not in the overflow.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from flowsim.analysis.templates import EnsembleTemplate, Template, check_edges

__all__ = [
    "CUTFLOW", "CUTFLOW_STEPS", "MARGINALS", "BinnedCounts", "TemplateFile", "ml_prediction_templates",
    "read_templates", "write_templates",
]  # fmt: skip

log = logging.getLogger(__name__)

#: Name of the cut-flow histogram.
CUTFLOW = "cutflow"
#: Its bins, in order.
CUTFLOW_STEPS = ("generated", "finite", "selected")
#: Name of the directory of the marginals before the cut.
MARGINALS = "marginals"


@dataclass
class BinnedCounts:
    """A histogram of unweighted values, filled chunk by chunk in constant memory.

    Counts per bin (``counts``, shape (K,)), below ``edges[0]`` (``underflow``), above
    ``edges[-1]`` (``overflow``), non-finite (``nonfinite``, in no bin), and the in-range sums
    of x and x² (ROOT's ``fTsumwx``, ``fTsumwx2``, for the mean and RMS a TBrowser shows).
    Filling chunks one after another gives exactly the histogram of their concatenation.
    """

    edges: np.ndarray
    counts: np.ndarray = field(init=False)
    underflow: int = 0
    overflow: int = 0
    nonfinite: int = 0
    sum_x: float = 0.0
    sum_x2: float = 0.0

    def __post_init__(self) -> None:
        self.edges = check_edges(self.edges)
        self.counts = np.zeros(self.edges.size - 1, dtype=np.int64)

    def fill(self, values: np.ndarray) -> None:
        """Add ``values`` (1-D), compared in float64 as :func:`make_template` compares them."""
        values = np.asarray(values, dtype=float)
        finite = np.isfinite(values)
        self.nonfinite += int(values.size - np.count_nonzero(finite))
        values = values[finite]
        lo, hi = self.edges[0], self.edges[-1]
        self.underflow += int(np.count_nonzero(values < lo))
        self.overflow += int(np.count_nonzero(values > hi))
        counts, _ = np.histogram(values, bins=self.edges)
        self.counts += counts
        inside = values[(values >= lo) & (values <= hi)]
        self.sum_x += float(inside.sum())
        self.sum_x2 += float(np.square(inside).sum())

    @property
    def entries(self) -> int:
        """Every value filled: in a bin, below or above the edges, or non-finite."""
        return int(self.counts.sum()) + self.underflow + self.overflow + self.nonfinite

    def th1d(self, name: str, title: str):
        """These counts as a ROOT TH1D (under- and overflow in its flow bins)."""
        contents = np.concatenate([[self.underflow], self.counts, [self.overflow]])
        return _th1d(name, title.strip(), self.edges, contents, (float(self.counts.sum()), self.sum_x, self.sum_x2))

    def template(self, n_total: int) -> Template:
        """The :class:`Template` of these counts for ``n_total`` events before the cut."""
        return Template(self.edges, self.counts, n_total, self.underflow, self.overflow, self.nonfinite)


@dataclass(frozen=True)
class TemplateFile:
    """What a template file holds: the cut flow, one template per observable and the features'
    marginals before the cut (``N`` = the finite events for both; none in older files)."""

    n_generated: int
    n_finite: int
    n_selected: int
    templates: Mapping[str, Template]
    marginals: Mapping[str, Template] = field(default_factory=dict)

    def __getitem__(self, observable: str) -> Template:
        if observable not in self.templates:
            raise KeyError(f"no template of {observable!r}; the file has {sorted(self.templates)}")
        return self.templates[observable]


def _th1d(name: str, title: str, edges: np.ndarray, contents: np.ndarray, sums: tuple[float, float, float]):
    """A ROOT TH1D of unweighted counts; ``contents`` includes under- and overflow (K + 2)."""
    from uproot.writing.identify import to_TAxis, to_TH1x

    contents = np.asarray(contents, dtype=np.float64)
    uniform = np.allclose(np.diff(edges), edges[1] - edges[0], rtol=1e-12, atol=0.0)
    axis = to_TAxis(
        "xaxis", "", edges.size - 1, float(edges[0]), float(edges[-1]),
        fXbins=np.array([], dtype=np.float64) if uniform else np.asarray(edges, dtype=np.float64),
    )  # fmt: skip
    n_in, sum_x, sum_x2 = sums
    return to_TH1x(
        name, title, contents, fEntries=float(contents.sum()), fTsumw=n_in, fTsumw2=n_in,
        fTsumwx=sum_x, fTsumwx2=sum_x2, fSumw2=contents.copy(), fXaxis=axis,
    )  # fmt: skip


def write_templates(
    path: str | os.PathLike[str],
    histograms: Mapping[str, BinnedCounts],
    *,
    n_generated: int,
    n_finite: int,
    n_selected: int,
    title: str = "",
    marginals: Mapping[str, BinnedCounts] | None = None,
) -> None:
    """Write the cut flow and one TH1D per observable to ``path``, atomically; with
    ``marginals``, one TH1D per feature before the cut in the directory :data:`MARGINALS`.

    Raises:
        ValueError: an observable named like the cut flow or the marginals, or counts that do
            not add up (``n_selected`` must equal every histogram's entries, ``n_finite`` every
            marginal's, ``n_finite <= n_generated``).
    """
    import uproot

    from flowsim.io import atomic_output

    for taken in (CUTFLOW, MARGINALS):
        if taken in histograms:
            raise ValueError(f"an observable may not be called {taken!r}: the file uses that name")
    marginals = marginals or {}
    if not 0 <= n_selected <= n_finite <= n_generated:
        raise ValueError(
            f"the cut flow must not grow: {n_generated} generated, {n_finite} finite, {n_selected} selected"
        )
    for name, h in histograms.items():
        if h.entries != n_selected:
            raise ValueError(f"histogram {name!r} holds {h.entries} entries but {n_selected} events were selected")
    for name, h in marginals.items():
        if h.entries != n_finite:
            raise ValueError(f"marginal {name!r} holds {h.entries} entries but {n_finite} events are finite")
    steps = np.array([0.0, n_generated, n_finite, n_selected, 0.0])
    with atomic_output(path, suffix=".root") as tmp, uproot.recreate(tmp) as f:
        f[CUTFLOW] = _th1d(
            CUTFLOW, f"{title} events: " + ", ".join(CUTFLOW_STEPS).strip(),
            np.arange(len(CUTFLOW_STEPS) + 1, dtype=float), steps,
            (float(steps.sum()), float(np.dot(steps[1:-1], np.arange(3) + 0.5)),
             float(np.dot(steps[1:-1], (np.arange(3) + 0.5) ** 2))),
        )  # fmt: skip
        for name, h in histograms.items():
            f[name] = h.th1d(name, f"{title} {name}, after the cut")
        for name, h in marginals.items():
            f[f"{MARGINALS}/{name}"] = h.th1d(name, f"{title} {name}, before the cut")


def _counts(path: str | os.PathLike[str], name: str, hist) -> np.ndarray:
    values = np.asarray(hist.values(flow=True), dtype=float)
    variances = np.asarray(hist.variances(flow=True), dtype=float)
    if not np.array_equal(values, variances) or np.any(values != np.round(values)) or np.any(values < 0):
        raise ValueError(
            f"{path}: histogram {name!r} is weighted (sum of squared weights differs from the sum of "
            "weights, or a count is not a non-negative integer); templates need unweighted counts"
        )
    return values.astype(np.int64)


def _read_template(
    path: str | os.PathLike[str], hist, key: str, kind: str, n_in: int, which: str, n_finite: int
) -> Template:
    """The :class:`Template` of histogram ``key`` of the file ``path`` (a ``kind``: histogram or
    marginal), filled by ``n_in`` events (``which``: selected or finite), ``N`` = ``n_finite``.

    Events of ``n_in`` in no bin and not under/overflow had a non-finite value.
    """
    counts = _counts(path, key, hist)
    if int(counts.sum()) > n_in:
        raise ValueError(f"{path}: {kind} {key.split('/')[-1]!r} holds more entries than the {n_in} {which} events")
    return Template(
        np.asarray(hist.axis().edges(), dtype=float), counts[1:-1], n_finite, int(counts[0]), int(counts[-1]),
        n_in - int(counts.sum()),
    )


def read_templates(path: str | os.PathLike[str]) -> TemplateFile:
    """Read a file of :func:`write_templates` back; ``N`` of each template is the finite events.

    Raises:
        ValueError: no cut flow, weighted histograms, or counts that do not add up, naming ``path``.
    """
    import uproot

    with uproot.open(path) as f:
        classes = f.classnames(recursive=False)
        names = sorted({key.split(";")[0] for key, cls in classes.items() if cls.startswith("TH1")})
        if CUTFLOW not in names:
            raise ValueError(f"{path}: no {CUTFLOW!r} histogram; not a template file of fill_templates")
        flow = _counts(path, CUTFLOW, f[CUTFLOW])[1:-1]
        if flow.size != len(CUTFLOW_STEPS):
            raise ValueError(f"{path}: the cut flow has {flow.size} bins, expected {len(CUTFLOW_STEPS)}")
        n_generated, n_finite, n_selected = (int(v) for v in flow)
        templates = {
            name: _read_template(path, f[name], name, "histogram", n_selected, "selected", n_finite)
            for name in names
            if name != CUTFLOW
        }
        marginals = {}
        if any(key.split(";")[0] == MARGINALS for key in classes):
            for name in sorted({key.split(";")[0] for key in f[MARGINALS].keys(cycle=True)}):
                key = f"{MARGINALS}/{name}"
                marginals[name] = _read_template(path, f[key], key, "marginal", n_finite, "finite", n_finite)
    return TemplateFile(n_generated, n_finite, n_selected, templates, marginals)


def ml_prediction_templates(
    files: Sequence[str | os.PathLike[str]], edges: Mapping[str, np.ndarray], *, run: str
) -> dict[str, Template | EnsembleTemplate]:
    """The run's ML prediction of every observable of ``edges`` (observable -> bin edges): the
    template of its one template file, or the
    :class:`~flowsim.analysis.templates.EnsembleTemplate` of its members' files (each file read
    once).

    Raises:
        ValueError: no file, or a template on other bins than the configuration's (stale
            templates: rerun fill_templates), naming the file.
    """
    if not files:
        raise ValueError(f"run {run}: no template file to predict the background with")
    members: dict[str, list[Template]] = {observable: [] for observable in edges}
    for path in files:
        contents = read_templates(path)
        for observable, bins in edges.items():
            template = contents[observable]
            if not np.array_equal(template.edges, bins):
                raise ValueError(
                    f"{path}: the {observable} template has other bins than analysis.observables "
                    "and analysis.n_bins ask for; refill it (rule fill_templates)"
                )
            members[observable].append(template)
    log.info(
        "run %s: templates of %s from %d member(s), %d generated events each after the finite check",
        run, list(edges), len(files), next(iter(members.values()))[0].n_total,
    )  # fmt: skip
    return {
        observable: found[0] if len(found) == 1 else EnsembleTemplate(tuple(found))
        for observable, found in members.items()
    }
