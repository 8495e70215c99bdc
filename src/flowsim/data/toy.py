"""A physics-motivated toy generator that writes events in the HIGGS file layout.

The toy is the workflow's offline stand-in for UCI HIGGS: the same 29 columns (see
:mod:`flowsim.data.higgs`), the same units and value ranges, and the same structure (resonance
peaks, correlations between low- and high-level features, overlapping but separable classes). It
is not accurate physics and not a replacement for the real file.

Physics chain (energies, momenta and masses in GeV, angles in radians, until the last step):

* Background, semi-leptonic tt̄: gg → tt̄, t → W⁺b, t̄ → W⁻b̄, one W → ℓν and the other → qq̄'.
  m_tt̄ is the two top masses plus an excess over threshold that rises (Gamma) and then falls as
  a power law (Lomax).
* Signal (the HIGGS benchmark): gg → H⁰(425) → W∓H±(325), H± → W±h⁰(125), h⁰ → bb̄; one of
  the two W's (chosen at random) → ℓν, the other → qq̄'. Both classes end in ℓ ν b b q q.
* Every unstable particle's mass is drawn from a Breit–Wigner truncated to a window inside the
  kinematic limits (top 173, Γ 1.4; W 80.4, Γ 2.1; narrow H⁰/H±/h⁰). Every decay is a two-body
  decay, isotropic in the parent's rest frame, boosted to the lab (:func:`two_body_momentum`,
  :func:`boost`); all arrays hold one event per column, no Python loop runs over events.
* Initial-state radiation gives the hard system a transverse momentum (balanced by an ISR jet,
  which competes with the four partons for the four leading jets) and a rapidity.
* Detector: Gaussian smearing of the jet four-momenta (σ/pT = √(a²/pT + c²), 9–15 %) and of the
  lepton (2 %); missing transverse momentum = the neutrino's pT plus the jets' and lepton's
  mismeasurement plus a Gaussian soft term; acceptance |η| < 2.5, lepton pT > 20 GeV, jet
  pT > 20 GeV, at least four jets; the four leading jets ordered by pT; b-tags in three levels
  (none, loose, tight) drawn with efficiencies for true b jets and mistag rates for light jets.
* High-level features, from the reconstructed objects only: the neutrino p_z from the W-mass
  constraint (:func:`neutrino_pz`); the two b jets = the two highest b-tag levels (ties to the
  harder jet), the other two jets = the W → jj pair; the b jets assigned to the hadronic and
  leptonic top by the smaller χ² = Σ ((m − m_t)/σ)². Then m_jj = m(jj), m_jjj = m(jj b_h),
  m_lv = m(ℓν), m_jlv = m(ℓν b_ℓ), m_bb = m(bb), m_wbb = m(jj bb) (the hadronic W: the fully
  measured one, the H± daughter in half the signal events), m_wwbb = m(ℓν jj bb).

File conventions (the last step): momenta and masses are divided by the fixed scales in
:data:`SCALES` (the toy's means, so values are O(1) with mean ≈ 1 and tails to ~10; m_lv's puts
the W peak at 0.99 like the real file), η by :data:`ETA_SCALE` and φ by :data:`PHI_SCALE` (so
|φ| < 1.744 as in the real file); b-tags take the real file's levels per jet, 0, b and 2b
(:data:`BTAG_LEVELS`). Values are float32, like the real file.

Determinism: events are generated in fixed chunks of :data:`CHUNK_EVENTS`; chunk k draws from
``numpy.random.default_rng(SeedSequence(seed, spawn_key=(k,)))`` (the k-th child that
``SeedSequence(seed).spawn`` gives) and holds a fixed share of the signal events. The events are
therefore a function of ``(n_events, seed, signal_fraction)`` only, not of how they are written:
the file from :func:`write_toy_csv` equals :func:`generate_toy` for any ``block_size``, and
chunks can be generated independently (in any order, or in parallel).
"""

from __future__ import annotations

import gzip
import logging
import math
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from numpy.typing import NDArray

from flowsim.data.higgs import BTAG_COLUMNS, COLUMNS, FEATURE_COLUMNS, PHI_COLUMNS
from flowsim.io import atomic_output

__all__ = [
    "BTAG_LEVELS",
    "CHUNK_EVENTS",
    "ETA_MAX",
    "ETA_SCALE",
    "MASSES",
    "PHI_SCALE",
    "SCALES",
    "boost",
    "generate_toy",
    "neutrino_pz",
    "two_body_momentum",
    "write_toy_csv",
]

log = logging.getLogger(__name__)

Array = NDArray[np.float64]

#: Pole masses and widths in GeV (the benchmark's H⁰, H± and h⁰ are narrow).
MASSES: dict[str, tuple[float, float]] = {
    "top": (173.0, 1.4),
    "W": (80.4, 2.1),
    "H0": (425.0, 2.0),
    "Hpm": (325.0, 1.5),
    "h0": (125.0, 0.01),
}
_M_B = 4.8  # b-quark mass: jets from b's carry it, light quarks and leptons are massless

#: Scales (GeV) dividing momenta and masses: the toy's mean over a 50/50 mixture (2·10⁶ events,
#: rounded), so each column has mean ≈ 1 like the real file. The exception is m_lv, whose scale
#: puts the W peak at 80.4/81.2 = 0.990 as in the real file (its mean is then ≈ 1.04, real file
#: 1.05). Fixed constants, never fitted per file, so a value in file units always means the
#: same GeV.
SCALES: dict[str, float] = {
    "lepton_pt": 60.0,
    "met": 52.3,
    "jet1_pt": 112.0,
    "jet2_pt": 76.8,
    "jet3_pt": 53.1,
    "jet4_pt": 36.6,
    "m_jj": 104.0,
    "m_jjj": 201.0,
    "m_lv": 81.2,
    "m_jlv": 190.0,
    "m_bb": 152.0,
    "m_wbb": 337.0,
    "m_wwbb": 500.0,
}
#: η is divided by this "standard deviation" (the toy's η spread inside |η| < 2.5, ≈ 0.93 for
#: the leading jet to 1.10 for the fourth), so |η| < 2.5/1.01 = 2.475 in file units.
ETA_SCALE = 1.01
#: φ is divided by this: |φ| ≤ π/1.8015 = 1.74390 < 1.744, the real file's range.
PHI_SCALE = 1.8015
#: Acceptance in |η| (GeV-free, before dividing by ETA_SCALE).
ETA_MAX = 2.5
#: One b-tag unit per jet in file units (the real file's levels): a jet's tag is 0, b or 2b.
BTAG_LEVELS: dict[str, float] = {
    "jet1_btag": 1.0865381,
    "jet2_btag": 1.1074361,
    "jet3_btag": 1.2741122,
    "jet4_btag": 1.5509807,
}
#: Events per independently seeded chunk (the unit of determinism, see the module docstring).
CHUNK_EVENTS = 65_536

# Detector and selection (GeV). Jet resolution σ/pT = √(a²/pT + c²): 13 % at 50 GeV, 9 % at 200.
_JET_STOCHASTIC = 0.8
_JET_CONSTANT = 0.07
_LEPTON_RESOLUTION = 0.02
_MET_SOFT = 8.0  # per transverse component: unclustered energy and pile-up
_LEPTON_PT_MIN = 20.0
_JET_PT_MIN = 20.0
_SINH_ETA_MAX = math.sinh(ETA_MAX)  # |η| < η_max ⟺ |p_z| < p_T sinh(η_max), no logarithm
# b-tagging (probabilities of the tight and loose levels): b jets are tagged often, light rarely.
_B_TIGHT, _B_LOOSE = 0.70, 0.10
_LIGHT_TIGHT, _LIGHT_LOOSE = 0.03, 0.06
# Production: tt̄ mass excess over threshold ~ Gamma(2, θ) + Lomax(mean, α) (mean 130 GeV); the
# system pT ~ Lomax(mean, α); rapidity ~ N(0, σ). The same ISR for both classes, so the system's
# pT and y do not separate them.
_TT_RISE_THETA = 20.0
_TT_TAIL = (90.0, 10.0)
_SYSTEM_PT = (35.0, 12.0)
_SYSTEM_Y_SIGMA = 0.8
_ISR_Y_SIGMA = 1.5
# W-mass constraint: the real file's m_lv peak has a ≈ 0.5 % spread, not a point mass (which
# would also make densities singular); the constraint mass carries that spread.
_W_CONSTRAINT_SPREAD = 0.005
# χ² resolutions of the hadronic and leptonic top masses when assigning the b jets.
_SIGMA_TOP_HAD, _SIGMA_TOP_LEP = 15.0, 20.0
# Oversampling of each round: a first guess at the acceptance (measured ≈ 0.68 for both
# classes; guessing low wastes events, guessing high costs a second round), then the measured one.
_FIRST_ACCEPTANCE = 0.66
_GZIP_LEVEL = 1  # ~4x faster than level 6 and only ~10 % bigger for this text


# --------------------------------------------------------------------------------------------
# Kinematics: four-vectors are (E, px, py, pz) along axis 0, in GeV.


def two_body_momentum(M: Array, m1: Array | float, m2: Array | float) -> Array:
    """Momentum of either daughter in the rest frame of a two-body decay M → m1 m2.

    p* = √[(M² − (m1 + m2)²)(M² − (m1 − m2)²)] / 2M, set to 0 below threshold.

    Example:
        >>> round(float(two_body_momentum(np.array(173.0), 80.4, 4.8)), 2)  # t → W b
        67.71
    """
    arg = (M * M - (m1 + m2) ** 2) * (M * M - (m1 - m2) ** 2)
    return np.sqrt(np.maximum(arg, 0.0)) / (2.0 * M)


def boost(p: Array, parent: Array, parent_mass: Array) -> Array:
    """Boost four-vectors ``p`` from the rest frame of ``parent`` into the frame where it moves.

    Arguments: ``p`` and ``parent`` of shape (4, n), the parent's mass M of shape (n,) (passed
    rather than recomputed from E² − |P|², which loses precision for fast parents). With
    β = P/E_P and γ = E_P/M the boost is

        E' = γ (E + β·p),    p' = p + β [γ²/(γ + 1) (β·p) + γ E],

    computed without β or 1/|β|² (so a parent at rest is exact) as

        E' = (E_P E + P·p)/M,    p' = p + P [(P·p)/(E_P + M) + E]/M.
    """
    E_par = parent[0]
    Pp = parent[1] * p[1] + parent[2] * p[2] + parent[3] * p[3]
    inv_m = 1.0 / parent_mass
    out = np.empty_like(p)
    out[0] = (E_par * p[0] + Pp) * inv_m
    out[1:] = p[1:] + parent[1:] * ((Pp / (E_par + parent_mass) + p[0]) * inv_m)
    return out


def neutrino_pz(lepton: Array, met_x: Array, met_y: Array, m_w: Array | float) -> Array:
    """Neutrino p_z from the W-mass constraint (ℓ + ν)² = m_W² with massless ℓ and ν.

    With μ = m_W²/2 + p_T,ℓ · p_T,ν (p_T,ν = MET) the constraint is a quadratic in p_z,ν with
    roots

        p_z = [μ p_z,ℓ ± E_ℓ √(μ² − p_T,ℓ² p_T,ν²)] / p_T,ℓ².

    The root with the smaller |p_z| is taken. A negative discriminant (MET too large for an
    on-shell W with this lepton) is set to zero, i.e. the real part μ p_z,ℓ / p_T,ℓ² is taken;
    then m(ℓν) > m_W, which makes the tail above the sharp W peak of m_lv.
    """
    E, px, py, pz = lepton
    pt2 = px * px + py * py
    mu = 0.5 * m_w * m_w + px * met_x + py * met_y
    disc = mu * mu - pt2 * (met_x * met_x + met_y * met_y)
    centre = mu * pz / pt2
    half = E * np.sqrt(np.maximum(disc, 0.0)) / pt2
    # of centre ± half, the smaller magnitude is the one moving towards zero
    return centre - np.copysign(half, centre)


def _mass(p: Array) -> Array:
    """Invariant mass √max(E² − |p|², 0) of four-vectors (4, ...)."""
    return np.sqrt(np.maximum(p[0] * p[0] - p[1] * p[1] - p[2] * p[2] - p[3] * p[3], 0.0))


def _pt(p: Array) -> Array:
    """Transverse momentum √(px² + py²) (cheaper than numpy.hypot and accurate enough here)."""
    return np.sqrt(p[1] * p[1] + p[2] * p[2])


def _eta(p: Array, pt: Array) -> Array:
    """Pseudorapidity η = asinh(p_z/p_T) = sign(p_z) · ln[(|p| + |p_z|)/p_T].

    The logarithm with |p_z| has no cancellation and is several times faster than arcsinh.
    """
    abs_pz = np.abs(p[3])
    return np.copysign(np.log((np.sqrt(pt * pt + p[3] * p[3]) + abs_pz) / pt), p[3])


def _phi(p: Array) -> NDArray[np.float32]:
    """Azimuth arctan2(py, px) in float32: the file's precision, at half the cost of float64."""
    return np.arctan2(p[2].astype(np.float32), p[1].astype(np.float32))


# --------------------------------------------------------------------------------------------
# Sampling


def _cos_sin_uniform(rng: np.random.Generator, n: int) -> tuple[Array, Array]:
    """cos φ and sin φ of a uniform azimuth (float32 trigonometry: ~10x faster, 1e-7 precise)."""
    phi = rng.random(n, dtype=np.float32) * np.float32(2.0 * np.pi)
    return np.cos(phi).astype(np.float64), np.sin(phi).astype(np.float64)


def _gamma2(rng: np.random.Generator, theta: float, n: int) -> Array:
    """Gamma(k = 2, θ) variates as −θ ln(u₁u₂), a sum of two exponentials (cheap)."""
    return -theta * np.log((1.0 - rng.random(n)) * (1.0 - rng.random(n)))


def _lomax(rng: np.random.Generator, mean: float, alpha: float, n: int) -> Array:
    """Lomax (Pareto II) variates with a power-law tail: density ∝ (1 + x/λ)^−(α+1).

    By inversion, x = λ [(1 − u)^(−1/α) − 1] with λ = mean·(α − 1), u ~ U(0, 1). The falling
    power law mimics parton luminosities and ISR better than an exponential tail.
    """
    return mean * (alpha - 1.0) * np.expm1(-np.log1p(-rng.random(n)) / alpha)


def _breit_wigner(
    rng: np.random.Generator,
    pole: tuple[float, float],
    n: int,
    lo: Array | float,
    hi: Array | float,
) -> Array:
    """Masses from a (Cauchy) Breit–Wigner with pole (m₀, Γ) truncated to [lo, hi].

    Inverse CDF: F ∝ arctan(2(m − m₀)/Γ), so m = m₀ + Γ/2 · tan(a + u (b − a)) with
    a = arctan(2(lo − m₀)/Γ), b = arctan(2(hi − m₀)/Γ), u ~ U(0, 1).
    """
    m0, width = pole
    a = np.arctan(2.0 * (lo - m0) / width)
    b = np.arctan(2.0 * (hi - m0) / width)
    # tan = sin/cos in float32 (vectorised, ~4x faster than float64 tan); the window keeps the
    # angle ≥ 0.005 from ±π/2, so the mass is still good to ~1e-4 GeV
    angle = (a + rng.random(n) * (b - a)).astype(np.float32)
    return m0 + 0.5 * width * (np.sin(angle) / np.cos(angle)).astype(np.float64)


def _decay(
    rng: np.random.Generator, parent: Array, M: Array, m1: Array | float, m2: Array | float
) -> tuple[Array, Array]:
    """Isotropic two-body decay of ``parent`` (4, n), mass M, into masses m1 and m2, in the lab.

    Daughter 1 gets (√(p*² + m1²), p* n̂) in the rest frame, with cos θ ~ U(−1, 1) and
    φ ~ U(0, 2π) so n̂ is uniform on the sphere, and is boosted (:func:`boost`); daughter 2 is
    ``parent − daughter 1`` by four-momentum conservation (one boost fewer).
    """
    n = M.shape[0]
    p = two_body_momentum(M, m1, m2)
    cos_t = 2.0 * rng.random(n) - 1.0
    p_sin_t = p * np.sqrt(1.0 - cos_t * cos_t)
    cos_p, sin_p = _cos_sin_uniform(rng, n)
    d1 = np.empty((4, n))
    d1[0] = np.sqrt(p * p + m1 * m1)
    d1[1] = p_sin_t * cos_p
    d1[2] = p_sin_t * sin_p
    d1[3] = p * cos_t
    d1 = boost(d1, parent, M)
    return d1, parent - d1


def _hard_system(rng: np.random.Generator, M: Array) -> Array:
    """Four-momentum of a hard system of mass M recoiling against initial-state radiation.

    pT ~ Lomax, φ uniform, rapidity y ~ N(0, σ): with m_T = √(M² + pT²),
    P = (m_T cosh y, pT cos φ, pT sin φ, m_T sinh y).
    """
    n = M.shape[0]
    pt = _lomax(rng, *_SYSTEM_PT, n)
    cos_p, sin_p = _cos_sin_uniform(rng, n)
    e_y = np.exp(_SYSTEM_Y_SIGMA * rng.standard_normal(n))
    mt = np.sqrt(M * M + pt * pt)
    cosh_y, sinh_y = 0.5 * (e_y + 1.0 / e_y), 0.5 * (e_y - 1.0 / e_y)
    return np.stack([mt * cosh_y, pt * cos_p, pt * sin_p, mt * sinh_y])


def _isr_jet(rng: np.random.Generator, system: Array) -> Array:
    """Massless ISR jet balancing the system's transverse momentum, rapidity ~ N(0, σ_ISR)."""
    px, py = -system[1], -system[2]
    pt = np.sqrt(px * px + py * py)
    e_y = np.exp(_ISR_Y_SIGMA * rng.standard_normal(px.shape[0]))
    return np.stack([0.5 * pt * (e_y + 1.0 / e_y), px, py, 0.5 * pt * (e_y - 1.0 / e_y)])


@dataclass(frozen=True)
class _Partons:
    """Generator-level final state in the lab (GeV).

    Lepton and neutrino (4, n); jet candidates (4, 5, n) in the order b, b, q, q, ISR (the first
    two are the true b's).
    """

    lepton: Array
    neutrino: Array
    jets: Array


def _final_state(
    rng: np.random.Generator,
    w_lep: Array,
    m_lep: Array,
    w_had: Array,
    m_had: Array,
    b1: Array,
    b2: Array,
    system: Array,
) -> _Partons:
    """Decay W → ℓν and W → qq̄' (massless) and collect the partons with an ISR jet."""
    lepton, neutrino = _decay(rng, w_lep, m_lep, 0.0, 0.0)
    q1, q2 = _decay(rng, w_had, m_had, 0.0, 0.0)
    jets = np.stack([b1, b2, q1, q2, _isr_jet(rng, system)], axis=1)
    return _Partons(lepton, neutrino, jets)


def _w_masses(rng: np.random.Generator, n: int, hi: Array | float) -> Array:
    """W masses: a Breit–Wigner in [m_W − 20, min(m_W + 20, hi)] GeV."""
    m_w = MASSES["W"][0]
    return _breit_wigner(rng, MASSES["W"], n, m_w - 20.0, np.minimum(m_w + 20.0, hi))


def _background_partons(rng: np.random.Generator, n: int) -> _Partons:
    """Semi-leptonic tt̄: gg → tt̄, t → Wb with W → ℓν, t̄ → Wb̄ with W → qq̄'.

    m_tt̄ = m_t + m_t̄ + Gamma(2, θ) + Lomax: a rise above threshold, then a power-law fall
    like the parton luminosity. The tt̄ pair is isotropic in its rest frame.
    """
    m_top = MASSES["top"][0]
    m_t1 = _breit_wigner(rng, MASSES["top"], n, m_top - 25.0, m_top + 25.0)
    m_t2 = _breit_wigner(rng, MASSES["top"], n, m_top - 25.0, m_top + 25.0)
    excess = _gamma2(rng, _TT_RISE_THETA, n) + _lomax(rng, *_TT_TAIL, n)
    m_tt = m_t1 + m_t2 + excess
    system = _hard_system(rng, m_tt)
    t1, t2 = _decay(rng, system, m_tt, m_t1, m_t2)
    # the W windows stay below m_t − m_b, so both decays are open (m_t ≥ 148 GeV here)
    m_w1 = _w_masses(rng, n, 100.4)
    m_w2 = _w_masses(rng, n, 100.4)
    w1, b1 = _decay(rng, t1, m_t1, m_w1, _M_B)
    w2, b2 = _decay(rng, t2, m_t2, m_w2, _M_B)
    return _final_state(rng, w1, m_w1, w2, m_w2, b1, b2, system)


def _signal_partons(rng: np.random.Generator, n: int) -> _Partons:
    """gg → H⁰ → W∓H±, H± → W±h⁰, h⁰ → bb̄; one W (at random) → ℓν, the other → qq̄'."""
    (m_h0, _), (m_hc, _), (m_h, _) = MASSES["H0"], MASSES["Hpm"], MASSES["h0"]
    m_heavy = _breit_wigner(rng, MASSES["H0"], n, m_h0 - 20.0, m_h0 + 20.0)
    m_charged = _breit_wigner(rng, MASSES["Hpm"], n, m_hc - 15.0, m_hc + 15.0)
    m_light = _breit_wigner(rng, MASSES["h0"], n, m_h - 1.0, m_h + 1.0)
    # H⁰ → W H± sits right at m_W + 20 GeV above threshold: its W window needs the event's bound
    m_wa = _w_masses(rng, n, m_heavy - m_charged - 0.5)
    m_wb = _w_masses(rng, n, 100.4)
    system = _hard_system(rng, m_heavy)
    w_a, charged = _decay(rng, system, m_heavy, m_wa, m_charged)
    w_b, light = _decay(rng, charged, m_charged, m_wb, m_light)
    b1, b2 = _decay(rng, light, m_light, _M_B, _M_B)
    a_lep = rng.random(n) < 0.5
    w_lep, w_had = np.where(a_lep, w_a, w_b), np.where(a_lep, w_b, w_a)
    m_lep, m_had = np.where(a_lep, m_wa, m_wb), np.where(a_lep, m_wb, m_wa)
    return _final_state(rng, w_lep, m_lep, w_had, m_had, b1, b2, system)


# --------------------------------------------------------------------------------------------
# Detector and selection


@dataclass(frozen=True)
class _Detected:
    """Measured objects (GeV).

    Lepton (4, n); jet candidates (4, 5, n) with their pT and acceptance (5, n); MET (n,) each.
    """

    lepton: Array
    jets: Array
    jet_pt: Array
    jet_ok: NDArray[np.bool_]
    met_x: Array
    met_y: Array

    def select(self, keep: NDArray[np.bool_]) -> _Detected:
        """The events where ``keep`` is true (compressed along the last axis)."""
        return _Detected(*(np.compress(keep, getattr(self, f.name), axis=-1) for f in fields(self)))


def _smear(rng: np.random.Generator, resolution: Array | float, shape: tuple[int, ...]) -> Array:
    """Multiplicative detector response 1 + σ·N(0, 1), floored at 0.05 so momenta stay > 0."""
    return np.maximum(1.0 + resolution * rng.standard_normal(shape), 0.05)


def _in_eta(p: Array, pt: Array) -> NDArray[np.bool_]:
    """|η| < ETA_MAX without a logarithm: |p_z| < p_T sinh(ETA_MAX)."""
    return np.abs(p[3]) < _SINH_ETA_MAX * pt


def _detect(rng: np.random.Generator, partons: _Partons) -> tuple[_Detected, NDArray[np.bool_]]:
    """Smear, compute MET, and apply the acceptance; returns (objects, accepted events)."""
    n = partons.lepton.shape[1]
    lep_f = _smear(rng, _LEPTON_RESOLUTION, (n,))
    lepton = partons.lepton * lep_f  # a scale factor keeps η, φ and the (zero) mass
    lep_pt = _pt(lepton)
    truth = partons.jets
    true_pt = _pt(truth)
    sigma = np.sqrt(_JET_STOCHASTIC**2 / np.maximum(true_pt, 1.0) + _JET_CONSTANT**2)
    jets = truth * _smear(rng, sigma, true_pt.shape)
    jet_pt = _pt(jets)
    # MET: the neutrino plus whatever the detector mismeasured plus a Gaussian soft term
    soft = _MET_SOFT * rng.standard_normal((2, n))
    lost = (truth[1:3] - jets[1:3]).sum(axis=1) + (1.0 - lep_f) * partons.lepton[1:3]
    met_x, met_y = partons.neutrino[1:3] + lost + soft
    jet_ok = (jet_pt > _JET_PT_MIN) & _in_eta(jets, jet_pt)
    accepted = (lep_pt > _LEPTON_PT_MIN) & _in_eta(lepton, lep_pt) & (jet_ok.sum(axis=0) >= 4)
    return _Detected(lepton, jets, jet_pt, jet_ok, met_x, met_y), accepted


def _descending_order(key: Array) -> NDArray[np.intp]:
    """Per event (column), the row indices of ``key`` (k, n) sorted by decreasing key.

    Ranks by pairwise comparison (ties to the lower index, like a stable argsort): for k ≤ 5 it
    is 2–3 times faster than argsort along the short axis.
    """
    k, n = key.shape
    rank = np.zeros((k, n), dtype=np.intp)
    for j in range(k):
        for i in range(k):
            if i < j:
                rank[j] += key[i] >= key[j]
            elif i > j:
                rank[j] += key[i] > key[j]
    order = np.empty((k, n), dtype=np.intp)
    order[rank, np.arange(n)] = np.arange(k)[:, None]
    return order


def _take(objects: Array, index: NDArray[np.intp]) -> Array:
    """Per-event selection: ``objects`` (4, k, n), ``index`` (j, n) in [0, k) → (4, j, n)."""
    k, n = objects.shape[1:]
    return np.take(objects.reshape(4, k * n), index * n + np.arange(n), axis=1)


def _btag_levels(rng: np.random.Generator, is_b: NDArray[np.bool_]) -> NDArray[np.int8]:
    """Tag level per jet: 2 (tight) with probability p_T, 1 (loose) with p_L, else 0.

    (p_T, p_L) are the tagging efficiencies for true b jets and the mistag rates for light jets.
    """
    u = rng.random(is_b.shape)
    tight = np.where(is_b, _B_TIGHT, _LIGHT_TIGHT)
    loose = tight + np.where(is_b, _B_LOOSE, _LIGHT_LOOSE)
    return (u < tight).astype(np.int8) + (u < loose).astype(np.int8)


# --------------------------------------------------------------------------------------------
# Reconstruction of the HIGGS features


def _features(rng: np.random.Generator, det: _Detected) -> Array:
    """The 28 features (28, n) of accepted events in GeV, radians and tag levels 0/1/2.

    The four leading jets by pT; b jets = the two highest tag levels (ties to the harder jet),
    the other two = the W → jj pair; the b jets go to the hadronic/leptonic top by the smaller
    χ² = ((m_jjb − m_t)/σ_h)² + ((m_ℓνb − m_t)/σ_ℓ)².
    """
    n = det.met_x.shape[0]
    lead = _descending_order(np.where(det.jet_ok, det.jet_pt, -1.0))[:4]  # (4, n), by pT
    jets = _take(det.jets, lead)
    tags = _btag_levels(rng, lead < 2)  # candidates 0 and 1 are the true b's
    by_tag = _descending_order(4 * tags + np.arange(3, -1, -1)[:, None])
    b = _take(jets, by_tag[:2])  # (4, 2, n)
    w_jj = _take(jets, by_tag[2:]).sum(axis=1)

    m_w = MASSES["W"][0] * (1.0 + _W_CONSTRAINT_SPREAD * rng.standard_normal(n))
    pz = neutrino_pz(det.lepton, det.met_x, det.met_y, m_w)
    met = np.sqrt(det.met_x * det.met_x + det.met_y * det.met_y)
    w_lv = det.lepton + np.stack([np.sqrt(met * met + pz * pz), det.met_x, det.met_y, pz])

    m_top = MASSES["top"][0]
    m_jjb = _mass(w_jj[:, None] + b)  # (2, n): the hadronic top with b jet 0 or 1
    m_lvb = _mass(w_lv[:, None] + b[:, ::-1])  # the leptonic top with the other one
    chi2 = ((m_jjb - m_top) / _SIGMA_TOP_HAD) ** 2 + ((m_lvb - m_top) / _SIGMA_TOP_LEP) ** 2
    swap = chi2[1] < chi2[0]
    bb = b.sum(axis=1)
    wbb = w_jj + bb

    lep_pt, jet_pt = _pt(det.lepton), _pt(jets)
    jet_eta, jet_phi = _eta(jets, jet_pt), _phi(jets)
    met_phi = np.arctan2(det.met_y.astype(np.float32), det.met_x.astype(np.float32))
    rows: dict[str, NDArray[np.generic]] = {
        "lepton_pt": lep_pt,
        "lepton_eta": _eta(det.lepton, lep_pt),
        "lepton_phi": _phi(det.lepton),
        "met": met,
        "met_phi": met_phi,
        "m_jj": _mass(w_jj),
        "m_jjj": np.where(swap, m_jjb[1], m_jjb[0]),
        "m_lv": _mass(w_lv),
        "m_jlv": np.where(swap, m_lvb[1], m_lvb[0]),
        "m_bb": _mass(bb),
        "m_wbb": _mass(wbb),
        "m_wwbb": _mass(wbb + w_lv),
    }
    for j in range(4):
        rows |= {
            f"jet{j + 1}_pt": jet_pt[j],
            f"jet{j + 1}_eta": jet_eta[j],
            f"jet{j + 1}_phi": jet_phi[j],
            f"jet{j + 1}_btag": tags[j],
        }
    out = np.empty((len(FEATURE_COLUMNS), n))
    for i, name in enumerate(FEATURE_COLUMNS):
        out[i] = rows[name]
    return out


# --------------------------------------------------------------------------------------------
# Events in file units


def _file_units() -> Array:
    """Per-feature multipliers (28,) from GeV, radians and tag levels to file units."""
    factor = np.ones(len(FEATURE_COLUMNS))
    for i, name in enumerate(FEATURE_COLUMNS):
        if name in SCALES:
            factor[i] = 1.0 / SCALES[name]
        elif name.endswith("_eta"):
            factor[i] = 1.0 / ETA_SCALE
        elif name in PHI_COLUMNS:
            factor[i] = 1.0 / PHI_SCALE
        elif name in BTAG_COLUMNS:
            factor[i] = BTAG_LEVELS[name]
    return factor


_TO_FILE_UNITS = _file_units()[:, None]


def _accepted_events(rng: np.random.Generator, n: int, signal: bool) -> Array:
    """Exactly ``n`` accepted events of one class: features (28, n) in GeV, radians, levels.

    Generated in rounds of ``1.03 × missing / acceptance + 64`` events, the acceptance being a
    first guess and then the fraction measured so far, until ``n`` events are in.
    """
    make = _signal_partons if signal else _background_partons
    parts: list[Array] = []
    have = tried = passed = 0
    while have < n:
        acceptance = passed / tried if passed else _FIRST_ACCEPTANCE
        size = int(1.03 * (n - have) / acceptance) + 64
        detected, accepted = _detect(rng, make(rng, size))
        tried, passed = tried + size, passed + int(np.count_nonzero(accepted))
        kept = _features(rng, detected.select(accepted))[:, : n - have]
        parts.append(kept)
        have += kept.shape[1]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _n_signal(n: int, fraction: float) -> int:
    """Signal events among the first ``n`` of the stream: ⌊n·f + ½⌋."""
    return math.floor(n * fraction + 0.5)


def _chunk(seed: int, k: int, n_events: int, fraction: float) -> NDArray[np.float32]:
    """Chunk k of the event stream: columns (29, m) float32 in file units, classes shuffled.

    The chunk holds events [k·C, min((k + 1)·C, n)) of the stream (C = CHUNK_EVENTS), of which
    ⌊stop·f + ½⌋ − ⌊start·f + ½⌋ are signal, and draws from its own child seed.
    """
    start, stop = k * CHUNK_EVENTS, min((k + 1) * CHUNK_EVENTS, n_events)
    n_sig = _n_signal(stop, fraction) - _n_signal(start, fraction)
    n_bkg = stop - start - n_sig
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
    out = np.empty((len(COLUMNS), stop - start), dtype=np.float32)
    out[0, :n_sig], out[0, n_sig:] = 1.0, 0.0
    for signal, count, rows in ((True, n_sig, slice(0, n_sig)), (False, n_bkg, slice(n_sig, None))):
        if count:
            # features in float64, rounded once to float32 in file units
            features = _accepted_events(rng, count, signal)
            np.multiply(features, _TO_FILE_UNITS, out=out[1:, rows], casting="same_kind")
    return np.take(out, rng.permutation(stop - start), axis=1)


def _check_arguments(n_events: int, seed: int, signal_fraction: float) -> None:
    """Raise ValueError for arguments the generator cannot honour."""
    if not _is_int(n_events) or n_events < 1:
        raise ValueError(f"n_events must be an integer >= 1, got {n_events!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if (
        isinstance(signal_fraction, bool)
        or not isinstance(signal_fraction, (int, float, np.integer, np.floating))
        or not 0.0 <= signal_fraction <= 1.0
    ):
        raise ValueError(f"signal_fraction must be a number in [0, 1], got {signal_fraction!r}")


def _is_int(value: object) -> bool:
    """True for Python and numpy integers, not for bools."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def generate_toy(n_events: int, seed: int, *, signal_fraction: float = 0.5) -> NDArray[np.float32]:
    """Generate toy HIGGS events: an array (n_events, 29) float32 in :data:`COLUMNS` order.

    Arguments:
        n_events (int): number of events (rows), at least 1; exactly this many are returned,
            events lost to the acceptance being replaced by further rounds.
        seed (int): non-negative seed; the same seed gives bit-identical output.
        signal_fraction (float, optional): fraction of signal rows (label 1.0), rounded to
            ⌊n·f + ½⌋ events; defaults to 0.5. The rest are background (label 0.0).

    Raises:
        ValueError: for n_events < 1, a negative seed or signal_fraction outside [0, 1].

    Returns:
        numpy.ndarray: the label then the 28 features in file units, classes interleaved.

    Example:
        >>> x = generate_toy(1000, seed=1)
        >>> x.shape, x.dtype.name, float(x[:, 0].mean())
        ((1000, 29), 'float32', 0.5)
    """
    _check_arguments(n_events, seed, signal_fraction)
    out = np.empty((n_events, len(COLUMNS)), dtype=np.float32)
    for k in range(_n_chunks(n_events)):
        columns = _chunk(int(seed), k, int(n_events), float(signal_fraction))
        out[k * CHUNK_EVENTS : k * CHUNK_EVENTS + columns.shape[1]] = columns.T
    return out


def _n_chunks(n_events: int) -> int:
    """Number of chunks of CHUNK_EVENTS needed for ``n_events`` (the last one may be short)."""
    return -(-n_events // CHUNK_EVENTS)


def write_toy_csv(
    path: str | os.PathLike[str],
    n_events: int,
    seed: int,
    *,
    signal_fraction: float = 0.5,
    block_size: int = 200_000,
) -> None:
    """Write ``generate_toy(n_events, seed, signal_fraction=...)`` as a HIGGS-layout CSV file.

    No header, 29 comma-separated numbers a row, each float32 value in its shortest
    round-trip form (reading a value back and rounding it to float32 gives it exactly).
    gzip-compressed when ``path`` ends in ``.gz`` (``HIGGS.csv.gz``), plain text otherwise.
    Events are generated and written about ``block_size`` at a time (whole chunks of
    :data:`CHUNK_EVENTS`), so memory stays bounded; the content does not depend on
    ``block_size``. The file appears atomically (:func:`flowsim.io.atomic_output`): it is
    written to a temporary file in the same directory and renamed over ``path`` at the end; on
    any error the temporary file is removed and an existing ``path`` is left untouched.

    Arguments:
        path (str or PathLike): the output file; missing directories are created.
        n_events (int): number of events, at least 1.
        seed (int): non-negative seed.
        signal_fraction (float, optional): fraction of signal rows, defaults to 0.5.
        block_size (int, optional): events generated per write, defaults to 200,000.

    Raises:
        ValueError: for bad arguments (see :func:`generate_toy`) or block_size < 1.
    """
    _check_arguments(n_events, seed, signal_fraction)
    if not _is_int(block_size) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")
    stream = (int(seed), int(n_events), float(signal_fraction))
    chunks_per_block = max(1, int(block_size) // CHUNK_EVENTS)
    with atomic_output(path) as tmp, open(tmp, "wb") as raw:
        if Path(path).name.endswith(".gz"):
            # no file name or time in the gzip header: the same arguments give the same bytes
            with gzip.GzipFile("", "wb", _GZIP_LEVEL, raw, mtime=0) as sink:
                _write_csv(sink, *stream, chunks_per_block)
        else:
            _write_csv(raw, *stream, chunks_per_block)
    log.info(
        "wrote %d toy events (%d signal), seed %d, to %s",
        n_events,
        _n_signal(int(n_events), float(signal_fraction)),
        seed,
        path,
    )


def _write_csv(sink: BinaryIO, seed: int, n_events: int, fraction: float, per_block: int) -> None:
    """Generate the stream ``per_block`` chunks at a time and append it to ``sink`` as CSV.

    A three-stage pipeline, as CSV text and gzip cost more than generating: this thread
    generates block b + 2 while one worker formats block b + 1 (pyarrow) and another writes
    (and compresses) block b; numpy, pyarrow and zlib all release the GIL. At most a few blocks
    are alive at a time, and the output is the same as writing the blocks one after another.
    """
    schema = pa.schema([(name, pa.float32()) for name in COLUMNS])
    n_chunks = _n_chunks(n_events)
    with (
        ThreadPoolExecutor(max_workers=1) as formatter,
        ThreadPoolExecutor(max_workers=1) as writer,
    ):
        pending: deque[Future[None]] = deque()
        for first in range(0, n_chunks, per_block):
            chunks = range(first, min(first + per_block, n_chunks))
            block = np.concatenate([_chunk(seed, k, n_events, fraction) for k in chunks], axis=1)
            text = formatter.submit(_csv_text, pa.Table.from_arrays(list(block), schema=schema))
            pending.append(writer.submit(_write_text, sink, text))
            while len(pending) > 2:
                pending.popleft().result()  # bounds memory; re-raises a formatting/writing error
        while pending:
            pending.popleft().result()


def _csv_text(table: pa.Table) -> pa.Buffer:
    """The rows of ``table`` as header-less CSV (float32 values in shortest round-trip form)."""
    out = pa.BufferOutputStream()
    pacsv.write_csv(table, out, write_options=pacsv.WriteOptions(include_header=False))
    return out.getvalue()


def _write_text(sink: BinaryIO, text: Future[pa.Buffer]) -> None:
    """Append a formatted block to ``sink`` once it is ready (blocks are written in order)."""
    sink.write(text.result())
