r"""Exact profile likelihood of the one-channel HistFactory model, solved bin by bin in numpy.

The model of :mod:`flowsim.analysis.model` has the negative log-likelihood (pyhf's, constants
included, so ``nll == -pyhf.Model.logpdf``)

.. math::

    -\ln L(\mu, \beta, \gamma, \eta) = \sum_i \Big[ \nu_i - n_i \ln \nu_i + \ln\Gamma(n_i + 1)
        + \tau_i\beta_i - a_i \ln(\tau_i\beta_i) + \ln\Gamma(a_i + 1)
        + \frac{(g_i - \gamma_i)^2}{2\delta_i^2} + \ln(\sqrt{2\pi}\,\delta_i)
        + \tau'_i\eta_i - a'_i \ln(\tau'_i\eta_i) + \ln\Gamma(a'_i + 1) \Big],
    \qquad \nu_i = \mu S_i + \beta_i \gamma_i \eta_i B_i,

with shapesys auxiliary counts :math:`a_i` (nominally :math:`\tau_i`) and staterror auxiliary
means :math:`g_i` (nominally 1). The surrogate uncertainty (``bkg_surrogate``, a second shapesys)
is optional: :math:`\eta_i` with the Poisson constraint of scale :math:`\tau'_i =
(B_i/\Delta'_i)^2` and auxiliary counts :math:`a'_i` (nominally :math:`\tau'_i`). In a bin with
no surrogate uncertainty (:math:`\Delta'_i = 0`) pyhf fixes :math:`\eta_i = 1` and sets
:math:`\tau'_i = a'_i = 1`, keeping the constant term :math:`-\ln\mathrm{Pois}(1 \mid 1) = 1`;
without the modifier the last three terms are absent and :math:`\eta_i \equiv 1`.

Shortcut (exact, not an approximation): for fixed :math:`\mu` the likelihood factorises over
bins, so the profiled nuisances :math:`(\hat{\hat\beta}_i, \hat{\hat\gamma}_i)` (and
:math:`\hat{\hat\eta}_i`) solve K independent 2- (3-) parameter problems. They are solved
together by a vectorised, line-searched Newton method with analytic gradients and Hessians
(batched 2x2 or 3x3 solves), instead of one 2K+1 (3K+1) dimensional SLSQP fit with
finite-difference gradients (pyhf 0.7.6, numpy backend, 45 parameters: 0.07-1 s per fit;
this: ~0.5 ms). The profile :math:`p(\mu) = \min_{\beta,\gamma,\eta} -\ln L` has, by the
envelope theorem,

.. math::

    p'(\mu) = \sum_i S_i (1 - n_i/\nu_i), \qquad
    p''(\mu) = \sum_i \big[ H_{\mu\mu} - H_{\mu\theta} H_{\theta\theta}^{-1} H_{\theta\mu} \big]_i ,

the second being the Schur complement of the full Hessian (over the free nuisances
:math:`\theta`: those not on a bound nor fixed), so :math:`1/\sqrt{p''(\hat\mu)}`
equals the HESSE (inverse-Hessian) uncertainty :math:`\sqrt{(H^{-1})_{\mu\mu}}` that MINUIT
would report. The best fit :math:`\hat\mu` within the POI bounds (by default [0, 10]) comes
from a safeguarded Newton iteration on :math:`p'(\mu) = 0`.

Validated against pyhf (``tests/analysis``), with and without the surrogate: ``nll`` equals
``-model.logpdf`` to 1e-10; fitted twice-NLL, :math:`\hat\mu` and Asimov data agree with
``pyhf.infer.mle`` and ``pyhf.infer.calculators.generate_asimov_data``. Without a surrogate the
2-parameter solver runs, exactly as before the surrogate existed.

References:
    Cranmer et al., CERN-OPEN-2012-016 (HistFactory); Cowan, Cranmer, Gross, Vitells,
    EPJC 71 (2011) 1554, arXiv:1007.1727 (profile likelihood ratio).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
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
        eta: defaults to None (the model has no surrogate uncertainty); else the profiled
            surrogate (``bkg_surrogate``) parameters, shape (K,), 1 where fixed.
    """

    mu: float
    nll: float
    beta: np.ndarray
    gamma: np.ndarray
    dnll: float
    d2nll: float
    eta: np.ndarray | None = None

    @property
    def nuisances(self) -> tuple[np.ndarray, ...]:
        """``(beta, gamma)``, or ``(beta, gamma, eta)`` with a surrogate: the ``init`` of
        :meth:`BinnedLikelihood.profile` that warm-starts from this profile."""
        return (self.beta, self.gamma) if self.eta is None else (self.beta, self.gamma, self.eta)


def _backtracked(
    x: np.ndarray, step: np.ndarray, f: np.ndarray, terms: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The projected step x(t) = clip(x + t·step) into the nuisance bounds, each bin's t halved
    from 1 (at most 60 times) until its -ln L ``terms`` do not rise; x and step are (K, m)."""
    lo, hi = NUISANCE_BOUNDS
    t = np.ones_like(f)
    for _ in range(60):
        x_new = np.minimum(np.maximum(x + t[:, None] * step, lo), hi)
        f_new = terms(x_new)
        worse = f_new > f + 1e-13 * (1.0 + np.abs(f))
        if not worse.any():
            break
        t = np.where(worse, 0.5 * t, t)
    return x_new, f_new


def _pinned(x: np.ndarray, grad: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Parameters on a bound whose gradient of -ln L points out of the box (active bounds)."""
    return ((x <= lo) & (grad > 0)) | ((x >= hi) & (grad < 0))


def _solve_free(hess: np.ndarray, rhs: np.ndarray, fix: np.ndarray) -> np.ndarray:
    r"""Per bin, :math:`x_F = H_{FF}^{-1} r_F` over the free parameters F; :math:`x = 0` where
    ``fix``.

    ``hess`` (K, 3, 3) symmetric with a positive diagonal, ``rhs`` and ``fix`` (K, 3). Solved in
    closed form (adjugate) after Jacobi scaling, :math:`C = D^{-1/2} H D^{-1/2}` with unit
    diagonal, whose leading minors :math:`1 - c_{01}^2` and :math:`\det C` tell whether
    :math:`H_{FF}` is positive definite (Sylvester; rows and columns of fixed parameters are
    those of the identity). Where it is not (minor below 1e-12), the bin gets the diagonal
    solution :math:`r_j / H_{jj}`.

    Returns:
        The solution, shape (K, 3).
    """
    diag = np.where(fix, 1.0, np.diagonal(hess, axis1=1, axis2=2))
    scale = 1.0 / np.sqrt(diag)
    c = hess * scale[:, :, None] * scale[:, None, :]
    c = np.where(fix[:, :, None] | fix[:, None, :], 0.0, c)
    c01, c02, c12 = c[:, 0, 1], c[:, 0, 2], c[:, 1, 2]
    det = 1.0 + 2.0 * c01 * c02 * c12 - c01**2 - c02**2 - c12**2
    ok = (1.0 - c01**2 > 1e-12) & (det > 1e-12)
    y = np.where(fix, 0.0, rhs) * scale
    adj = np.stack(
        [
            [1.0 - c12**2, c02 * c12 - c01, c01 * c12 - c02],
            [c02 * c12 - c01, 1.0 - c02**2, c01 * c02 - c12],
            [c01 * c12 - c02, c01 * c02 - c12, 1.0 - c01**2],
        ]
    )  # (3, 3, K)
    newton = np.einsum("ijk,kj->ki", adj, y) / np.where(ok, det, 1.0)[:, None]
    x = np.where(ok[:, None], newton, y) * scale
    return np.where(fix, 0.0, x)


@dataclass(frozen=True, eq=False)
class BinnedLikelihood:
    r""":math:`-\ln L` of one channel (signal × μ, background × shapesys × staterror
    [× surrogate]).

    Attributes (arrays of shape (K,)):
        signal: signal yields :math:`S_i`.
        background: background yields :math:`B_i > 0`.
        observed: observed counts :math:`n_i \ge 0` (Asimov: not integers).
        tau: shapesys constraint scale :math:`\tau_i = (B_i/\Delta_i)^2`.
        delta: staterror relative width :math:`\delta_i > 0`.
        aux_shapesys: shapesys auxiliary data :math:`a_i`, defaults to ``tau``.
        aux_staterror: staterror auxiliary data :math:`g_i`, defaults to 1.
        tau_surrogate: defaults to None (no surrogate uncertainty); else the surrogate
            constraint scale :math:`\tau'_i = (B_i/\Delta'_i)^2 > 0`, or 0 in a bin without
            surrogate uncertainty (there :math:`\eta_i` is fixed at 1 and the constraint is
            pyhf's :math:`\mathrm{Pois}(a'_i \mid \eta_i)`, :math:`\tau'_i = 1`).
        aux_surrogate: surrogate auxiliary data :math:`a'_i > 0`, defaults to ``tau_surrogate``
            (1 where it is 0); only with ``tau_surrogate``.
    """

    signal: np.ndarray
    background: np.ndarray
    observed: np.ndarray
    tau: np.ndarray
    delta: np.ndarray
    aux_shapesys: np.ndarray | None = None
    aux_staterror: np.ndarray | None = None
    tau_surrogate: np.ndarray | None = None
    aux_surrogate: np.ndarray | None = None
    _const: float = field(init=False, repr=False)
    #: the surrogate's effective constraint scale (1 in fixed bins), and where eta is free
    _tau_sur: np.ndarray | None = field(init=False, repr=False)
    _free_sur: np.ndarray | None = field(init=False, repr=False)

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
        if self.tau_surrogate is not None:
            arrays["tau_surrogate"] = np.array(self.tau_surrogate, dtype=float)
            arrays["aux_surrogate"] = (
                np.where(arrays["tau_surrogate"] > 0, arrays["tau_surrogate"], 1.0)
                if self.aux_surrogate is None else np.array(self.aux_surrogate, dtype=float)
            )  # fmt: skip
        elif self.aux_surrogate is not None:
            raise ValueError("aux_surrogate needs tau_surrogate (the model has no surrogate)")
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
        total, tau_sur, free_sur = float(const.sum()), None, None
        if self.tau_surrogate is not None:
            if np.any(arrays["tau_surrogate"] < 0):
                raise ValueError("tau_surrogate must be >= 0 in every bin (0: no surrogate)")
            if np.any(arrays["aux_surrogate"] <= 0):
                raise ValueError("aux_surrogate must be positive in every bin")
            free_sur = arrays["tau_surrogate"] > 0
            tau_sur = np.where(free_sur, arrays["tau_surrogate"], 1.0)
            a2 = self.aux_surrogate
            total += float(np.sum(a2 - a2 * np.log(a2) + gammaln(a2 + 1.0)))
            tau_sur.flags.writeable = free_sur.flags.writeable = False
        object.__setattr__(self, "_const", total)
        object.__setattr__(self, "_tau_sur", tau_sur)
        object.__setattr__(self, "_free_sur", free_sur)

    # construction -------------------------------------------------------------------------
    @classmethod
    def from_yields(cls, yields: ChannelYields) -> BinnedLikelihood:
        """The likelihood of the workspace :func:`~flowsim.analysis.model.build_workspace` makes.

        ``tau`` and ``delta`` are computed with pyhf's formulas from the same numbers as the
        spec: ``tau = B**2 / (rel * B)**2`` and ``delta = stat / B``; with a surrogate
        uncertainty positive in some bin, ``tau_surrogate = B**2 / sur**2`` there and 0 where
        ``sur`` is 0 (None, or 0 in every bin: no surrogate, as the workspace).
        """
        b = np.asarray(yields.background, dtype=float)
        unc = yields.shapesys_rel * b
        sur = yields.background_surrogate
        tau_sur = None
        if sur is not None and np.any(np.asarray(sur, dtype=float) > 0):
            sur = np.asarray(sur, dtype=float)
            if sur.shape != b.shape:
                raise ValueError(
                    f"background_surrogate must have the shape {b.shape} of the background, "
                    f"got {sur.shape}"
                )
            free = sur > 0
            tau_sur = np.where(free, b**2 / np.where(free, sur, 1.0) ** 2, 0.0)
        return cls(
            signal=yields.signal,
            background=b,
            observed=yields.observed,
            tau=b**2 / unc**2,
            delta=np.asarray(yields.background_stat, dtype=float) / b,
            tau_surrogate=tau_sur,
        )

    def with_data(
        self,
        observed: np.ndarray,
        aux_shapesys: np.ndarray | None = None,
        aux_staterror: np.ndarray | None = None,
        aux_surrogate: np.ndarray | None = None,
    ) -> BinnedLikelihood:
        """The same model with other observed (and, optionally, auxiliary) data."""
        return replace(
            self, observed=observed, aux_shapesys=aux_shapesys, aux_staterror=aux_staterror,
            aux_surrogate=aux_surrogate,
        )  # fmt: skip

    @property
    def n_bins(self) -> int:
        """Number of bins ``K``."""
        return self.background.size

    @property
    def has_surrogate(self) -> bool:
        r"""Whether the model has the surrogate parameters :math:`\eta` (``tau_surrogate``)."""
        return self.tau_surrogate is not None

    def _check_eta(self, eta: np.ndarray | None) -> np.ndarray | None:
        """``eta`` as a float array (ones if None); None for a model without surrogate, which
        refuses an ``eta``."""
        if not self.has_surrogate:
            if eta is not None:
                raise ValueError("eta given, but this model has no surrogate uncertainty")
            return None
        return np.ones(self.n_bins) if eta is None else np.asarray(eta, dtype=float)

    # likelihood ---------------------------------------------------------------------------
    def expected(
        self, mu: float, beta: np.ndarray, gamma: np.ndarray, eta: np.ndarray | None = None
    ) -> np.ndarray:
        r"""Expected counts :math:`\nu_i = \mu S_i + \beta_i \gamma_i \eta_i B_i`.

        ``eta`` defaults to None (1; the only choice without a surrogate)."""
        eta = self._check_eta(eta)
        if eta is None:
            return mu * self.signal + beta * gamma * self.background
        return mu * self.signal + beta * gamma * eta * self.background

    def _bin_terms(
        self, mus: np.ndarray, beta: np.ndarray, gamma: np.ndarray, eta: np.ndarray | None = None
    ) -> np.ndarray:
        r"""Per-bin :math:`-\ln L` minus its constant: deviance form, each term >= 0 near data."""
        n, a = self.observed, self.aux_shapesys
        if eta is None:
            nu = mus + beta * gamma * self.background
        else:
            nu = mus + beta * gamma * eta * self.background
        tb = self.tau * beta
        terms = (
            nu - n + xlogy(n, n / nu)
            + tb - a + a * np.log(a / tb)
            + 0.5 * ((gamma - self.aux_staterror) / self.delta) ** 2
        )  # fmt: skip
        if eta is None:
            return terms
        a2, te = self.aux_surrogate, self._tau_sur * eta
        return terms + (te - a2 + a2 * np.log(a2 / te))

    def nll(
        self, mu: float, beta: np.ndarray, gamma: np.ndarray, eta: np.ndarray | None = None
    ) -> float:
        r""":math:`-\ln L` with every constant, equal to ``-pyhf.Model.logpdf`` of the workspace.

        ``eta`` defaults to None (1 in every bin; the only choice without a surrogate). The
        formula holds for any ``eta``, also in bins where pyhf fixes it (:math:`\tau'_i = 1`).
        """
        beta, gamma, eta = np.asarray(beta, float), np.asarray(gamma, float), self._check_eta(eta)
        return float(self._bin_terms(mu * self.signal, beta, gamma, eta).sum() + self._const)

    def twice_nll(self, profile: Profile) -> float:
        r""":math:`-2\ln L` of a solved profile with every constant (pyhf's ``twice_nll``)."""
        return 2.0 * (profile.nll + self._const)

    # profiling ----------------------------------------------------------------------------
    def profile(
        self,
        mu: float,
        init: tuple[np.ndarray, ...] | None = None,
        *,
        tol: float = 1e-10,
        max_iter: int = 200,
    ) -> Profile:
        """Minimise over the nuisances at fixed ``mu`` (conditional fit).

        Arguments:
            mu: the fixed signal strength (any real value with non-negative expected counts).
            init: defaults to None (start from β = γ = η = 1); else (beta, gamma) or
                (beta, gamma, eta) to warm-start (:attr:`Profile.nuisances`; an ``eta`` is
                ignored without a surrogate, and starts at 1 if not given).
            tol: defaults to 1e-10 (largest Newton step, in parameter units, at convergence).
            max_iter: defaults to 200 (Newton iterations before giving up).

        Raises:
            FitError: no convergence within ``max_iter``.
        """
        if self.has_surrogate:
            return self._profile_surrogate(mu, init, tol=tol, max_iter=max_iter)
        lo, hi = NUISANCE_BOUNDS
        s, b, n, tau, a = self.signal, self.background, self.observed, self.tau, self.aux_shapesys
        g, d2inv = self.aux_staterror, 1.0 / self.delta**2
        mus = mu * s
        if init is None:
            beta, gamma = np.ones_like(b), np.ones_like(b)
        else:
            beta, gamma = np.array(init[0], dtype=float), np.array(init[1], dtype=float)
        f = self._bin_terms(mus, beta, gamma)

        def terms(x: np.ndarray) -> np.ndarray:
            return self._bin_terms(mus, x[:, 0], x[:, 1])
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
            x_new, f_new = _backtracked(
                np.stack([beta, gamma], axis=1), np.stack([step_b, step_g], axis=1), f, terms
            )
            beta_new, gamma_new = x_new[:, 0], x_new[:, 1]
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

    # the three-parameter problem of a model with a surrogate uncertainty ------------------
    def _derivatives(
        self, mus: np.ndarray, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        r"""Per-bin derivatives at ``x = (beta, gamma, eta)`` (K, 3), with a surrogate.

        With :math:`u_j = \partial\nu/\partial\theta_j` (e.g. :math:`u_\beta = \gamma\eta B`),
        :math:`r = 1 - n/\nu` and :math:`w = n/\nu^2`: gradient
        :math:`r u_j + \partial_j(\text{constraint})`, Hessian
        :math:`w u_j u_k + r\,\partial_j\partial_k\nu + \partial_j\partial_k(\text{constraint})`
        (:math:`\partial_\beta\partial_\gamma\nu = \eta B` etc.) and mixed μ-derivatives
        :math:`S w u_j`.

        Returns:
            ``(grad (K, 3), hess (K, 3, 3), h_mu (K, 3), r, w)``.
        """
        beta, gamma, eta = x[:, 0], x[:, 1], x[:, 2]
        b, n, a, a2 = self.background, self.observed, self.aux_shapesys, self.aux_surrogate
        u = np.stack([gamma * eta * b, beta * eta * b, beta * gamma * b], axis=1)
        nu = mus + beta * u[:, 0]
        r = 1.0 - n / nu
        w = n / nu**2
        grad = r[:, None] * u + np.stack(
            [
                self.tau - a / beta,
                (gamma - self.aux_staterror) / self.delta**2,
                self._tau_sur - a2 / eta,
            ],
            axis=1,
        )
        hess = w[:, None, None] * u[:, :, None] * u[:, None, :]
        hess[:, 0, 0] += a / beta**2
        hess[:, 1, 1] += 1.0 / self.delta**2
        hess[:, 2, 2] += a2 / eta**2
        for j, k, other in ((0, 1, eta), (0, 2, gamma), (1, 2, beta)):
            cross = r * other * b
            hess[:, j, k] += cross
            hess[:, k, j] += cross
        h_mu = (self.signal * w)[:, None] * u
        return grad, hess, h_mu, r, w

    def _profile_surrogate(
        self, mu: float, init: tuple[np.ndarray, ...] | None, *, tol: float, max_iter: int
    ) -> Profile:
        """:meth:`profile` of a model with a surrogate: per bin a bounded 3-parameter Newton
        method (η fixed at 1 in bins without surrogate uncertainty), the same active-bound
        logic and backtracking as the 2-parameter one."""
        lo, hi = NUISANCE_BOUNDS
        mus = mu * self.signal
        x = np.ones((self.n_bins, 3))
        if init is not None:
            for j, start in enumerate(init[:3]):
                if start is not None:
                    x[:, j] = start
        fixed = np.zeros_like(x, dtype=bool)
        fixed[:, 2] = ~self._free_sur
        x[fixed] = 1.0
        f = self._bin_terms(mus, *x.T)

        def terms(x: np.ndarray) -> np.ndarray:
            return self._bin_terms(mus, *x.T)
        for _ in range(max_iter):
            grad, hess, _, _, _ = self._derivatives(mus, x)
            # active bounds: a parameter on a bound whose gradient points outwards stays there
            # and the free ones take a Newton step; where that step would leave the box through
            # a bound the gradient points away from, the bin takes a diagonally scaled gradient
            # step instead (also where the free block of the Hessian is not positive definite)
            fix = fixed | _pinned(x, grad, lo, hi)
            step = _solve_free(hess, -grad, fix)
            diagonal = -grad / np.diagonal(hess, axis1=1, axis2=2)
            one_d = np.any(~fix & _pinned(x, -step, lo, hi), axis=1)
            step = np.where(fix, 0.0, np.where(one_d[:, None], diagonal, step))
            # projected step x(t) = clip(x + t dx) with backtracking on t, bin by bin
            x_new, f_new = _backtracked(x, step, f, terms)
            moved = float(np.max(np.abs(x_new - x)))
            x, f = x_new, f_new
            if moved < tol:
                break
        else:
            raise FitError(f"profile at mu={mu:.6g} did not converge in {max_iter} iterations")
        result, decrement = self._profile_result_surrogate(mu, x, f, fixed)
        if decrement > 1e-8:
            raise FitError(f"profile at mu={mu:.6g} stalled (Newton decrement {decrement:.2g})")
        return result

    def _profile_result_surrogate(
        self, mu: float, x: np.ndarray, f: np.ndarray, fixed: np.ndarray
    ) -> tuple[Profile, float]:
        r""":meth:`_profile_result` with a surrogate: the Schur complement
        :math:`S^2 w - h_{\mu F} H_{FF}^{-1} h_{F\mu}` over the free nuisances F of each bin."""
        lo, hi = NUISANCE_BOUNDS
        mus = mu * self.signal
        grad, hess, h_mu, r, w = self._derivatives(mus, x)
        fix = fixed | _pinned(x, grad, lo, hi)
        diag = np.diagonal(hess, axis1=1, axis2=2)
        decrement = float(np.max(np.where(fix, 0.0, grad**2 / diag)))
        solved = _solve_free(hess, h_mu, fix)
        schur = self.signal**2 * w - np.sum(np.where(fix, 0.0, h_mu) * solved, axis=1)
        beta, gamma, eta = (np.ascontiguousarray(x[:, j]) for j in range(3))
        profile = Profile(
            mu=float(mu), nll=float(f.sum()), beta=beta, gamma=gamma,
            dnll=float(np.sum(self.signal * r)), d2nll=float(schur.sum()), eta=eta,
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
        minimiser would stop there; pyhf's :math:`\tilde q_\mu` relies on it). A trial μ whose
        profile is not finite lies outside the model's domain (with a negative lower bound,
        :math:`\mu S_i + B_i` can reach 0): it becomes the end of the bracket on its side, and the
        search goes on inside.

        Arguments:
            init: defaults to None (start at μ = 1, β = γ = η = 1); else a profile to warm-start
                from.
            bounds: defaults to (0, 10) (the POI bounds of the workspace).
            tol: defaults to 1e-9 (step in μ, relative to max(1, |μ|), at convergence).
            max_iter: defaults to 100 (Newton steps before giving up).
            history: defaults to None; else a list every solved profile is appended to.

        Returns:
            The :class:`Profile` at :math:`\hat\mu`; ``1/sqrt(d2nll)`` is its HESSE uncertainty.

        Raises:
            FitError: no convergence, or neither start (``init``, then μ = 1) inside the domain.
        """
        lo, hi = float(bounds[0]), float(bounds[1])
        history = [] if history is None else history
        # a warm start may lie outside this model's domain (another luminosity's best fit): then
        # the cold start, mu = 1 and nominal nuisances, where every expected count is positive
        starts = [(1.0, None)] if init is None else [(float(init.mu), init.nuisances), (1.0, None)]
        for mu, nuisances in starts:
            prof = self.profile(min(max(mu, lo), hi), nuisances)
            if math.isfinite(prof.nll):
                break
        else:
            raise FitError(f"the fit's start mu={prof.mu:.6g} lies outside the model's domain (-ln L is not finite)")
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
            trial = self.profile(new, prof.nuisances)
            if not math.isfinite(trial.nll):
                # beyond the domain's end: the minimum lies between here and the last good point
                lo, hi = (new, hi) if new < prof.mu else (lo, new)
                continue
            prof = trial
            history.append(prof)
            if converged:
                return prof
        raise FitError(f"free fit did not converge in {max_iter} steps (last mu={prof.mu:.6g})")

    def check_against_pyhf(self, workspace: dict, profile: Profile, *, rtol: float = 1e-9) -> float:
        r"""Compare :meth:`nll` with ``-logpdf`` of pyhf's model of ``workspace`` at ``profile``.

        Guards the shortcut: this likelihood must be the workspace's likelihood. Costs one pyhf
        model construction (~20 ms). Names of the modifiers follow
        :func:`~flowsim.analysis.model.build_workspace`; the ``bkg_surrogate`` parameters, where
        the workspace has them, are set to the profile's ``eta`` (1 if it has none).

        Returns:
            pyhf's :math:`-\ln L` at the profile's parameters.

        Raises:
            RuntimeError: the two differ by more than ``rtol`` (defaults to 1e-9, relative).
        """
        import pyhf

        from flowsim.analysis.model import POI, SHAPESYS, SURROGATE, staterror_name

        ws = pyhf.Workspace(workspace)
        model = ws.model()
        channel = model.config.channels[0]
        pars = np.asarray(model.config.suggested_init(), dtype=float)
        pars[model.config.par_slice(POI)] = profile.mu
        pars[model.config.par_slice(SHAPESYS)] = profile.beta
        pars[model.config.par_slice(staterror_name(channel))] = profile.gamma
        if SURROGATE in model.config.parameters and profile.eta is not None:
            pars[model.config.par_slice(SURROGATE)] = profile.eta
        theirs = -float(np.asarray(model.logpdf(pars, ws.data(model))).ravel()[0])
        ours = self.nll(profile.mu, profile.beta, profile.gamma, profile.eta)
        if not abs(ours - theirs) <= rtol * max(1.0, abs(theirs)):
            raise RuntimeError(
                f"the fast likelihood ({ours!r}) disagrees with pyhf's ({theirs!r}) on the same "
                "workspace; the model and the likelihood have drifted apart"
            )
        return theirs

    def asimov(self, mu: float, *, profile: Profile | None = None) -> BinnedLikelihood:
        r"""The Asimov data set of hypothesis ``mu`` with nuisances profiled on this data.

        As ``pyhf.infer.calculators.generate_asimov_data``: fit β, γ (η) at fixed ``mu`` to the
        observed data, then replace the main data by
        :math:`\mu S_i + \hat\beta_i\hat\gamma_i\hat\eta_i B_i` and the auxiliary data by their
        expectations :math:`\tau_i\hat\beta_i`, :math:`\hat\gamma_i` (and
        :math:`\tau'_i\hat\eta_i`, 1 where η is fixed) (Cowan et al. 2011, Sec. 3.2).

        Arguments:
            mu: the hypothesis (0 for the background-only Asimov set of CLs limits).
            profile: defaults to None (profile at ``mu`` now); else that profile, reused.
        """
        prof = profile if profile is not None else self.profile(mu)
        if not self.has_surrogate:
            return self.with_data(
                observed=self.expected(mu, prof.beta, prof.gamma),
                aux_shapesys=self.tau * prof.beta,
                aux_staterror=prof.gamma,
            )
        eta = self._check_eta(prof.eta)
        return self.with_data(
            observed=self.expected(mu, prof.beta, prof.gamma, eta),
            aux_shapesys=self.tau * prof.beta,
            aux_staterror=prof.gamma,
            aux_surrogate=self._tau_sur * eta,
        )
