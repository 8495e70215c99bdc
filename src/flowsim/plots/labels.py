"""Axis labels of the HIGGS features, with their file units."""

from __future__ import annotations

from flowsim.data.higgs import FEATURE_COLUMNS

__all__ = ["FEATURE_LABELS", "feature_label"]


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


def feature_label(name: str, *, unit: bool = True) -> str:
    """LaTeX label of a HIGGS feature; ``unit=False`` drops the " [a.u.]" suffix.

    Momenta and masses are in file units (divided by their mean), hence "[a.u.]"; η, φ and the
    b-tag are dimensionless. Unknown names are returned unchanged, so the plots also work for
    other features.
    """
    label = FEATURE_LABELS.get(name, name)
    return label.removesuffix(" [a.u.]") if not unit else label
