r"""Normalizing flows and autoregressive densities in plain PyTorch, with a registry by name.

Families: :class:`Glow` (``glow``), :class:`MAF` (``maf``), :class:`MADEMOG` (``mademog``),
:class:`MAFMADEMOG` (``mafmademog``), :class:`RQS` (``rqs``) and :class:`NSFCoupling`
(``nsf_coupling``). Build one from a config with :func:`build_flow`. Every family takes a
context (``context=C``) and is then a conditional density :math:`p(x \mid c)`;
:mod:`flowsim.flows.conditional` holds what the runs build from that (:class:`FixedContext`,
:class:`FeatureConditioned`).
"""

from .base import DensityModel, Flow
from .conditional import FeatureConditioned, FixedContext
from .glow import Glow
from .mademog import MADEMOG, MAFMADEMOG
from .maf import MAF
from .nsf_coupling import NSFCoupling
from .registry import FLOWS, build_flow, hyperparameters
from .rqs import RQS

__all__ = [
    "DensityModel",
    "FLOWS",
    "FeatureConditioned",
    "FixedContext",
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
