r"""The HistFactory model of the search as a pyhf workspace (plain JSON-able data).

One channel with two samples, per bin ``i``:

.. math::

    \nu_i = \mu\, S_i + \beta_i\, \eta_i\, \gamma_i\, B_i ,

* ``signal`` (yields :math:`S_i`, MC signal template at :math:`N_S = \alpha\sigma_B L`) scaled
  by the ``normfactor`` :math:`\mu` ("mu", the parameter of interest; bounds (0, 10) as in the
  paper, widened where a limit needs more room: :func:`poi_bounds_covering`);
* ``background`` (yields :math:`B_i`, the background *prediction*: an independent MC sample or
  flow-generated events) with a ``shapesys`` :math:`\beta_i` of relative size ``shapesys_rel``
  (10% by default; Poisson constraint :math:`\mathrm{Pois}(\tau_i \mid \beta_i\tau_i)`,
  :math:`\tau_i = (B_i/\Delta_i)^2 = 1/0.1^2`) and a ``staterror`` :math:`\gamma_i` from the
  template's binomial error (Gaussian constraint of relative width
  :math:`\delta_i = \sigma_{B,i}/B_i`; pyhf takes the absolute
  :math:`\sigma_{B,i} = N_B\,\delta\varepsilon_i`, for a weighted MC template with the weighted
  binomial error of :mod:`~flowsim.analysis.templates`, :math:`\approx N_B\sqrt{S_i}/W` for small
  efficiencies); optionally (``background_surrogate``) a second
  ``shapesys`` :math:`\eta_i` ("bkg_surrogate"), the *surrogate uncertainty* of an ML prediction,
  of absolute size :math:`\Delta^{\rm sur}_i = N_B\,\sigma^{\rm sur}_i` (:math:`\sigma^{\rm sur}_i`:
  the surrogate uncertainty of the prediction's efficiency; Poisson constraint
  :math:`\mathrm{Pois}(\tau^{\rm sur}_i \mid \eta_i\tau^{\rm sur}_i)`,
  :math:`\tau^{\rm sur}_i = (B_i/\Delta^{\rm sur}_i)^2`). Bins with :math:`\Delta^{\rm sur}_i = 0`
  keep 0 in the modifier's data: pyhf fixes their :math:`\eta_i` at 1 (factor and auxiliary
  datum 1, the constant :math:`\mathrm{Pois}(1 \mid 1)` still in the likelihood). Without a
  surrogate uncertainty (None, or zero in every bin) :math:`\eta_i \equiv 1` and the workspace
  has no such modifier.

The observations are Asimov pseudo-data computed from templates, not from histograms of
pseudo-events: :math:`n_i = S_i + B^{\rm data}_i` with the MC ``test_a`` background template
(the same for the MC reference and the ML prediction).

Empty bins: pyhf fixes ``shapesys``/``staterror`` parameters of bins with zero background and the
relative error is undefined there, so bins with no predicted background must not reach the model.
:func:`channel_yields` refuses them with a ValueError naming the bins; merge them first with
:func:`flowsim.analysis.templates.merge_empty_bins` (what the scan does by default).

References:
    Cranmer et al., "HistFactory", CERN-OPEN-2012-016; pyhf (Heinrich, Feickert, Stark, Cranmer,
    JOSS 6 (2021) 2823); the paper's Sec. 4.4, eqs. (21)-(23).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from flowsim.analysis.templates import Template, background_total, signal_total
from flowsim.io import atomic_output

__all__ = [
    "CHANNEL",
    "POI",
    "POI_BOUNDS",
    "SHAPESYS",
    "SURROGATE",
    "ChannelYields",
    "build_workspace",
    "channel_yields",
    "poi_bounds_covering",
    "staterror_name",
    "write_workspace",
]

#: Name of the parameter of interest (signal strength).
POI = "mu"
#: Bounds of the POI in the fit, as in the paper (widened per point: poi_bounds_covering).
POI_BOUNDS = (0.0, 10.0)
#: Name of the background shape systematic (one parameter per bin).
SHAPESYS = "bkg_shapesys"
#: Name of the background's surrogate uncertainty, a second shapesys (one parameter per bin).
SURROGATE = "bkg_surrogate"
#: Default channel name.
CHANNEL = "signal_region"


def staterror_name(channel: str) -> str:
    """Name of the staterror modifier of ``channel`` (pyhf convention ``staterror_<channel>``)."""
    return f"staterror_{channel}"


class ChannelYields(NamedTuple):
    """Expected yields of one channel at one luminosity; arrays of shape (K,).

    Attributes:
        signal: signal yields :math:`S_i` (events).
        background: predicted background yields :math:`B_i` (events), all positive.
        background_stat: statistical error of :math:`B_i` (events) from the template.
        observed: Asimov pseudo-data :math:`n_i = S_i + B^{data}_i` (events, not integers).
        shapesys_rel: relative shape systematic of the background (e.g. 0.1).
        background_surrogate: defaults to None (no surrogate uncertainty); else the absolute
            surrogate uncertainty of :math:`B_i` (events, >= 0; 0: none in that bin), the
            ``bkg_surrogate`` shapesys of the workspace.
    """

    signal: np.ndarray
    background: np.ndarray
    background_stat: np.ndarray
    observed: np.ndarray
    shapesys_rel: float
    background_surrogate: np.ndarray | None = None


def channel_yields(
    signal: Template,
    data_background: Template,
    prediction: Template,
    *,
    lumi_fb: float,
    alpha: float,
    sigma_b_fb: float = 1000.0,
    shapesys_rel: float = 0.1,
    surrogate_error: np.ndarray | None = None,
) -> ChannelYields:
    """Expected yields at luminosity ``lumi_fb`` from the three templates.

    ``N_B = sigma_b_fb * lumi_fb`` and ``N_S = alpha * N_B`` events before the cut; the Asimov data
    are ``N_S eff^sig + N_B eff^data``, the prediction ``N_B eff^pred ± N_B err^pred`` and, with
    ``surrogate_error``, its surrogate uncertainty ``N_B surrogate_error``. All yields are exactly
    linear in ``lumi_fb``.

    Arguments:
        signal: MC signal template.
        data_background: MC background template that makes the pseudo-data (``test_a``).
        prediction: background prediction template (MC ``test_b`` or flow-generated events).
        lumi_fb: integrated luminosity L in fb⁻¹, positive.
        alpha: signal fraction S/B before the cut, positive.
        sigma_b_fb: defaults to 1000 (background cross-section in fb).
        shapesys_rel: defaults to 0.1 (10% relative background systematic per bin), positive.
        surrogate_error: defaults to None (no surrogate uncertainty); else the absolute per-bin
            uncertainty of the prediction's *efficiency* (the units of ``Template.error``),
            shape (K,), finite and >= 0 (0: no surrogate uncertainty in that bin).

    Raises:
        ValueError: templates with different edges, bins with no predicted background, a
            non-positive luminosity, alpha, cross-section or systematic, or a surrogate error
            of another shape, not finite or negative.
    """
    for other, what in ((data_background, "data background"), (prediction, "prediction")):
        if not np.array_equal(other.edges, signal.edges):
            raise ValueError(f"the {what} template has other bin edges than the signal template")
    empty = np.flatnonzero(prediction.counts == 0)
    if empty.size:
        raise ValueError(
            f"bins {empty.tolist()} have no background-prediction event; pyhf's shapesys/staterror "
            "are undefined there: merge them (templates.merge_empty_bins) or widen the binning"
        )
    if np.any(prediction.counts == prediction.n_total) or np.any(prediction.error == 0):
        # unweighted, with every bin filled, a zero error means one bin holds all N events
        raise ValueError(
            "one bin holds every event of the background prediction (efficiency 1), so its "
            "binomial error is zero and the staterror is undefined; check N before the cut"
        )
    if not (np.isfinite(shapesys_rel) and shapesys_rel > 0):
        raise ValueError(f"the relative shape systematic must be positive, got {shapesys_rel}")
    if surrogate_error is not None:
        surrogate_error = _check_surrogate_error(surrogate_error, signal.counts.size)
    n_b = background_total(lumi_fb, sigma_b_fb)
    n_s = signal_total(lumi_fb, sigma_b_fb, alpha)
    s = signal.yields(n_s)
    return ChannelYields(
        signal=s,
        background=prediction.yields(n_b),
        background_stat=prediction.stat_errors(n_b),
        observed=s + data_background.yields(n_b),
        shapesys_rel=float(shapesys_rel),
        background_surrogate=None if surrogate_error is None else n_b * surrogate_error,
    )


def _check_surrogate_error(surrogate_error: np.ndarray, n_bins: int) -> np.ndarray:
    """``surrogate_error`` as a float array of shape (``n_bins``,), finite and >= 0."""
    try:
        err = np.array(surrogate_error, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"the surrogate error must be an array of numbers, got {surrogate_error!r}"
        ) from None
    if err.shape != (n_bins,):
        raise ValueError(
            f"the surrogate error must have one value per bin, shape ({n_bins},), got {err.shape}"
        )
    bad = np.flatnonzero(~(np.isfinite(err) & (err >= 0)))
    if bad.size:
        raise ValueError(
            f"the surrogate error must be finite and >= 0 in every bin, got {err[bad].tolist()} "
            f"in bins {bad.tolist()}"
        )
    return err


def poi_bounds_covering(
    limits: Iterable[float], bounds: tuple[float, float] = POI_BOUNDS
) -> tuple[float, float]:
    """``bounds``, or wider ones, whose upper end is at least twice every finite limit.

    The workspace of a point must hold the limits reported for it, with room for pyhf's
    ``upper_limit`` to bracket them (it searches within the POI bounds): twice the largest
    limit, rounded up to 1, 2 or 5 times a power of ten (e.g. 882 → 2000). NaN limits (not
    found) are ignored.
    """
    needed = 2.0 * max((x for x in limits if math.isfinite(x)), default=0.0)
    if needed <= bounds[1]:
        return bounds
    decade = 10.0 ** math.floor(math.log10(needed))
    upper = next(m * decade for m in (1.0, 2.0, 5.0, 10.0) if m * decade >= needed)
    return (bounds[0], upper)


def build_workspace(
    yields: ChannelYields,
    *,
    channel: str = CHANNEL,
    measurement: str = "meas",
    poi_bounds: tuple[float, float] = POI_BOUNDS,
) -> dict[str, Any]:
    """A pyhf workspace (HistFactory JSON spec, version 1.0.0) for ``yields``.

    Arguments:
        yields: the channel's expected yields.
        channel: defaults to ``"signal_region"`` (channel name).
        measurement: defaults to ``"meas"`` (measurement name; POI ``mu``).
        poi_bounds: defaults to (0, 10) (the bounds of ``mu``; those the fits used).

    Returns:
        A dict of plain lists and floats: ``json.dump`` it, or ``pyhf.Workspace(ws).model()``.
        The background carries the ``bkg_surrogate`` shapesys only where
        ``yields.background_surrogate`` is given and positive in some bin.
    """
    b = yields.background
    surrogate = []
    if yields.background_surrogate is not None and np.any(yields.background_surrogate > 0):
        data = np.asarray(yields.background_surrogate, dtype=float).tolist()
        surrogate = [{"name": SURROGATE, "type": "shapesys", "data": data}]
    return {
        "channels": [
            {
                "name": channel,
                "samples": [
                    {
                        "name": "signal",
                        "data": yields.signal.tolist(),
                        "modifiers": [{"name": POI, "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "background",
                        "data": b.tolist(),
                        "modifiers": [
                            {
                                "name": SHAPESYS,
                                "type": "shapesys",
                                "data": (yields.shapesys_rel * b).tolist(),
                            },
                            {
                                "name": staterror_name(channel),
                                "type": "staterror",
                                "data": yields.background_stat.tolist(),
                            },
                            *surrogate,
                        ],
                    },
                ],
            }
        ],
        "observations": [{"name": channel, "data": yields.observed.tolist()}],
        "measurements": [
            {
                "name": measurement,
                "config": {
                    "poi": POI,
                    "parameters": [
                        {"name": POI, "bounds": [list(poi_bounds)], "inits": [1.0]},
                    ],
                },
            }
        ],
        "version": "1.0.0",
    }


def write_workspace(path: str | os.PathLike[str], workspace: dict[str, Any]) -> None:
    """Write ``workspace`` as pyhf JSON, atomically (temporary file, then ``os.replace``).

    The file can be refitted on the command line: ``pyhf fit --value path``, ``pyhf cls path``.
    Floats are written with ``repr`` precision, so the JSON reproduces the yields exactly.
    """
    text = json.dumps(workspace, indent=1, allow_nan=False)  # NaN is not JSON, nor a yield
    with atomic_output(path) as tmp:
        tmp.write_text(text + "\n")
