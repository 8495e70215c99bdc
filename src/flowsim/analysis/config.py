"""Settings of the simplified search: cut, binning, luminosity grid, signal fractions, systematics.

:class:`AnalysisConfig` is the validated, immutable form of the ``analysis`` section of the
workflow configuration. Every check raises :class:`flowsim.errors.ConfigError` (a ``ValueError``)
whose message starts with the offending key, e.g. ``config key 'analysis.cut': ...``.

Defaults follow the paper (Sec. 4.4) and ``DESIGN.md``: classifier cut 0.51, 25 uniform bins on
(cut, 1) for the score and (0, 3) for ``m_bb``, background cross-section 1000 fb, 30 log-spaced
luminosities from 10 to 1000 fb⁻¹, signal fractions α = S/B of 1% and 5%, a 10% per-bin
background systematic and 95% CL limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from flowsim.analysis.templates import uniform_edges
from flowsim.errors import ConfigError

__all__ = ["SCORE", "AnalysisConfig", "alpha_label"]

#: Name of the classifier-score observable; its range defaults to (cut, 1).
SCORE = "score"

_KEYS = {
    "cut", "n_bins", "observables", "sigma_b_fb", "lumi_fb", "alphas", "shapesys_rel", "cl",
    "empty_bins",
}  # fmt: skip
#: Keys of the ``analysis`` section that belong to other stages (the signal classifier's, and
#: the template filling's number of events).
_OTHER_STAGES = {"classifier", "n_template_events"}
_EMPTY_BINS = ("merge", "raise")


def alpha_label(alpha: float) -> str:
    """How a signal fraction appears in wildcards and file names: ``0.01`` -> ``"0.01"``."""
    return f"{alpha:g}"


def _positive(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"must be a number, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(key, f"must be positive and finite, got {value!r}")
    return number


@dataclass(frozen=True)
class AnalysisConfig:
    """Validated analysis settings (see the module docstring for the defaults' origin).

    Attributes:
        cut: classifier-score cut in [0, 1], defaults to 0.51 (paper); events with score above it
            are selected upstream.
        n_bins: uniform bins per observable, defaults to 25.
        observables: observable name -> (low, high) range; ``None`` for :data:`SCORE` means
            (cut, 1). Defaults to ``{"score": None, "m_bb": (0.0, 3.0)}``.
        sigma_b_fb: background cross-section σ_B in fb, defaults to 1000 (N_B = σ_B L).
        lumi_fb: (min, max, n) of the log-spaced luminosity grid in fb⁻¹, defaults to
            (10, 1000, 30).
        alphas: signal fractions α = S/B, defaults to (0.01, 0.05).
        shapesys_rel: relative per-bin background systematic β, defaults to 0.1.
        cl: confidence level of the upper limits, defaults to 0.95.
        empty_bins: ``"merge"`` (default: bins empty in the background prediction are merged
            into a neighbour) or ``"raise"`` (a ValueError names them).
    """

    cut: float = 0.51
    n_bins: int = 25
    observables: Mapping[str, tuple[float, float] | None] = field(
        default_factory=lambda: {SCORE: None, "m_bb": (0.0, 3.0)}
    )
    sigma_b_fb: float = 1000.0
    lumi_fb: tuple[float, float, int] = (10.0, 1000.0, 30)
    alphas: tuple[float, ...] = (0.01, 0.05)
    shapesys_rel: float = 0.1
    cl: float = 0.95
    empty_bins: str = "merge"

    def __post_init__(self) -> None:
        cut = float(self.cut)
        if not (0.0 <= cut <= 1.0):
            raise ConfigError("analysis.cut", f"the classifier cut must lie in [0, 1], got {cut}")
        if isinstance(self.n_bins, bool) or int(self.n_bins) != self.n_bins or self.n_bins < 1:
            raise ConfigError("analysis.n_bins", f"must be a positive integer, got {self.n_bins}")
        observables = {name: self._range(name, rng, cut) for name, rng in self.observables.items()}
        if not observables:
            raise ConfigError("analysis.observables", "at least one observable is needed")
        sigma_b = _positive("analysis.sigma_b_fb", self.sigma_b_fb)
        lumi = self._lumi(self.lumi_fb)
        if not len(self.alphas):
            raise ConfigError("analysis.alphas", "at least one signal fraction is needed")
        alphas = tuple(_positive("analysis.alphas", a) for a in self.alphas)
        shapesys = _positive("analysis.shapesys_rel", self.shapesys_rel)
        if not (0.0 < float(self.cl) < 1.0):
            raise ConfigError("analysis.cl", f"must lie strictly between 0 and 1, got {self.cl}")
        if self.empty_bins not in _EMPTY_BINS:
            raise ConfigError(
                "analysis.empty_bins", f"must be one of {_EMPTY_BINS}, got {self.empty_bins!r}"
            )
        for name, value in (
            ("cut", cut), ("n_bins", int(self.n_bins)),
            ("observables", MappingProxyType(observables)),
            ("sigma_b_fb", sigma_b), ("lumi_fb", lumi), ("alphas", alphas),
            ("shapesys_rel", shapesys), ("cl", float(self.cl)),
        ):  # fmt: skip
            object.__setattr__(self, name, value)

    @staticmethod
    def _range(name: str, rng: Any, cut: float) -> tuple[float, float]:
        key = f"analysis.observables.{name}"
        if rng is None:
            if name != SCORE:
                raise ConfigError(key, "needs a [low, high] range (only 'score' has a default)")
            rng = (cut, 1.0)
        try:
            low, high = (float(v) for v in rng)
        except (TypeError, ValueError):
            raise ConfigError(key, f"must be [low, high], got {rng!r}") from None
        if not (math.isfinite(low) and math.isfinite(high)) or not high > low:
            raise ConfigError(
                key, f"bin range ({low}, {high}) is empty or decreasing; need low < high"
            )
        return (low, high)

    @staticmethod
    def _lumi(lumi: Any) -> tuple[float, float, int]:
        try:
            lo, hi, n = lumi
        except (TypeError, ValueError):
            raise ConfigError("analysis.lumi_fb", f"must be (min, max, n), got {lumi!r}") from None
        lo = _positive("analysis.lumi_fb.min", lo)
        hi = _positive("analysis.lumi_fb.max", hi)
        if hi < lo:
            raise ConfigError("analysis.lumi_fb", f"max {hi} is below min {lo}")
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ConfigError("analysis.lumi_fb.n", f"must be a positive integer, got {n!r}")
        if n == 1 and hi != lo:
            raise ConfigError("analysis.lumi_fb.n", "a single point needs min == max")
        return (lo, hi, int(n))

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any] | None) -> AnalysisConfig:
        """Build from the ``analysis`` section of the workflow config (missing keys: defaults).

        ``lumi_fb`` is a mapping ``{min, max, n}``; ``observables`` maps names to ``[low, high]``
        or ``null`` (score only). The ``classifier`` subsection is skipped (see
        :class:`flowsim.analysis.signal_classifier.ClassifierSettings`); other unknown keys raise
        ConfigError naming them.
        """
        section = {k: v for k, v in dict(section or {}).items() if k not in _OTHER_STAGES}
        unknown = sorted(set(section) - _KEYS)
        if unknown:
            raise ConfigError("analysis", f"unknown key(s) {unknown}; expected {sorted(_KEYS)}")
        kwargs: dict[str, Any] = dict(section)
        if "lumi_fb" in kwargs:
            lumi = kwargs["lumi_fb"]
            if isinstance(lumi, Mapping):
                missing = sorted({"min", "max", "n"} - set(lumi))
                if missing:
                    raise ConfigError("analysis.lumi_fb", f"missing key(s) {missing}")
                kwargs["lumi_fb"] = (lumi["min"], lumi["max"], lumi["n"])
        if "alphas" in kwargs:
            kwargs["alphas"] = tuple(kwargs["alphas"])
        if "observables" in kwargs and not isinstance(kwargs["observables"], Mapping):
            raise ConfigError("analysis.observables", "must map observable names to ranges")
        return cls(**kwargs)

    def edges(self, observable: str) -> np.ndarray:
        """Uniform bin edges of ``observable``: ``n_bins + 1`` values over its range."""
        if observable not in self.observables:
            known = sorted(self.observables)
            raise ValueError(f"unknown observable {observable!r}; configured: {known}")
        low, high = self.observables[observable]
        return uniform_edges(low, high, self.n_bins)

    def lumis(self) -> np.ndarray:
        """The luminosity grid in fb⁻¹: ``n`` log-spaced values from min to max (inclusive)."""
        lo, hi, n = self.lumi_fb
        return np.geomspace(lo, hi, n)
