r"""Binned templates: per-bin selection efficiencies with binomial errors, and expected yields.

A sample of ``N`` events (counted *before* the classifier cut) leaves ``n_i`` events in bin ``i``
of the observable after the cut. Its template is the per-bin efficiency and binomial error

.. math::

    \varepsilon_i = n_i / N, \qquad
    \delta\varepsilon_i = \sqrt{\varepsilon_i (1 - \varepsilon_i) / N},

so the efficiency includes the cut (events failing it are in ``N`` but in no bin), and so do
selected events outside the histogram range: they are counted, logged and left out of every bin,
never silently dropped from ``N``.

A *weighted* template (MC with per-event weights :math:`w`, some negative from NLO generators)
holds the per-bin sums :math:`W_i = \sum_{j \in i} w_j` and :math:`S_i = \sum_{j \in i} w_j^2`
instead of counts, and the totals :math:`W = \sum_j w_j`, :math:`S = \sum_j w_j^2` over all events
before the cut. Its efficiency and error (the binomial error generalised by the delta method,
each weight fluctuating with variance :math:`w_j^2`) are

.. math::

    \varepsilon_i = W_i / W, \qquad
    \delta\varepsilon_i^2 = \big[S_i (1 - \varepsilon_i)^2 + (S - S_i)\,\varepsilon_i^2\big] / W^2,

which for unit weights is :math:`\varepsilon_i(1-\varepsilon_i)/N` again, and for
:math:`\varepsilon_i \ll 1` the familiar :math:`\sqrt{S_i}/W`. A bin whose sum of weights is
negative (possible with negative weights) cannot be a yield (pyhf needs non-negative expected
counts): :func:`make_template` sets it to 0, keeps its :math:`S_i` (its error), and logs a WARNING
with the number of such bins; a zero background bin is then merged like an empty one
(:func:`merge_empty_bins`). Unweighted templates are untouched by all of this: integer counts
and the formulas above, bit for bit.

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

from flowsim.weights import WeightError, check_weights

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
    r"""Per-bin counts of one sample after the cut, and its size ``N`` before the cut.

    A weighted template (``sumw2`` given) holds sums of weights instead: ``counts`` are the
    per-bin :math:`W_i = \sum w` (floats, >= 0), ``n_total`` is :math:`W`, the sum of the weights of
    every event before the cut, and ``sumw2``, ``sumw2_total`` the sums of squared weights per bin
    and before the cut. ``n_below``, ``n_above`` and ``n_nonfinite`` count events either way.

    Attributes:
        edges: bin edges, shape (K + 1,), strictly increasing.
        counts: selected events per bin ``n_i``, shape (K,), integers (weighted: ``W_i``).
        n_total: events before the cut, ``N`` (the efficiency denominator; weighted: ``W``).
        n_below: selected events below ``edges[0]`` (in no bin, part of the inefficiency).
        n_above: selected events at or above ``edges[-1]`` (idem).
        n_nonfinite: selected events with a NaN or infinite value (idem).
        sumw2: defaults to None (unweighted); else the per-bin sums of squared weights ``S_i``.
        sumw2_total: defaults to None; with ``sumw2``, the sum of squared weights before the
            cut ``S``.
    """

    edges: np.ndarray
    counts: np.ndarray
    n_total: int | float
    n_below: int = 0
    n_above: int = 0
    n_nonfinite: int = 0
    _eff: np.ndarray = field(init=False, repr=False, compare=False)
    sumw2: np.ndarray | None = None
    sumw2_total: float | None = None

    def __post_init__(self) -> None:
        if (self.sumw2 is None) != (self.sumw2_total is None):
            raise ValueError("a weighted template needs both sumw2 (per bin) and sumw2_total")
        if self.sumw2 is not None:
            self._init_weighted()
            return
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

    def _init_weighted(self) -> None:
        """Check and freeze the sums of a weighted template. Unlike counts, the selected sum of
        weights may exceed ``W`` (negative weights among the rejected events), so only the sums
        of squares are checked against their total."""
        edges = check_edges(self.edges)
        shape = (edges.size - 1,)
        sums = {"counts": np.asarray(self.counts, dtype=np.float64),
                "sumw2": np.asarray(self.sumw2, dtype=np.float64)}  # fmt: skip
        for what, a in sums.items():
            if a.shape != shape or not np.all(np.isfinite(a)):
                raise ValueError(f"{what} of a weighted template must be finite, shape {shape}, got {a.shape}")
        negative = np.flatnonzero(sums["counts"] < 0)
        if negative.size:
            raise ValueError(
                f"bins {negative.tolist()} have a negative sum of weights; a template needs "
                "non-negative contents (make_template sets such bins to 0)"
            )
        if np.any(sums["sumw2"] < 0):
            raise ValueError("sums of squared weights must be non-negative")
        extra = (self.n_below, self.n_above, self.n_nonfinite)
        if any(n < 0 for n in extra):
            raise ValueError(f"out-of-range counts must be non-negative, got {extra}")
        total, total2 = float(self.n_total), float(self.sumw2_total)
        if not (np.isfinite(total) and total > 0):
            raise ValueError(f"W (the sum of weights before the cut) must be positive, got {total}")
        # the selected events are a subset: their squared weights cannot add up to more
        if not (np.isfinite(total2) and total2 > 0) or sums["sumw2"].sum() > total2 * (1 + 1e-9):
            raise ValueError(
                f"the sum of squared weights before the cut ({total2}) must be positive and hold "
                f"the {sums['sumw2'].sum()} of the bins; it must count every event before the cut"
            )
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "counts", _frozen(sums["counts"]))
        object.__setattr__(self, "sumw2", _frozen(sums["sumw2"]))
        object.__setattr__(self, "n_total", total)
        object.__setattr__(self, "sumw2_total", total2)
        object.__setattr__(self, "_eff", _frozen(self.counts / total))

    @property
    def weighted(self) -> bool:
        """Whether the template holds sums of weights (``sumw2`` given) rather than counts."""
        return self.sumw2 is not None

    @property
    def n_effective(self) -> float:
        """The (effective) sample size before the cut: ``N``, or Kish's ``W**2 / S`` if weighted."""
        if self.sumw2_total is None:
            return self.n_total
        return self.n_total**2 / self.sumw2_total

    @property
    def n_bins(self) -> int:
        """Number of bins ``K``."""
        return self.counts.size

    @property
    def efficiency(self) -> np.ndarray:
        """Per-bin efficiency ``n_i / N`` (cut and bin; weighted: ``W_i / W``), shape (K,)."""
        return self._eff

    @property
    def error(self) -> np.ndarray:
        """Binomial error of the efficiency, ``sqrt(eff (1 - eff) / N)``, shape (K,); weighted,
        ``sqrt(S_i (1 - eff)**2 + (S - S_i) eff**2) / W`` (see the module docstring)."""
        eff = self._eff
        if self.sumw2 is None:
            return np.sqrt(eff * (1.0 - eff) / self.n_total)
        s2 = self.sumw2
        var = s2 * (1.0 - eff) ** 2 + (self.sumw2_total - s2) * eff**2
        # S - S_i can round below 0 when one bin holds every weight
        return np.sqrt(np.maximum(var, 0.0)) / self.n_total

    def yields(self, total: float) -> np.ndarray:
        """Expected yields ``total * eff_i`` for ``total`` events before the cut."""
        return total * self._eff

    def stat_errors(self, total: float) -> np.ndarray:
        """Statistical errors of :meth:`yields`: ``total * error`` (``total * sqrt(eff_i (1 -
        eff_i) / N)`` unweighted)."""
        return total * self.error

    def rebinned(self, groups: Sequence[Sequence[int]]) -> Template:
        """The template with bins merged: ``groups`` lists consecutive bin indices per new bin
        (counts, or sums of weights and of squared weights, add)."""
        flat = [i for g in groups for i in g]
        if flat != list(range(self.n_bins)) or any(len(g) == 0 for g in groups):
            raise ValueError(f"groups {groups} must partition bins 0..{self.n_bins - 1} in order")
        edges = [self.edges[g[0]] for g in groups] + [self.edges[-1]]
        if self.sumw2 is not None:
            return Template(
                np.asarray(edges), np.array([self.counts[list(g)].sum() for g in groups]), self.n_total,
                self.n_below, self.n_above, self.n_nonfinite,
                sumw2=np.array([self.sumw2[list(g)].sum() for g in groups]), sumw2_total=self.sumw2_total,
            )  # fmt: skip
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
    weights: np.ndarray | Sequence[float] | None = None,
    all_weights: np.ndarray | Sequence[float] | None = None,
) -> Template:
    """Histogram ``values`` (the observable after the cut) into a :class:`Template`.

    Arguments:
        values: observable values of the selected events, shape (n,).
        n_total: events before the cut, ``N >= n``.
        edges: bin edges, strictly increasing, at least two. Bins are half-open ``[a, b)`` except
            the last, which includes its upper edge (numpy's convention).
        name: defaults to ``"sample"`` (the name used in log messages).
        weights: defaults to None (unweighted: integer counts, exactly as without weights);
            else the weights of the selected events, shape (n,), and the template is weighted.
        all_weights: the weights of all ``N`` events before the cut (the selected ones among
            them), shape (N,); required with ``weights``, whose totals ``W = Σw`` and ``S = Σw²``
            are the efficiency's denominator and error.

    Values outside the range or not finite are counted in the template and logged (INFO for
    out-of-range, WARNING for non-finite); they lower the efficiency like events failing the cut.
    A weighted bin whose sum of weights is negative is set to 0 (its sum of squared weights is
    kept), with a WARNING giving the number of such bins.

    Raises:
        ValueError: bad edges, ``values`` not 1-D, or ``n_total`` smaller than ``len(values)``.
        WeightError: (a ValueError) ``weights`` without ``all_weights`` or the other way round,
            weights not finite or of the wrong shape, or ``all_weights`` with ``Σw <= 0``.
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
    if (weights is None) != (all_weights is None):
        raise WeightError(
            f"{name}: a weighted template needs the weights of the selected events and of all "
            "events before the cut (weights and all_weights), or neither"
        )
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != values.shape or not np.all(np.isfinite(weights)):
            raise WeightError(
                f"{name}: weights must be finite, one per selected value (shape {values.shape}), "
                f"got shape {weights.shape}"
            )
        all_weights = check_weights(all_weights, int(n_total), name=name)
    finite = np.isfinite(values)
    n_nonfinite = int(values.size - finite.sum())
    values = values[finite]
    n_below = int(np.count_nonzero(values < edges[0]))
    n_above = int(np.count_nonzero(values > edges[-1]))
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
    if weights is None:
        counts, _ = np.histogram(values, bins=edges)
        return Template(edges, counts, int(n_total), n_below, n_above, n_nonfinite)
    weights = weights[finite]
    sumw, _ = np.histogram(values, bins=edges, weights=weights)
    sumw2, _ = np.histogram(values, bins=edges, weights=weights**2)
    negative = np.flatnonzero(sumw < 0)
    if negative.size:
        # pyhf needs non-negative yields; clipping keeps the bin's error (S_i) and lets a
        # background bin at 0 be merged like an empty one
        log.warning(
            "%s: %d of %d bins have a negative sum of weights (bins %s, down to %.3g); set to 0",
            name, negative.size, sumw.size, negative.tolist(), sumw[negative].min(),
        )  # fmt: skip
        sumw = np.where(sumw > 0, sumw, 0.0)
    return Template(
        edges, sumw, float(all_weights.sum()), n_below, n_above, n_nonfinite,
        sumw2=sumw2, sumw2_total=float(np.dot(all_weights, all_weights)),
    )  # fmt: skip


def empty_bin_groups(reference: Template, *others: Template) -> list[list[int]] | None:
    """The bins of ``reference`` grouped so that every group holds an event, or None if none
    is empty: each run of empty bins joins the next non-empty bin to its right, and trailing
    empty bins join the last non-empty bin (see :func:`merge_empty_bins`). A bin is empty where
    its count (weighted: its sum of weights, clipped at 0) is 0 in ``reference`` or any of
    ``others`` (several predictions merged alike).

    Raises:
        ValueError: the templates have different edges, or no bin is filled in all of them.
    """
    filled = reference.counts > 0
    for other in others:
        if not np.array_equal(other.edges, reference.edges):
            raise ValueError("templates must share the same bin edges to be merged")
        filled = filled & (other.counts > 0)
    nonempty = np.flatnonzero(filled)
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
        if filled[i]:
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
    background prediction has no event are merged (:func:`empty_bin_groups`). Counts add
    (weighted: sums of weights and of squared weights), so efficiencies and errors stay exact
    on the coarser binning (weighted: but for bins :func:`make_template` clipped at 0). The
    number of merged bins is logged (WARNING).

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
            if m.weighted != members[0].weighted:
                raise ValueError("an ensemble cannot mix weighted and unweighted member templates")
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
        """The members' events together: counts and N summed (weighted: every sum summed)."""
        ms = self.members
        if ms[0].weighted:
            return Template(
                self.edges, np.sum([m.counts for m in ms], axis=0), sum(m.n_total for m in ms),
                sum(m.n_below for m in ms), sum(m.n_above for m in ms), sum(m.n_nonfinite for m in ms),
                sumw2=np.sum([m.sumw2 for m in ms], axis=0), sumw2_total=sum(m.sumw2_total for m in ms),
            )  # fmt: skip
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
