"""The HIGGS file layout (Baldi, Sadowski, Whiteson 2014).

``HIGGS.csv.gz`` has no header and 29 numbers a row: the label (1 signal, 0 background), 21
low-level features, then 7 high-level invariant masses. Momenta and masses are divided by their
mean (values O(1)), eta and phi by their standard deviation.
"""

from __future__ import annotations

__all__ = [
    "BTAG_COLUMNS",
    "COLUMNS",
    "DEFAULT_FEATURES",
    "FEATURE_COLUMNS",
    "HIGH_LEVEL",
    "LABEL",
    "N_COLUMNS",
    "PHI_COLUMNS",
    "UCI_SHA256",
    "UCI_URL",
    "check_features",
]

LABEL = "label"

LOW_LEVEL: tuple[str, ...] = (
    "lepton_pt", "lepton_eta", "lepton_phi", "met", "met_phi",
    "jet1_pt", "jet1_eta", "jet1_phi", "jet1_btag",
    "jet2_pt", "jet2_eta", "jet2_phi", "jet2_btag",
    "jet3_pt", "jet3_eta", "jet3_phi", "jet3_btag",
    "jet4_pt", "jet4_eta", "jet4_phi", "jet4_btag",
)  # fmt: skip
HIGH_LEVEL: tuple[str, ...] = ("m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb")

FEATURE_COLUMNS: tuple[str, ...] = LOW_LEVEL + HIGH_LEVEL
COLUMNS: tuple[str, ...] = (LABEL,) + FEATURE_COLUMNS
N_COLUMNS = len(COLUMNS)  # 29

PHI_COLUMNS: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c.endswith("_phi"))
BTAG_COLUMNS: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c.endswith("_btag"))

#: The paper's 18 continuous features: everything but the uniform phis and the discrete b-tags.
DEFAULT_FEATURES: tuple[str, ...] = tuple(
    c for c in FEATURE_COLUMNS if c not in PHI_COLUMNS and c not in BTAG_COLUMNS
)

UCI_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/00280/HIGGS.csv.gz"
UCI_SHA256 = "ea302c18164d4e3d916a1e2e83a9a8d07069fa6ebc7771e4c0540d54e593b698"


def check_features(features: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Return ``features`` as a tuple after checking each is a HIGGS feature, listed once."""
    unknown = [f for f in features if f not in FEATURE_COLUMNS]
    if unknown:
        raise ValueError(
            f"unknown feature(s) {unknown}; expected names from {list(FEATURE_COLUMNS)}"
        )
    repeated = sorted({f for f in features if list(features).count(f) > 1})
    if repeated:
        raise ValueError(f"feature(s) listed more than once: {repeated}")
    if not features:
        raise ValueError("at least one feature is needed")
    return tuple(features)
