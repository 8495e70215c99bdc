r"""Exact profile likelihood of the one-channel HistFactory model, solved bin by bin in numpy.

The model of :mod:`flowsim.analysis.model` has the negative log-likelihood (pyhf's, constants
included, so ``nll == -pyhf.Model.logpdf``)

.. math::

    -\ln L(\mu, \beta, \gamma) = \sum_i \Big[ \nu_i - n_i \ln \nu_i + \ln\Gamma(n_i + 1)
        + \tau_i\beta_i - a_i \ln(\tau_i\beta_i) + \ln\Gamma(a_i + 1)
        + \frac{(g_i - \gamma_i)^2}{2\delta_i^2} + \ln(\sqrt{2\pi}\,\delta_i) \Big],
    \qquad \nu_i = \mu S_i + \beta_i \gamma_i B_i,

with shapesys auxiliary counts :math:`a_i` (nominally :math:`\tau_i`) and staterror auxiliary
means :math:`g_i` (nominally 1).

Shortcut (exact, not an approximation): for fixed :math:`\mu` the likelihood factorises over
bins, so the profiled nuisances :math:`(\hat{\hat\beta}_i, \hat{\hat\gamma}_i)` solve K
independent 2-parameter problems. They are solved together by a vectorised, line-searched Newton
method with analytic gradients and Hessians, instead of one 2K+1 dimensional SLSQP fit with
finite-difference gradients (pyhf 0.7.6, numpy backend, 45 parameters: 0.07-1 s per fit;
this: ~0.5 ms). The profile :math:`p(\mu) = \min_{\beta,\gamma} -\ln L` has, by the
envelope theorem,

.. math::

    p'(\mu) = \sum_i S_i (1 - n_i/\nu_i), \qquad
    p''(\mu) = \sum_i \big[ H_{\mu\mu} - H_{\mu\theta} H_{\theta\theta}^{-1} H_{\theta\mu} \big]_i ,

the second being the Schur complement of the full Hessian, so :math:`1/\sqrt{p''(\hat\mu)}`
equals the HESSE (inverse-Hessian) uncertainty :math:`\sqrt{(H^{-1})_{\mu\mu}}` that MINUIT
would report. The best fit :math:`\hat\mu` within the POI bounds (by default [0, 10]) comes
from a safeguarded Newton iteration on :math:`p'(\mu) = 0`.

Validated against pyhf (``tests/analysis``): ``nll`` equals ``-model.logpdf`` to 1e-10; fitted
twice-NLL, :math:`\hat\mu` and Asimov data agree with ``pyhf.infer.mle`` and
``pyhf.infer.calculators.generate_asimov_data``.

References:
    Cranmer et al., CERN-OPEN-2012-016 (HistFactory); Cowan, Cranmer, Gross, Vitells,
    EPJC 71 (2011) 1554, arXiv:1007.1727 (profile likelihood ratio).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
from scipy.special import gammaln, xlogy

from flowsim.analysis.model import POI_BOUNDS, ChannelYields

__all__ = ["BinnedLikelihood", "FitError", "Profile"]

log = logging.getLogger(__name__)

#: pyhf's default bounds of shapesys and staterror parameters.
NUISANCE_BOUNDS = (1e-10, 10.0)


class FitError(RuntimeError):
    """A fit that did not converge; the message says which and where."""


class Profile(NamedTuple):
    r"""The likelihood profiled at fixed ``mu``.

    Attributes:
        mu: the fixed signal strength.
        nll: profiled :math:`-\ln L` up to the data-dependent constant of
            :meth:`BinnedLikelihood.nll` (differences of ``nll`` are exact log-likelihood ratios).
        beta: profiled shapesys parameters, shape (K,).
        gamma: profiled staterror parameters, shape (K,).
        dnll: :math:`p'(\mu)`.
        d2nll: :math:`p''(\mu)` (profile curvature, Schur complement of the Hessian).
    """

    mu: float
    nll: float
    beta: np.ndarray
    gamma: np.ndarray
    dnll: float
    d2nll: float


def _pinned(x: np.ndarray, grad: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Parameters on a bound whose gradient of -ln L points out of the box (active bounds)."""
    return ((x <= lo) & (grad > 0)) | ((x >= hi) & (grad < 0))


@dataclass(frozen=True, eq=False)
class BinnedLikelihood:
    r""":math:`-\ln L` of one channel (signal × μ, background × shapesys × staterror).

    Attributes (arrays of shape (K,)):
        signal: signal yields :math:`S_i`.
        background: background yields :math:`B_i > 0`.
        observed: observed counts :math:`n_i \ge 0` (Asimov: not integers).
        tau: shapesys constraint scale :math:`\tau_i = (B_i/\Delta_i)^2`.
        delta: staterror relative width :math:`\delta_i > 0`.
        aux_shapesys: shapesys auxiliary data :math:`a_i`, defaults to ``tau``.
        aux_staterror: staterror auxiliary data :math:`g_i`, defaults to 1.
    """

    signal: np.ndarray
    background: np.ndarray
    observed: np.ndarray
    tau: np.ndarray
    delta: np.ndarray
    aux_shapesys: np.ndarray | None = None
    aux_staterror: np.ndarray | None = None
    _const: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        arrays = {
            name: np.array(getattr(self, name), dtype=float)
            for name in ("signal", "background", "observed", "tau", "delta")
        }
        k = arrays["background"].shape
        arrays["aux_shapesys"] = (
            arrays["tau"].copy() if self.aux_shapesys is None
            else np.array(self.aux_shapesys, dtype=float)
        )  # fmt: skip
        arrays["aux_staterror"] = (
            np.ones(k) if self.aux_staterror is None else np.array(self.aux_staterror, dtype=float)
        )
        for name, a in arrays.items():
            if a.shape != k or a.ndim != 1 or not np.all(np.isfinite(a)):
                raise ValueError(f"{name} must be a finite 1-D array of shape {k}, got {a.shape}")
            a.flags.writeable = False
            object.__setattr__(self, name, a)
        for name in ("background", "tau", "delta", "aux_shapesys"):
            if np.any(arrays[name] <= 0):
                raise ValueError(f"{name} must be positive in every bin (merge empty bins first)")
        for name in ("signal", "observed"):
            if np.any(arrays[name] < 0):
                raise ValueError(f"{name} must be non-negative")
        n, a, d = self.observed, self.aux_shapesys, self.delta
        const = (
            n - xlogy(n, n) + gammaln(n + 1.0)
            + a - a * np.log(a) + gammaln(a + 1.0)
            + np.log(np.sqrt(2.0 * np.pi) * d)
        )  # fmt: skip
        object.__setattr__(self, "_const", float(const.sum()))

    # construction -------------------------------------------------------------------------
    @classmethod
    def from_yields(cls, yields: ChannelYields) -> BinnedLikelihood:
        """The likelihood of the workspace :func:`~flowsim.analysis.model.build_workspace` makes.

        ``tau`` and ``delta`` are computed with pyhf's formulas from the same numbers as the
        spec: ``tau = B**2 / (rel * B)**2`` and ``delta = stat / B``.
        """
        b = np.asarray(yields.background, dtype=float)
        unc = yields.shapesys_rel * b
        return cls(
            signal=yields.signal,
            background=b,
            observed=yields.observed,
            tau=b**2 / unc**2,
            delta=np.asarray(yields.background_stat, dtype=float) / b,
        )

    def with_data(
        self,
        observed: np.ndarray,
        aux_shapesys: np.ndarray | None = None,
        aux_staterror: np.ndarray | None = None,
    ) -> BinnedLikelihood:
        """The same model with other observed (and, optionally, auxiliary) data."""
        return replace(
            self, observed=observed, aux_shapesys=aux_shapesys, aux_staterror=aux_staterror
        )

    @property
    def n_bins(self) -> int:
        """Number of bins ``K``."""
        return self.background.size

    # likelihood ---------------------------------------------------------------------------
    def expected(self, mu: float, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        r"""Expected counts :math:`\nu_i = \mu S_i + \beta_i \gamma_i B_i`."""
        return mu * self.signal + beta * gamma * self.background

    def _bin_terms(self, mus: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        r"""Per-bin :math:`-\ln L` minus its constant: deviance form, each term >= 0 near data."""
        n, a = self.observed, self.aux_shapesys
        nu = mus + beta * gamma * self.background
        tb = self.tau * beta
        return (
            nu - n + xlogy(n, n / nu)
            + tb - a + a * np.log(a / tb)
            + 0.5 * ((gamma - self.aux_staterror) / self.delta) ** 2
        )  # fmt: skip

    def nll(self, mu: float, beta: np.ndarray, gamma: np.ndarray) -> float:
        r""":math:`-\ln L` with every constant, equal to ``-pyhf.Model.logpdf`` of the workspace."""
        beta, gamma = np.asarray(beta, float), np.asarray(gamma, float)
        return float(self._bin_terms(mu * self.signal, beta, gamma).sum() + self._const)

    def twice_nll(self, profile: Profile) -> float:
        r""":math:`-2\ln L` of a solved profile with every constant (pyhf's ``twice_nll``)."""
        return 2.0 * (profile.nll + self._const)

    # profiling ----------------------------------------------------------------------------
    def profile(
        self,
        mu: float,
        init: tuple[np.ndarray, np.ndarray] | None = None,
        *,
        tol: float = 1e-10,
        max_iter: int = 200,
    ) -> Profile:
        """Minimise over the nuisances at fixed ``mu`` (conditional fit).

        Arguments:
            mu: the fixed signal strength (any real value with non-negative expected counts).
            init: defaults to None (start from β = γ = 1); else (beta, gamma) to warm-start.
            tol: defaults to 1e-10 (largest Newton step, in parameter units, at convergence).
            max_iter: defaults to 200 (Newton iterations before giving up).

        Raises:
            FitError: no convergence within ``max_iter``.
        """
        lo, hi = NUISANCE_BOUNDS
        s, b, n, tau, a = self.signal, self.background, self.observed, self.tau, self.aux_shapesys
        g, d2inv = self.aux_staterror, 1.0 / self.delta**2
        mus = mu * s
        if init is None:
            beta, gamma = np.ones_like(b), np.ones_like(b)
        else:
            beta, gamma = np.array(init[0], dtype=float), np.array(init[1], dtype=float)
        f = self._bin_terms(mus, beta, gamma)
        for _ in range(max_iter):
            gb_, bb_ = gamma * b, beta * b
            nu = mus + beta * gb_
            r = 1.0 - n / nu
            w = n / nu**2
            grad_b = r * gb_ + tau - a / beta
            grad_g = r * bb_ + (gamma - g) * d2inv
            h_bb = w * gb_**2 + a / beta**2
            h_gg = w * bb_**2 + d2inv
            h_bg = r * b + w * gb_ * bb_
            det = h_bb * h_gg - h_bg**2
            newton = det > 1e-12 * h_bb * h_gg
            safe = np.where(newton, det, 1.0)
            step_b = np.where(newton, -(h_gg * grad_b - h_bg * grad_g) / safe, -grad_b / h_bb)
            step_g = np.where(newton, -(h_bb * grad_g - h_bg * grad_b) / safe, -grad_g / h_gg)
            # active bounds: a parameter on a bound whose gradient points outwards stays there
            # and the other one takes a one-dimensional Newton step; where the Newton step
            # would leave the box through a bound the gradient points away from, the bin takes
            # a diagonally scaled gradient step instead
            fix_b, fix_g = _pinned(beta, grad_b, lo, hi), _pinned(gamma, grad_g, lo, hi)
            one_d = fix_b | fix_g | _pinned(beta, -step_b, lo, hi) | _pinned(gamma, -step_g, lo, hi)
            step_b = np.where(fix_b, 0.0, np.where(one_d, -grad_b / h_bb, step_b))
            step_g = np.where(fix_g, 0.0, np.where(one_d, -grad_g / h_gg, step_g))
            # projected step x(t) = clip(x + t dx) with backtracking on t, bin by bin
            t = np.ones_like(b)
            for _ in range(60):
                beta_new = np.minimum(np.maximum(beta + t * step_b, lo), hi)
                gamma_new = np.minimum(np.maximum(gamma + t * step_g, lo), hi)
                f_new = self._bin_terms(mus, beta_new, gamma_new)
                worse = f_new > f + 1e-13 * (1.0 + np.abs(f))
                if not worse.any():
                    break
                t = np.where(worse, 0.5 * t, t)
            moved = max(np.max(np.abs(beta_new - beta)), np.max(np.abs(gamma_new - gamma)))
            beta, gamma, f = beta_new, gamma_new, f_new
            if moved < tol:
                break
        else:
            raise FitError(f"profile at mu={mu:.6g} did not converge in {max_iter} iterations")
        result, decrement = self._profile_result(mu, beta, gamma, f)
        if decrement > 1e-8:
            raise FitError(f"profile at mu={mu:.6g} stalled (Newton decrement {decrement:.2g})")
        return result

    def _profile_result(
        self, mu: float, beta: np.ndarray, gamma: np.ndarray, f: np.ndarray
    ) -> tuple[Profile, float]:
        """The profile with p'(μ) and p''(μ); and the largest Newton decrement g²/h of a free
        nuisance (≈ twice the -ln L still to gain; ~0 at a true minimum)."""
        s, b, n = self.signal, self.background, self.observed
        gb_, bb_ = gamma * b, beta * b
        nu = mu * s + beta * gb_
        r = 1.0 - n / nu
        w = n / nu**2
        h_bb = w * gb_**2 + self.aux_shapesys / beta**2
        h_gg = w * bb_**2 + 1.0 / self.delta**2
        h_bg = r * b + w * gb_ * bb_
        h_mb, h_mg = s * w * gb_, s * w * bb_
        # Schur complement over the free nuisances (those pinned at a bound drop out)
        lo, hi = NUISANCE_BOUNDS
        grad_b = r * gb_ + self.tau - self.aux_shapesys / beta
        grad_g = r * bb_ + (gamma - self.aux_staterror) / self.delta**2
        fix_b, fix_g = _pinned(beta, grad_b, lo, hi), _pinned(gamma, grad_g, lo, hi)
        decrement = max(
            float(np.max(np.where(fix_b, 0.0, grad_b**2 / h_bb))),
            float(np.max(np.where(fix_g, 0.0, grad_g**2 / h_gg))),
        )
        h_bb, h_mb = np.where(fix_b, 1.0, h_bb), np.where(fix_b, 0.0, h_mb)
        h_gg, h_mg = np.where(fix_g, 1.0, h_gg), np.where(fix_g, 0.0, h_mg)
        h_bg = np.where(fix_b | fix_g, 0.0, h_bg)
        det = h_bb * h_gg - h_bg**2
        schur = s**2 * w - (h_gg * h_mb**2 - 2.0 * h_bg * h_mb * h_mg + h_bb * h_mg**2) / det
        profile = Profile(
            mu=float(mu), nll=float(f.sum()), beta=beta, gamma=gamma,
            dnll=float(np.sum(s * r)), d2nll=float(schur.sum()),
        )  # fmt: skip
        return profile, decrement

    def fit(
        self,
        *,
        init: Profile | None = None,
        bounds: tuple[float, float] = POI_BOUNDS,
        tol: float = 1e-9,
        max_iter: int = 100,
        history: list[Profile] | None = None,
    ) -> Profile:
        r"""Unconditional maximum-likelihood fit, :math:`\hat\mu` within ``bounds``.

        Safeguarded Newton on :math:`p'(\mu) = 0` with a bracket kept from the sign of
        :math:`p'`; a boundary is the answer when the slope there points outwards (as a bounded
        minimiser would stop there; pyhf's :math:`\tilde q_\mu` relies on it).

        Arguments:
            init: defaults to None (start at μ = 1, β = γ = 1); else a profile to warm-start from.
            bounds: defaults to (0, 10) (the POI bounds of the workspace).
            tol: defaults to 1e-9 (step in μ, relative to max(1, |μ|), at convergence).
            max_iter: defaults to 100 (Newton steps before giving up).
            history: defaults to None; else a list every solved profile is appended to.

        Returns:
            The :class:`Profile` at :math:`\hat\mu`; ``1/sqrt(d2nll)`` is its HESSE uncertainty.

        Raises:
            FitError: no convergence.
        """
        lo, hi = float(bounds[0]), float(bounds[1])
        mu = 1.0 if init is None else float(init.mu)
        mu = min(max(mu, lo), hi)
        history = [] if history is None else history
        prof = self.profile(mu, None if init is None else (init.beta, init.gamma))
        history.append(prof)
        tried_edge = {lo: False, hi: False}
        for _ in range(max_iter):
            if prof.dnll > 0:
                hi = prof.mu
            else:
                lo = prof.mu
            on_low = prof.mu <= bounds[0] and prof.dnll >= 0
            if on_low or (prof.mu >= bounds[1] and prof.dnll <= 0):
                return prof  # the minimum is on a boundary
            new = prof.mu - prof.dnll / prof.d2nll if prof.d2nll > 0 else np.nan
            if not lo < new < hi:
                # Newton leaves the bracket: try a bound once if the bracket reaches it, else bisect
                edge = lo if not new > lo else hi
                if edge in tried_edge and not tried_edge[edge]:
                    tried_edge[edge] = True
                    new = edge
                else:
                    new = 0.5 * (lo + hi)
            converged = abs(new - prof.mu) < tol * max(1.0, abs(new))
            prof = self.profile(new, (prof.beta, prof.gamma))
            history.append(prof)
            if converged:
                return prof
        raise FitError(f"free fit did not converge in {max_iter} steps (last mu={prof.mu:.6g})")

    def check_against_pyhf(self, workspace: dict, profile: Profile, *, rtol: float = 1e-9) -> float:
        r"""Compare :meth:`nll` with ``-logpdf`` of pyhf's model of ``workspace`` at ``profile``.

        Guards the shortcut: this likelihood must be the workspace's likelihood. Costs one pyhf
        model construction (~20 ms). Names of the modifiers follow
        :func:`~flowsim.analysis.model.build_workspace`.

        Returns:
            pyhf's :math:`-\ln L` at the profile's parameters.

        Raises:
            RuntimeError: the two differ by more than ``rtol`` (defaults to 1e-9, relative).
        """
        import pyhf

        from flowsim.analysis.model import POI, SHAPESYS, staterror_name

        ws = pyhf.Workspace(workspace)
        model = ws.model()
        channel = model.config.channels[0]
        pars = np.asarray(model.config.suggested_init(), dtype=float)
        pars[model.config.par_slice(POI)] = profile.mu
        pars[model.config.par_slice(SHAPESYS)] = profile.beta
        pars[model.config.par_slice(staterror_name(channel))] = profile.gamma
        theirs = -float(np.asarray(model.logpdf(pars, ws.data(model))).ravel()[0])
        ours = self.nll(profile.mu, profile.beta, profile.gamma)
        if not abs(ours - theirs) <= rtol * max(1.0, abs(theirs)):
            raise RuntimeError(
                f"the fast likelihood ({ours!r}) disagrees with pyhf's ({theirs!r}) on the same "
                "workspace; the model and the likelihood have drifted apart"
            )
        return theirs

    def asimov(self, mu: float, *, profile: Profile | None = None) -> BinnedLikelihood:
        r"""The Asimov data set of hypothesis ``mu`` with nuisances profiled on this data.

        As ``pyhf.infer.calculators.generate_asimov_data``: fit β, γ at fixed ``mu`` to the
        observed data, then replace the main data by :math:`\mu S_i + \hat\beta_i\hat\gamma_i B_i`
        and the auxiliary data by their expectations :math:`\tau_i\hat\beta_i` and
        :math:`\hat\gamma_i` (Cowan et al. 2011, Sec. 3.2).

        Arguments:
            mu: the hypothesis (0 for the background-only Asimov set of CLs limits).
            profile: defaults to None (profile at ``mu`` now); else that profile, reused.
        """
        prof = profile if profile is not None else self.profile(mu)
        return self.with_data(
            observed=self.expected(mu, prof.beta, prof.gamma),
            aux_shapesys=self.tau * prof.beta,
            aux_staterror=prof.gamma,
        )
