r"""Typed, immutable results of fits, hypothesis tests, limits and luminosity scans.

Units: luminosities in fb⁻¹; the signal strength μ is relative to the injected signal
(μ = 1: :math:`S = \alpha B`); p-values are probabilities; significances in Gaussian σ; upper
limits are on μ at the confidence level stated in the container (95% by default), CLs method.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

__all__ = [
    "EXPECTED_SIGMAS",
    "TSV_COLUMNS",
    "Deviation",
    "FitResult",
    "HypoTestResult",
    "LimitResult",
    "PointResult",
    "ScanResult",
    "largest_deviations",
]

#: The N of the expected-limit band quantiles, in the order of ``LimitResult.expected``.
EXPECTED_SIGMAS = (-2, -1, 0, 1, 2)


class FitResult(NamedTuple):
    r"""Maximum-likelihood fit of μ (nuisances profiled).

    Attributes:
        mu_hat: best-fit signal strength, within the POI bounds (by default (0, 10)).
        mu_err: its HESSE uncertainty :math:`\sqrt{(H^{-1})_{\mu\mu}}` (1σ, 68.3% CL).
        twice_nll: :math:`-2\ln L` at the best fit, pyhf's normalisation (``pyhf fit --value``).
    """

    mu_hat: float
    mu_err: float
    twice_nll: float


class HypoTestResult(NamedTuple):
    r"""Asymptotic CLs test of one signal strength with :math:`\tilde q_\mu`.

    Attributes:
        mu: the tested signal strength.
        q_tilde: :math:`\tilde q_\mu` on the observed data.
        q_asimov: :math:`\tilde q_{\mu,A}` on the background-only Asimov data.
        p_sb: :math:`p_{s+b} = \mathrm{CL}_{s+b}`.
        p_b: :math:`p_b` in the paper's convention :math:`\mathrm{CL}_s = p_{s+b}/(1-p_b)`,
            i.e. ``1 - CLb`` of pyhf.
        cls: :math:`\mathrm{CL}_s`; μ is excluded at CL when ``cls < 1 - CL``.
    """

    mu: float
    q_tilde: float
    q_asimov: float
    p_sb: float
    p_b: float
    cls: float


class LimitResult(NamedTuple):
    r"""Upper limits on μ (CLs method, asymptotic :math:`\tilde q_\mu`).

    Attributes:
        observed: observed limit (NaN if it could not be found).
        expected: expected limits at the band quantiles ``EXPECTED_SIGMAS`` = (-2, -1, 0, 1, 2)σ
            of the background-only hypothesis, ascending (index 2 is the median).
        cl: the confidence level, e.g. 0.95.
    """

    observed: float
    expected: tuple[float, float, float, float, float]
    cl: float


class PointResult(NamedTuple):
    r"""One luminosity point of a scan: one row of ``lumi_scan_*.tsv`` (same field order).

    Attributes:
        lumi_fb: integrated luminosity (fb⁻¹).
        background: ``"mc"`` (MC reference prediction), ``"ml"`` (flow-generated prediction),
            ``"ml_surrogate"`` (the same with the surrogate uncertainty of an ensemble) or
            ``"ml_signal"`` (the ML prediction fitted with the flow's signal template).
        mu_hat, mu_err: best-fit μ and its HESSE uncertainty.
        p_sb, p_b, cls: p-values and CLs of μ = 1 (see :class:`HypoTestResult`).
        z_disc: discovery significance :math:`Z = \sqrt{q_0}` (σ).
        ul_obs: observed upper limit on μ at the scan's CL (95%).
        ul_exp_m2, ul_exp_m1, ul_exp, ul_exp_p1, ul_exp_p2: expected limits at -2, -1, 0, +1,
            +2σ.
        status: ``"ok"`` or a short failure reason; failed quantities are NaN.
    """

    lumi_fb: float
    background: str
    mu_hat: float
    mu_err: float
    p_sb: float
    p_b: float
    cls: float
    z_disc: float
    ul_obs: float
    ul_exp_m2: float
    ul_exp_m1: float
    ul_exp: float
    ul_exp_p1: float
    ul_exp_p2: float
    status: str

    @property
    def limits(self) -> tuple[float, ...]:
        """The observed and the five expected limits (NaN where not found)."""
        return (self.ul_obs, self.ul_exp_m2, self.ul_exp_m1, self.ul_exp, self.ul_exp_p1, self.ul_exp_p2)

    @classmethod
    def failed(cls, lumi_fb: float, background: str, status: str) -> PointResult:
        """A point whose analysis failed: every number NaN, ``status`` says why."""
        nan = math.nan
        return cls(lumi_fb, background, *([nan] * 12), status=status)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PointResult:
        """Parse a TSV row (dict of strings) back into a PointResult."""
        values = {
            name: (str(row[name]) if name in ("background", "status") else float(row[name]))
            for name in cls._fields
        }
        return cls(**values)


#: Column order of the scan TSV.
TSV_COLUMNS: tuple[str, ...] = PointResult._fields


class ScanResult(NamedTuple):
    """A luminosity scan of one (observable, α, background prediction).

    Attributes:
        observable: e.g. ``"score"`` or ``"m_bb"``.
        alpha: signal fraction S/B.
        background: ``"mc"``, ``"ml"``, ``"ml_surrogate"`` or ``"ml_signal"``.
        points: one :class:`PointResult` per luminosity, in grid order (failed ones included).
        workspaces: the pyhf workspace (JSON-able dict) of each point, same order; treat as
            read-only.
        n_profiles: number of conditional fits (profiles at fixed μ) the scan ran.
    """

    observable: str
    alpha: float
    background: str
    points: tuple[PointResult, ...]
    workspaces: tuple[dict[str, Any], ...]
    n_profiles: int


class Deviation(NamedTuple):
    """The largest deviation found and where: ``value`` at ``where`` (e.g. ``L=1000``)."""

    value: float
    where: str


def _band_shift(ml: PointResult, mc: PointResult) -> float:
    """ML expected limit minus the MC one, in units of the MC band's 1σ on that side."""
    diff = ml.ul_exp - mc.ul_exp
    width = (mc.ul_exp_p1 - mc.ul_exp) if diff >= 0 else (mc.ul_exp - mc.ul_exp_m1)
    return diff / width if width > 0 else math.nan


def largest_deviations(
    points: Iterable[PointResult], label: str = ""
) -> tuple[Deviation, Deviation]:
    r"""How far the ML background pulls the results, over all luminosities of a scan.

    Returns:
        ``(pull, shift)``: the largest :math:`|\hat\mu - 1| / \sigma_{\hat\mu}` of the ML
        points (μ = 1 is injected, so the MC reference gives ≈ 0), and the signed shift of the ML
        median expected limit from the MC one, in units of the MC ±1σ band on that side, with
        the largest magnitude. Points whose status is not ``ok`` are skipped; NaN when none is
        left. ``where`` says ``label`` and the luminosity.
    """
    points = list(points)
    mc = {p.lumi_fb: p for p in points if p.background == "mc" and p.status == "ok"}
    ml = [p for p in points if p.background == "ml" and p.status == "ok"]
    pulls = [(abs(p.mu_hat - 1.0) / p.mu_err, p.lumi_fb) for p in ml if p.mu_err > 0]
    shifts = [(_band_shift(p, mc[p.lumi_fb]), p.lumi_fb) for p in ml if p.lumi_fb in mc]
    shifts = [s for s in shifts if math.isfinite(s[0])]
    where = lambda lumi: f"{label} L={lumi:.4g}".strip()  # noqa: E731
    pull = max(pulls, default=(math.nan, math.nan))
    shift = max(shifts, key=lambda s: abs(s[0]), default=(math.nan, math.nan))
    return (
        Deviation(pull[0], where(pull[1]) if pulls else ""),
        Deviation(shift[0], where(shift[1]) if shifts else ""),
    )
