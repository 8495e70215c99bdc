r"""Binned templates: per-bin selection efficiencies with binomial errors, and expected yields.

A sample of ``N`` events (counted *before* the classifier cut) leaves ``n_i`` events in bin ``i``
of the observable after the cut. Its template is the per-bin efficiency and binomial error

.. math::

    \varepsilon_i = n_i / N, \qquad
    \delta\varepsilon_i = \sqrt{\varepsilon_i (1 - \varepsilon_i) / N},

so the efficiency includes the cut (events failing it are in ``N`` but in no bin), and so do
selected events outside the histogram range: they are counted, logged and left out of every bin,
never silently dropped from ``N``.

Expected yields at integrated luminosity :math:`L` (fb⁻¹) follow the paper's set-up: the
background total before the cut is :math:`N_B(L) = \sigma_B L` and the signal total is
:math:`N_S = \alpha N_B`; a template turns a total :math:`N_X` into yields
:math:`N_X \varepsilon_i` with statistical errors :math:`N_X \delta\varepsilon_i` (the error of the
template, i.e. of the finite simulated sample, scaled to the luminosity). Relative errors are thus
independent of :math:`L`.

References:
    Gavranovič & Kerševan, EPJC 84 (2024) 911, Sec. 4.4 (arXiv:2310.08994).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "EnsembleTemplate",
    "Template",
    "background_total",
    "check_edges",
    "empty_bin_groups",
    "make_template",
    "merge_empty_bins",
    "signal_total",
    "uniform_edges",
]

log = logging.getLogger(__name__)


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


def check_edges(edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return ``edges`` as a read-only float array after checking it defines at least one bin.

    Raises:
        ValueError: fewer than two edges, non-finite edges, or edges not strictly increasing.
    """
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"bin edges need at least two values (one bin), got {edges.tolist()}")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"bin edges must be finite, got {edges.tolist()}")
    if not np.all(np.diff(edges) > 0):
        raise ValueError(f"bin edges must be strictly increasing, got {edges.tolist()}")
    return _frozen(edges)


def uniform_edges(low: float, high: float, n_bins: int) -> np.ndarray:
    """``n_bins + 1`` uniform bin edges on ``[low, high]``.

    Raises:
        ValueError: ``n_bins < 1`` or an empty or decreasing range (``high <= low``).
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"the number of bins must be a positive integer, got {n_bins}")
    if not (np.isfinite(low) and np.isfinite(high)) or not high > low:
        raise ValueError(f"bin range ({low}, {high}) is empty or decreasing; need low < high")
    return check_edges(np.linspace(low, high, int(n_bins) + 1))


@dataclass(frozen=True, eq=False)
class Template:
    """Per-bin counts of one sample after the cut, and its size ``N`` before the cut.

    Attributes:
        edges: bin edges, shape (K + 1,), strictly increasing.
        counts: selected events per bin ``n_i``, shape (K,), integers.
        n_total: events before the cut, ``N`` (the efficiency denominator).
        n_below: selected events below ``edges[0]`` (in no bin, part of the inefficiency).
        n_above: selected events at or above ``edges[-1]`` (idem).
        n_nonfinite: selected events with a NaN or infinite value (idem).
    """

    edges: np.ndarray
    counts: np.ndarray
    n_total: int
    n_below: int = 0
    n_above: int = 0
    n_nonfinite: int = 0
    _eff: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        edges = check_edges(self.edges)
        counts = np.asarray(self.counts)
        if counts.shape != (edges.size - 1,):
            raise ValueError(
                f"counts have shape {counts.shape}; {edges.size - 1} bins need ({edges.size - 1},)"
            )
        if np.any(counts < 0) or np.any(counts != np.round(counts)):
            raise ValueError("counts must be non-negative integers")
        extra = (self.n_below, self.n_above, self.n_nonfinite)
        if any(n < 0 for n in extra):
            raise ValueError(f"out-of-range counts must be non-negative, got {extra}")
        entries = int(counts.sum()) + sum(extra)
        if self.n_total < entries:
            raise ValueError(
                f"N = {self.n_total} events before the cut is less than the {entries} entries "
                "after it; N must count every event before the cut"
            )
        if self.n_total <= 0:
            raise ValueError(f"N (events before the cut) must be positive, got {self.n_total}")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "counts", _frozen(counts.astype(np.int64)))
        object.__setattr__(self, "n_total", int(self.n_total))
        object.__setattr__(self, "_eff", _frozen(self.counts / self.n_total))

    @property
    def n_bins(self) -> int:
        """Number of bins ``K``."""
        return self.counts.size

    @property
    def efficiency(self) -> np.ndarray:
        """Per-bin efficiency ``n_i / N`` (cut and bin), shape (K,)."""
        return self._eff

    @property
    def error(self) -> np.ndarray:
        """Binomial error of the efficiency, ``sqrt(eff (1 - eff) / N)``, shape (K,)."""
        eff = self._eff
        return np.sqrt(eff * (1.0 - eff) / self.n_total)

    def yields(self, total: float) -> np.ndarray:
        """Expected yields ``total * eff_i`` for ``total`` events before the cut."""
        return total * self._eff

    def stat_errors(self, total: float) -> np.ndarray:
        """Statistical errors of :meth:`yields`: ``total * sqrt(eff_i (1 - eff_i) / N)``."""
        return total * self.error

    def rebinned(self, groups: Sequence[Sequence[int]]) -> Template:
        """The template with bins merged: ``groups`` lists consecutive bin indices per new bin."""
        flat = [i for g in groups for i in g]
        if flat != list(range(self.n_bins)) or any(len(g) == 0 for g in groups):
            raise ValueError(f"groups {groups} must partition bins 0..{self.n_bins - 1} in order")
        edges = [self.edges[g[0]] for g in groups] + [self.edges[-1]]
        counts = [int(self.counts[list(g)].sum()) for g in groups]
        return Template(
            np.asarray(edges), np.asarray(counts), self.n_total,
            self.n_below, self.n_above, self.n_nonfinite,
        )  # fmt: skip


def make_template(
    values: np.ndarray | Sequence[float],
    n_total: int,
    edges: Sequence[float] | np.ndarray,
    *,
    name: str = "sample",
) -> Template:
    """Histogram ``values`` (the observable after the cut) into a :class:`Template`.

    Arguments:
        values: observable values of the selected events, shape (n,).
        n_total: events before the cut, ``N >= n``.
        edges: bin edges, strictly increasing, at least two. Bins are half-open ``[a, b)`` except
            the last, which includes its upper edge (numpy's convention).
        name: defaults to ``"sample"`` (the name used in log messages).

    Values outside the range or not finite are counted in the template and logged (INFO for
    out-of-range, WARNING for non-finite); they lower the efficiency like events failing the cut.

    Raises:
        ValueError: bad edges, ``values`` not 1-D, or ``n_total`` smaller than ``len(values)``.
    """
    edges = check_edges(edges)
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"{name}: values must be 1-D, got shape {values.shape}")
    if n_total < values.size:
        raise ValueError(
            f"{name}: N = {n_total} events before the cut is less than the {values.size} "
            "selected entries; N must count every event before the cut"
        )
    finite = np.isfinite(values)
    n_nonfinite = int(values.size - finite.sum())
    values = values[finite]
    n_below = int(np.count_nonzero(values < edges[0]))
    n_above = int(np.count_nonzero(values > edges[-1]))
    counts, _ = np.histogram(values, bins=edges)
    if n_below or n_above:
        log.info(
            "%s: %d of %d selected events outside [%g, %g] (%d below, %d above); they are in no "
            "bin and count as inefficiency",
            name, n_below + n_above, values.size + n_nonfinite, edges[0], edges[-1],
            n_below, n_above,
        )  # fmt: skip
    if n_nonfinite:
        log.warning(
            "%s: %d selected events with non-finite values are in no bin", name, n_nonfinite
        )
    return Template(edges, counts, int(n_total), n_below, n_above, n_nonfinite)


def empty_bin_groups(reference: Template) -> list[list[int]] | None:
    """The bins of ``reference`` grouped so that every group holds an event, or None if none
    is empty: each run of empty bins joins the next non-empty bin to its right, and trailing
    empty bins join the last non-empty bin (see :func:`merge_empty_bins`).

    Raises:
        ValueError: ``reference`` is empty in every bin.
    """
    nonempty = np.flatnonzero(reference.counts > 0)
    if nonempty.size == 0:
        raise ValueError(
            "the background prediction has no event in any bin after the cut; "
            "loosen the cut, widen the range or generate more events"
        )
    if nonempty.size == reference.n_bins:
        return None
    groups: list[list[int]] = []
    pending: list[int] = []
    for i in range(reference.n_bins):
        pending.append(i)
        if reference.counts[i] > 0:
            groups.append(pending)
            pending = []
    if pending:
        groups[-1].extend(pending)
    log.warning(
        "%d of %d bins are empty in the background prediction and were merged into neighbours "
        "(%d bins left)",
        reference.n_bins - nonempty.size, reference.n_bins, len(groups),
    )  # fmt: skip
    return groups


def merge_empty_bins(reference: Template, *others: Template) -> tuple[Template, ...]:
    """Merge the bins that are empty in ``reference`` into a neighbour, in all templates alike.

    HistFactory's ``shapesys`` and ``staterror`` need a non-zero background in every bin (pyhf
    fixes their parameters in empty bins and the relative error is 0/0), so bins where the
    background prediction has no event are merged (:func:`empty_bin_groups`). Counts add,
    so efficiencies and binomial errors stay exact on the coarser binning. The number of merged
    bins is logged (WARNING).

    Returns:
        ``(reference, *others)`` on the merged binning (the same objects if nothing is empty).

    Raises:
        ValueError: the templates have different edges, or ``reference`` is empty in every bin.
    """
    for other in others:
        if not np.array_equal(other.edges, reference.edges):
            raise ValueError("templates must share the same bin edges to be merged")
    groups = empty_bin_groups(reference)
    if groups is None:
        return (reference, *others)
    return tuple(t.rebinned(groups) for t in (reference, *others))


@dataclass(frozen=True, eq=False)
class EnsembleTemplate:
    r"""The templates of the K members of a surrogate ensemble (same binning, same N each).

    The prediction is their *pooled* template (counts and N summed: the mean efficiency, with
    the binomial error of all :math:`K N` events). The *surrogate uncertainty* of bin i is the
    members' spread less the part their own finite samples explain,

    .. math::

        \sigma_i^2 = \max\Big(0,\ s_i^2 - rac{1}{K}\sum_k \deltaarepsilon_{k,i}^2\Big),
        \qquad s_i^2 = rac{1}{K-1}\sum_k (arepsilon_{k,i} - ararepsilon_i)^2 ,

    the variance of one member's efficiency from its training (seed, bootstrap replica), which
    generating more events does not shrink. It is one member's spread, not that of the mean:
    the mean of K flows trained on one training set still carries that set's fluctuation.
    """

    members: tuple[Template, ...]

    def __post_init__(self) -> None:
        members = tuple(self.members)
        if not members:
            raise ValueError("an ensemble needs at least one member template")
        for m in members[1:]:
            if not np.array_equal(m.edges, members[0].edges):
                raise ValueError("the ensemble members' templates have different bin edges")
        object.__setattr__(self, "members", members)

    @property
    def size(self) -> int:
        """The number of members K."""
        return len(self.members)

    @property
    def edges(self) -> np.ndarray:
        return self.members[0].edges

    @property
    def pooled(self) -> Template:
        """The members' events together: counts and N summed."""
        ms = self.members
        return Template(
            self.edges, np.sum([m.counts for m in ms], axis=0), sum(m.n_total for m in ms),
            sum(m.n_below for m in ms), sum(m.n_above for m in ms), sum(m.n_nonfinite for m in ms),
        )  # fmt: skip

    def surrogate_error(self) -> np.ndarray:
        r"""Per-bin surrogate uncertainty :math:`\sigma_i` of the efficiency (zeros for K = 1).

        Bins whose spread is below what the members' own sample sizes explain get 0; their
        number is logged (INFO).
        """
        if self.size < 2:
            return np.zeros(self.members[0].n_bins)
        eff = np.stack([m.efficiency for m in self.members])
        spread = eff.var(axis=0, ddof=1)
        own = np.mean([m.error**2 for m in self.members], axis=0)
        below = spread < own
        if below.any():
            log.info(
                "%d of %d bins: the members' spread is within their own statistical error; "
                "surrogate uncertainty 0 there", int(below.sum()), below.size,
            )  # fmt: skip
        return np.sqrt(np.where(below, 0.0, spread - own))

    def rebinned(self, groups: Sequence[Sequence[int]]) -> EnsembleTemplate:
        """Every member with bins merged by ``groups`` (see :meth:`Template.rebinned`)."""
        return EnsembleTemplate(tuple(m.rebinned(groups) for m in self.members))


def background_total(lumi_fb: float, sigma_b_fb: float) -> float:
    """Background events before the cut, ``N_B = sigma_B * L`` (``sigma_B`` in fb, ``L`` in fb⁻¹).

    Raises:
        ValueError: a luminosity or cross-section that is not positive and finite.
    """
    if not (np.isfinite(lumi_fb) and lumi_fb > 0):
        raise ValueError(f"the luminosity must be positive (fb^-1), got {lumi_fb}")
    if not (np.isfinite(sigma_b_fb) and sigma_b_fb > 0):
        raise ValueError(f"the background cross-section must be positive (fb), got {sigma_b_fb}")
    return float(sigma_b_fb) * float(lumi_fb)


def signal_total(lumi_fb: float, sigma_b_fb: float, alpha: float) -> float:
    """Signal events before the cut, ``N_S = alpha * N_B`` (``alpha = S/B``, e.g. 0.01).

    Raises:
        ValueError: ``alpha`` not positive and finite, or as :func:`background_total`.
    """
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"the signal fraction alpha = S/B must be positive, got {alpha}")
    return float(alpha) * background_total(lumi_fb, sigma_b_fb)
