"""Registry of the flow families: build a model from its name and plain hyperparameters."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from .base import DensityModel, check_known
from .bayesian import bayesian_settings, bayesianize
from .cfm import CFM
from .glow import Glow
from .mademog import MADEMOG, MAFMADEMOG
from .maf import MAF
from .nsf_coupling import NSFCoupling
from .peers import ZukoMAF, ZukoNSF, ZukoNSFCoupling
from .rqs import RQS

__all__ = ["FLOWS", "OPTIONS", "PEERS", "accepted_params", "build_flow", "hyperparameters"]

#: Flow families by config name; the config schema's ``model`` enum is tied to it by a test.
FLOWS: dict[str, type[DensityModel]] = {
    "glow": Glow,
    "maf": MAF,
    "mademog": MADEMOG,
    "mafmademog": MAFMADEMOG,
    "rqs": RQS,
    "nsf_coupling": NSFCoupling,
    "cfm": CFM,
    # zuko's flows, the fidelity protocol's peers: they build only where zuko is installed
    "zuko_maf": ZukoMAF,
    "zuko_nsf": ZukoNSF,
    "zuko_nsf_coupling": ZukoNSFCoupling,
}
#: The registry entries that are another library's flows, not flowsim's.
PEERS: tuple[str, ...] = ("zuko_maf", "zuko_nsf", "zuko_nsf_coupling")
#: Options every flowsim family (not the peers) takes besides its hyperparameters, with their
#: defaults: ``bayesian``, the settings of a Bayesian flow (:mod:`flowsim.flows.bayesian`:
#: ``prior_std``, ``init_std``), None for a deterministic one.
OPTIONS: dict[str, Any] = {"bayesian": None}


def _flow_class(model: str) -> type[DensityModel]:
    if model not in FLOWS:
        raise ValueError(f"unknown flow model {model!r}; valid models: {', '.join(FLOWS)}")
    return FLOWS[model]


def hyperparameters(model: str) -> dict[str, Any]:
    """The hyperparameters accepted by ``model`` with their defaults.

    They are the keyword arguments of the family's constructor after ``n_features`` (for a
    :class:`~flowsim.flows.transforms.StackedFlow`, its layout's and its block's); training
    settings (learning rate, batch size, ...) are not among them.

    Example:
        >>> hyperparameters("mademog")["activation"]
        'gelu'
    """
    return _flow_class(model).hyperparameters()


def accepted_params(model: str) -> dict[str, Any]:
    """Every key a run's ``params`` may give ``model``, with its default: its
    :func:`hyperparameters` and, for flowsim's families, the :data:`OPTIONS`.

    Example:
        >>> "bayesian" in accepted_params("maf"), "bayesian" in accepted_params("zuko_maf")
        (True, False)
    """
    return {**hyperparameters(model), **({} if model in PEERS else OPTIONS)}


def build_flow(model: str, n_features: int, **hyper: Any) -> nn.Module:
    """Build the flow ``model`` on ``n_features`` features.

    Arguments:
        model: A key of :data:`FLOWS`.
        n_features: The number of features :math:`D`.
        hyper: Hyperparameters (see :func:`hyperparameters`); missing ones take their defaults.
            For flowsim's families also ``bayesian``: a mapping of the settings of
            :func:`~flowsim.flows.bayesian.bayesianize` (``{}`` for the defaults) makes the flow's
            conditioners variational; None (the default) leaves it deterministic.

    Raises:
        ValueError: For an unknown model (listing the valid ones), an unknown hyperparameter
            (listing the valid ones for that model) or an invalid value (naming the key).
        MissingPackageError: For a peer (:data:`PEERS`) where zuko is not installed, with
            the command that installs it.

    Example:
        >>> import torch
        >>> flow = build_flow("maf", 3, blocks=2, hidden=16)
        >>> flow.log_prob(torch.randn(4, 3)).shape
        torch.Size([4])
    """
    cls = _flow_class(model)
    check_known(f"flow {model!r}", hyper, accepted_params(model))
    bayesian = hyper.pop("bayesian", None)
    if bayesian is not None and hasattr(cls, "training_loss"):
        raise ValueError(f"bayesian: {model} trains on its own loss, not the likelihood an ELBO needs")
    settings = bayesian_settings(bayesian) if bayesian is not None else None  # refused before any build
    flow = cls(n_features, **hyper)
    return flow if settings is None else bayesianize(flow, **settings)
