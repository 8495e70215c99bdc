"""Axis labels of the features: the HIGGS features with their file units, and the units a
configuration declares for its own features (``features: [{name, unit}]``, source root)."""

from __future__ import annotations

from collections.abc import Mapping

from flowsim.data.higgs import FEATURE_COLUMNS

__all__ = ["FEATURE_LABELS", "declare_units", "feature_label"]


def _build_labels() -> dict[str, str]:
    """LaTeX axis labels of the 28 HIGGS features, file units included."""
    unit = " [a.u.]"  # momenta and masses are divided by their mean in the file
    objects = {"lepton": "lepton", **{f"jet{k}": f"jet {k}" for k in range(1, 5)}}
    labels: dict[str, str] = {}
    for key, obj in objects.items():
        labels[f"{key}_pt"] = f"{obj} $p_T$" + unit
        labels[f"{key}_eta"] = f"{obj} $\\eta$"
        labels[f"{key}_phi"] = f"{obj} $\\phi$"
        labels[f"{key}_btag"] = f"{obj} b-tag"
    del labels["lepton_btag"]
    labels["met"] = r"$E_T^{\mathrm{miss}}$" + unit
    labels["met_phi"] = r"$\phi(E_T^{\mathrm{miss}})$"
    masses = {
        "m_jj": r"$m_{jj}$", "m_jjj": r"$m_{jjj}$", "m_lv": r"$m_{\ell\nu}$",
        "m_jlv": r"$m_{j\ell\nu}$", "m_bb": r"$m_{b\bar{b}}$", "m_wbb": r"$m_{Wb\bar{b}}$",
        "m_wwbb": r"$m_{WWb\bar{b}}$",
    }  # fmt: skip
    labels.update({k: v + unit for k, v in masses.items()})
    return {name: labels[name] for name in FEATURE_COLUMNS}  # file order


#: Axis label of every HIGGS branch (file order), e.g. ``"m_bb" -> "$m_{b\bar{b}}$ [a.u.]"``.
FEATURE_LABELS: dict[str, str] = _build_labels()


#: Units of the job's own features, by name (:func:`declare_units`).
_DECLARED_UNITS: dict[str, str] = {}


def declare_units(units: Mapping[str, str | None] | None) -> None:
    """Label the features of ``units`` (name -> unit, None: dimensionless) "name [unit]" in
    this process's plots: the configuration's own features, whose units only it knows."""
    _DECLARED_UNITS.clear()
    _DECLARED_UNITS.update({name: unit for name, unit in (units or {}).items() if unit})


def feature_label(name: str, *, unit: bool = True) -> str:
    """LaTeX label of a feature; ``unit=False`` drops the unit suffix.

    HIGGS momenta and masses are in file units (divided by their mean), hence "[a.u.]"; η, φ and
    the b-tag are dimensionless. A unit declared for the feature (:func:`declare_units`) wins;
    other names are returned unchanged, so the plots work for any feature.
    """
    if name in _DECLARED_UNITS:
        bare = FEATURE_LABELS.get(name, name).removesuffix(" [a.u.]")
        return f"{bare} [{_DECLARED_UNITS[name]}]" if unit else bare
    label = FEATURE_LABELS.get(name, name)
    return label.removesuffix(" [a.u.]") if not unit else label
