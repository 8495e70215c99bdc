"""Normalizing flows and autoregressive densities in plain PyTorch, with a registry by name.

Families: :class:`Glow` (``glow``), :class:`MAF` (``maf``), :class:`MADEMOG` (``mademog``),
:class:`MAFMADEMOG` (``mafmademog``), :class:`RQS` (``rqs``) and :class:`NSFCoupling`
(``nsf_coupling``). Build one from a config with :func:`build_flow`.
"""

from .base import DensityModel, Flow
from .glow import Glow
from .mademog import MADEMOG, MAFMADEMOG
from .maf import MAF
from .nsf_coupling import NSFCoupling
from .registry import FLOWS, build_flow, hyperparameters
from .rqs import RQS

__all__ = [
    "DensityModel",
    "FLOWS",
    "Flow",
    "Glow",
    "MADEMOG",
    "MAF",
    "MAFMADEMOG",
    "NSFCoupling",
    "RQS",
    "build_flow",
    "hyperparameters",
]
