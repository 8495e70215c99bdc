"""Feature scaling fitted on the background training split, with an exact inverse.

Methods (``scaling.method``):

``gauss_rank``
    Each feature goes through its empirical CDF and the standard normal quantile,
    ``z = Φ⁻¹(F̂(x)) = √2 · erfinv(2 F̂(x) − 1)``, so the training data become N(0, 1) in every
    coordinate (the authors' code dropped the √2 and produced N(0, ½)). ``F̂`` at the j-th
    distinct training value ``v_j`` is its mid-rank ``(mean position of v_j in the sorted sample
    + ½) / n``: ties are broken deterministically by averaging, and the knots ``(v_j, z_j)`` are
    strictly increasing in both coordinates. Between knots the map is linear, hence exactly
    invertible; beyond the fitted range it continues linearly with the slope of the outermost
    percent of knots, so unseen tails stay finite and monotone. At most ``max_knots`` knots are
    kept, chosen evenly in ``z`` so the tails keep their resolution. With event weights ``w``
    the CDF is the weighted one, ``F̂(v_j) = (W_below + W_at / 2) / W`` (the weight below ``v_j``,
    at it, in all), which for unit weights is the mid-rank above; an integer weight acts as that
    many copies of the event. Negative weights can make it non-monotone or leave ``(0, 1)``: only
    the knots where ``F̂`` rises above every earlier knot and lies inside ``(0, 1)`` are kept.
``logit``
    ``y = (x − lo) / (hi − lo)`` with ``[lo, hi]`` the training range widened by a margin, then
    ``l = log(y / (1 − y))`` standardised to zero mean and unit variance (weighted moments with
    event weights; the range is the sample's whatever its weights). Values outside ``[lo, hi]``
    are clipped just inside it, and their number is logged.
``none``
    The identity.

Features named in ``odd`` (whose signs flip together under a symmetry of the data, e.g. every
η under η → −η) get odd maps, ``z(−x) = −z(x)``, so the symmetry acts on the scaled space as a
sign flip too: ``gauss_rank`` is fitted on the sample and its mirror image ``{x} ∪ {−x}`` (an
event's mirror image carries its weight) and its knots are mirrored exactly, ``logit`` gets the
range ``[−m, m]`` with ``m = max |x|`` and zero mean. The fit logs how far each such feature
is from symmetric.

A fitted scaler is stored as plain arrays in an ``.npz`` (no pickle) and loads back exactly.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.special import ndtri

from flowsim.io import atomic_output
from flowsim.weights import check_weights

__all__ = ["METHODS", "Scaler", "fit_scaler", "load_scaler"]

log = logging.getLogger(__name__)

Method = Literal["gauss_rank", "logit", "none"]
METHODS: tuple[str, ...] = ("gauss_rank", "logit", "none")

_LOGIT_MARGIN = 0.01  # fraction of the range added on each side
_LOGIT_EPS = 1e-6  # how close to 0 or 1 a clipped y may come


@dataclass(frozen=True)
class Scaler:
    """A fitted per-feature map ``x -> z`` and its inverse; arrays only, so safe to share.

    ``params`` holds the method's arrays: for ``gauss_rank`` the concatenated knots
    ``x_knots``, ``z_knots`` and ``offsets`` (feature j's knots are ``offsets[j]:offsets[j+1]``)
    and the tail slopes ``slope_lo``, ``slope_hi``; for ``logit`` ``lo``, ``hi``, ``mean``, ``std``.
    """

    method: Method
    features: tuple[str, ...]
    params: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def odd_features(self) -> tuple[str, ...]:
        """The features whose maps are odd, ``z(−x) = −z(x)``."""
        odd = self.params.get("odd", np.zeros(len(self.features), dtype=bool))
        return tuple(f for f, is_odd in zip(self.features, odd) if is_odd)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Map data (n, D) in ``features`` order to the scaled space; float32 out."""
        x = self._check(x)
        if self.method == "none":
            return x.astype(np.float32)
        columns = [self._forward_column(j, x[:, j]) for j in range(x.shape[1])]
        return np.stack(columns, axis=1).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Map scaled values (n, D) back to data units; float32 out."""
        z = self._check(z)
        if self.method == "none":
            return z.astype(np.float32)
        columns = [self._inverse_column(j, z[:, j]) for j in range(z.shape[1])]
        return np.stack(columns, axis=1).astype(np.float32)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the scaler as an ``.npz`` of plain arrays, atomically."""
        with atomic_output(path, suffix=".npz") as tmp:
            np.savez(
                tmp,
                method=np.array(self.method),
                features=np.array(self.features),
                **{f"param_{k}": v for k, v in self.params.items()},
            )

    # -- internals -------------------------------------------------------------------------

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(
                f"expected an array of shape (n, {len(self.features)}) with columns "
                f"{list(self.features)}, got shape {x.shape}"
            )
        return x

    def _knots(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.params["offsets"][j], self.params["offsets"][j + 1]
        return self.params["x_knots"][lo:hi], self.params["z_knots"][lo:hi]

    def _forward_column(self, j: int, x: np.ndarray) -> np.ndarray:
        if self.method == "gauss_rank":
            xk, zk = self._knots(j)
            return _piecewise_linear(x, xk, zk, self.params["slope_lo"][j], self.params["slope_hi"][j])
        p = self.params
        y = (x - p["lo"][j]) / (p["hi"][j] - p["lo"][j])
        clipped = np.count_nonzero((y < _LOGIT_EPS) | (y > 1 - _LOGIT_EPS))
        if clipped:
            log.warning(
                "logit scaling of %s: %d value(s) outside the fitted range clipped to it",
                self.features[j], clipped,
            )  # fmt: skip
        y = np.clip(y, _LOGIT_EPS, 1 - _LOGIT_EPS)
        return (np.log(y) - np.log1p(-y) - p["mean"][j]) / p["std"][j]

    def _inverse_column(self, j: int, z: np.ndarray) -> np.ndarray:
        if self.method == "gauss_rank":
            xk, zk = self._knots(j)
            beyond = np.count_nonzero((z < zk[0]) | (z > zk[-1]))
            if beyond:
                log.info(
                    "%s: %d value(s) beyond the fitted range, continued linearly",
                    self.features[j], beyond,
                )  # fmt: skip
            return _piecewise_linear(
                z, zk, xk, 1.0 / self.params["slope_lo"][j], 1.0 / self.params["slope_hi"][j]
            )
        p = self.params
        y = 0.5 * (1.0 + np.tanh(0.5 * (z * p["std"][j] + p["mean"][j])))  # stable sigmoid
        return p["lo"][j] + y * (p["hi"][j] - p["lo"][j])


def _piecewise_linear(
    x: np.ndarray, xk: np.ndarray, yk: np.ndarray, slope_lo: float, slope_hi: float
) -> np.ndarray:
    """Linear interpolation through increasing knots, continued linearly beyond both ends."""
    y = np.interp(x, xk, yk)
    below, above = x < xk[0], x > xk[-1]
    y[below] = yk[0] + slope_lo * (x[below] - xk[0])
    y[above] = yk[-1] + slope_hi * (x[above] - xk[-1])
    return y


def _gauss_rank_knots(
    x: np.ndarray, max_knots: int, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and the normal quantiles of their mid-ranks (weighted mid-ranks with
    ``weights``), thinned evenly in z."""
    if weights is None:
        n = len(x)
        values, first, count = np.unique(np.sort(x), return_index=True, return_counts=True)
        midrank = first + 0.5 * (count - 1)  # mean 0-based position of each distinct value
        z = ndtri((midrank + 0.5) / n)  # = √2 erfinv(2p − 1), accurate in the far tails
    else:
        values, z = _weighted_rank_quantiles(x, weights)
    if len(values) > max_knots:
        grid = np.linspace(z[0], z[-1], max_knots)
        keep = np.unique(np.clip(np.searchsorted(z, grid), 0, len(z) - 1))
        values, z = values[keep], z[keep]
    return values, z


def _weighted_rank_quantiles(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values ``v_j`` and ``Φ⁻¹(F̂_j)``, ``F̂_j = (W_below + W_at / 2) / W``, at the knots
    where ``F̂`` strictly rises (running maximum) inside ``(0, 1)``; negative weights can break both."""
    x, weights = x[weights != 0], weights[weights != 0]  # an event of weight 0 is as good as absent
    order = np.argsort(x, kind="stable")
    values, first = np.unique(x[order], return_index=True)
    at = np.add.reduceat(weights[order], first)  # weight of each distinct value
    cumulative = np.cumsum(at)
    below = np.concatenate([[0.0], cumulative[:-1]])
    # integer weights: the same sums as (first + (count − 1)/2) + ½ of the repeated sample, exactly
    p = (below + 0.5 * at) / cumulative[-1]
    rises = p > np.maximum.accumulate(np.concatenate([[-np.inf], p[:-1]]))
    keep = rises & (p > 0) & (p < 1)
    dropped = len(p) - int(np.count_nonzero(keep))
    if dropped:
        log.info(
            "weighted Gauss-rank CDF: %d of %d knots dropped where negative weights made it fall back "
            "or leave (0, 1)", dropped, len(p),
        )  # fmt: skip
    if not keep.any():
        raise ValueError("the weighted empirical CDF has no knot inside (0, 1)")
    return values[keep], ndtri(p[keep])


def _odd_gauss_rank_knots(
    x: np.ndarray, max_knots: int, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Knots of the Gauss-rank map of ``{x} ∪ {−x}`` (each mirror image weighted like its event),
    mirrored so that ``z(−v) = −z(v)`` exactly.

    The positive half is kept and reflected through the knot (0, 0); that knot lies on the
    symmetric sample's map anyway (the median of a symmetric sample is 0).
    """
    both = None if weights is None else np.concatenate([weights, weights])
    values, z = _gauss_rank_knots(np.concatenate([x, -x]), max_knots, both)
    positive = values > 0
    values, z = values[positive], z[positive]
    return np.r_[-values[::-1], 0.0, values], np.r_[-z[::-1], 0.0, z]


def _asymmetry(x: np.ndarray) -> tuple[float, float]:
    """The KS distance ``D = sup_t |F̂(t) − (1 − F̂(−t⁻))|`` between the samples ``x`` and
    ``−x``, and the distance a symmetric density exceeds with probability 10⁻³.

    For a symmetric density ``√n D`` tends to the supremum of ``|W(s)|``, ``s ∈ [0, 1]``, of a
    Brownian motion (a sum of n independent ±1/0 terms of mean zero), which exceeds 3.48 with
    probability 10⁻³.
    """
    a, b = np.sort(x), np.sort(-x)
    grid = np.concatenate([a, b])
    distance = np.max(np.abs(np.searchsorted(a, grid, "right") - np.searchsorted(b, grid, "right"))) / len(x)
    return float(distance), 3.48 / math.sqrt(len(x))


def _log_asymmetry(x: np.ndarray, features: tuple[str, ...], odd: np.ndarray) -> None:
    for j in np.flatnonzero(odd):
        distance, critical = _asymmetry(x[:, j])
        if distance > critical:
            log.warning(
                "%s is not symmetric under x -> -x: KS distance %.4f between x and -x, above "
                "%.4f (p = 0.001 for a symmetric density); reconsider symmetry.flip_signs",
                features[j], distance, critical,
            )  # fmt: skip
        else:
            log.info("%s: KS distance %.4f between x and -x (p = 0.001 at %.4f)", features[j], distance, critical)


def _tail_slopes(xk: np.ndarray, zk: np.ndarray) -> tuple[float, float]:
    """Secant slopes dz/dx over the outermost percent of knots at each end."""
    if len(xk) < 2:
        return 1.0, 1.0
    k = max(1, len(xk) // 100)
    return (zk[k] - zk[0]) / (xk[k] - xk[0]), (zk[-1] - zk[-1 - k]) / (xk[-1] - xk[-1 - k])


def fit_scaler(
    x: np.ndarray,
    features: list[str] | tuple[str, ...],
    method: str,
    *,
    odd: list[str] | tuple[str, ...] = (),
    max_knots: int = 10_000,
    weights: np.ndarray | None = None,
) -> Scaler:
    """Fit a scaler on training data ``x`` of shape (n, D), columns in ``features`` order; the
    ``odd`` features get odd maps, and ``weights`` (one per event, negative ones allowed, a
    positive sum) weigh the CDFs and moments (see the module's docstring)."""
    if method not in METHODS:
        raise ValueError(f"scaling.method must be one of {list(METHODS)}, got {method!r}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(features) or len(x) < 2:
        raise ValueError(
            f"need at least 2 events with {len(features)} features to fit a scaler, "
            f"got shape {x.shape}"
        )
    if not np.isfinite(x).all():
        raise ValueError("cannot fit a scaler on non-finite values")
    weights = check_weights(weights, len(x), name="scaler training events")
    features = tuple(features)
    unknown = [f for f in odd if f not in features]
    if unknown:
        raise ValueError(f"odd feature(s) {unknown} are not among the features {list(features)}")
    is_odd = np.array([f in odd for f in features], dtype=bool)
    _log_asymmetry(x, features, is_odd)
    if method == "none":
        return Scaler("none", features, {"odd": is_odd})
    if method == "logit":
        return _fit_logit(x, features, is_odd, weights)
    knots = [
        (_odd_gauss_rank_knots if is_odd[j] else _gauss_rank_knots)(x[:, j], max_knots, weights)
        for j in range(x.shape[1])
    ]
    slopes = np.array([_tail_slopes(xk, zk) for xk, zk in knots])
    params = {
        "x_knots": np.concatenate([xk for xk, _ in knots]),
        "z_knots": np.concatenate([zk for _, zk in knots]),
        "offsets": np.cumsum([0] + [len(xk) for xk, _ in knots]),
        "slope_lo": slopes[:, 0],
        "slope_hi": slopes[:, 1],
        "odd": is_odd,
    }
    return Scaler("gauss_rank", features, params)


def _fit_logit(x: np.ndarray, features: tuple[str, ...], odd: np.ndarray, weights: np.ndarray | None) -> Scaler:
    # an odd feature is fitted on its mirrored sample: range [-m, m], logits of mean zero
    x = np.where(odd, np.abs(x), x)
    lo, hi = np.where(odd, -x.max(axis=0), x.min(axis=0)), x.max(axis=0)
    width = np.where(hi > lo, hi - lo, 1.0)
    lo, hi = lo - _LOGIT_MARGIN * width, hi + _LOGIT_MARGIN * width
    y = (x - lo) / (hi - lo)
    logits = np.log(y) - np.log1p(-y)
    # the mirrored sample's logits are ±l: second moment of l, mean exactly 0
    if weights is None:
        mean = np.where(odd, 0.0, logits.mean(axis=0))
        std = np.where(odd, np.sqrt(np.mean(logits**2, axis=0)), logits.std(axis=0))
    else:
        # Σ w l / Σ w and Σ w (l − mean)² / Σ w; negative weights could make the latter negative
        mean = np.where(odd, 0.0, np.average(logits, axis=0, weights=weights))
        var = np.average((logits - mean) ** 2, axis=0, weights=weights)
        std = np.sqrt(np.maximum(var, 0.0))
    params = {"lo": lo, "hi": hi, "mean": mean, "std": np.where(std > 0, std, 1.0), "odd": odd}
    return Scaler("logit", features, params)


def load_scaler(path: str | os.PathLike[str]) -> Scaler:
    """Load a scaler written by :meth:`Scaler.save` (no pickle involved)."""
    with np.load(path, allow_pickle=False) as f:
        method = str(f["method"])
        if method not in METHODS:
            raise ValueError(f"{path}: unknown scaling method {method!r}")
        features = tuple(str(s) for s in f["features"])
        params = {k.removeprefix("param_"): f[k] for k in f.files if k.startswith("param_")}
    return Scaler(method, features, params)  # type: ignore[arg-type]
