r"""zuko's flows as registry entries: the peers the fidelity protocol compares flowsim against.

zuko (https://github.com/probabilists/zuko) is optional, behind the ``bench`` extra
(``pip install 'flowsim[bench]'``); the entries exist without it, and building one names the
missing package. Each peer is wrapped as a :class:`~flowsim.flows.base.DensityModel`, so the
trainer, the sampler, the model files and the evaluation treat it like any family here. The
sizes are flowsim's names: ``blocks`` transforms whose networks have ``layers`` hidden layers
of width ``hidden`` (zuko's ``transforms`` and ``hidden_features = [hidden] * layers``).

References:
    | Masked Autoregressive Flow for Density Estimation (Papamakarios et al., 2017)
    | https://arxiv.org/abs/1705.07057

    | Neural Spline Flows (Durkan et al., 2019)
    | https://arxiv.org/abs/1906.04032
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch
import torch.nn as nn
from torch import Tensor

from .base import DensityModel, check_int

__all__ = ["MissingPackageError", "ZukoFlow", "ZukoMAF", "ZukoNSF", "ZukoNSFCoupling", "missing_zuko"]

INSTALL_HINT = "pip install 'flowsim[bench]'"


class MissingPackageError(ImportError):
    """An optional package that a registry entry needs is not installed."""


def missing_zuko() -> str | None:
    """Why the zuko peers cannot be built here (with the command that fixes it), or None."""
    try:
        importlib.import_module("zuko")
    except ImportError:
        return f"the zuko peers need zuko, which is not installed: {INSTALL_HINT}"
    return None


def _zuko() -> ModuleType:
    problem = missing_zuko()
    if problem is not None:
        raise MissingPackageError(problem)
    return importlib.import_module("zuko")


class ZukoFlow(DensityModel):
    r"""A zuko flow (a ``zuko.flows.Flow``, conditional or not) behind flowsim's density
    interface.

    :math:`\log p(x)` is the flow's ``log_prob``; a conditional one's distribution is built from
    each event's context, :math:`p(x \mid c)` = ``flow(c).log_prob(x)``. zuko draws from the global random state, so a
    ``generator`` seeds a forked copy of it: the draw is reproducible and the caller's global
    state is left as it was.

    Arguments:
        n_features: The number of features :math:`D`.
        flow: The zuko flow on :math:`D` features.
        context: The number of context features :math:`C` it was built with.
    """

    #: numbers each feature's transform takes from the network (the affine shift and scale)
    outputs_per_feature: int = 2

    def __init__(self, n_features: int, flow: nn.Module, context: int = 0):
        super().__init__(n_features, context)
        self.flow = flow

    def _distribution(self, context: Tensor | None):
        return self.flow() if context is None else self.flow(context)

    @classmethod
    def least_state_size(cls, n_features: int, blocks: int, hidden: int, layers: int, **hyper: int) -> int:
        r"""A lower bound on the numbers in the state of this peer: per block a masked MLP
        :math:`D \to h^{\times L} \to D p`, whose layers hold a weight, its mask and a bias,
        :math:`\sum_l (2\, n_l n_{l+1} + n_{l+1})`. zuko builds its masks with operations
        PyTorch's ``meta`` device lacks, so a model file is checked against this instead
        before anything is built (:func:`flowsim.flows.persist.load_flow`)."""
        p = cls._outputs(**hyper)
        sizes = [n_features + hyper.get("context", 0)] + [hidden] * layers + [n_features * p]
        return blocks * sum(2 * a * b + b for a, b in zip(sizes[:-1], sizes[1:]))

    @classmethod
    def _outputs(cls, **hyper: int) -> int:
        return cls.outputs_per_feature

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        self._check_input(x)
        return self._distribution(self._check_context(context, len(x))).log_prob(x)

    def _sample(self, n: int, generator: torch.Generator | None, context: Tensor | None) -> Tensor:
        reference = self._reference()
        devices = [reference.device] if reference.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if generator is not None:
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator, device=generator.device)))
            if context is not None:  # one event per context row: the distribution's batch shape is (n,)
                return self._distribution(context).sample()
            return self.flow().sample((n,))


def _sizes(n_features: int, blocks: int, hidden: int, layers: int, context: int) -> dict:
    check_int("n_features", n_features)
    hidden, layers = check_int("hidden", hidden), check_int("layers", layers)
    return {
        "transforms": check_int("blocks", blocks),
        "hidden_features": [hidden] * layers,
        "context": check_int("context", context, minimum=0),
    }


class ZukoMAF(ZukoFlow):
    r"""zuko's masked autoregressive flow (affine MADE transforms, reversed order between them).

    Arguments:
        n_features: The number of features :math:`D`.
        blocks: The number of autoregressive transforms.
        hidden: The hidden width of the MADEs.
        layers: The number of hidden layers of each MADE.
        context: The number of context features :math:`C` (0: unconditional).
    """

    def __init__(self, n_features: int, blocks: int = 5, hidden: int = 128, layers: int = 2, context: int = 0):
        sizes = _sizes(n_features, blocks, hidden, layers, context)
        super().__init__(n_features, _zuko().flows.MAF(n_features, **sizes), context)


class ZukoNSF(ZukoFlow):
    r"""zuko's autoregressive neural spline flow (monotone rational-quadratic splines).

    Arguments:
        n_features: The number of features :math:`D`.
        blocks: The number of autoregressive transforms.
        hidden: The hidden width of the MADEs.
        layers: The number of hidden layers of each MADE.
        bins: The number of spline bins :math:`K`.
        context: The number of context features :math:`C` (0: unconditional).
    """

    #: zuko's ``passes``: None is fully autoregressive (D passes to sample), 2 a coupling flow
    passes: int | None = None

    @classmethod
    def _outputs(cls, bins: int = 8, **hyper: int) -> int:
        return 3 * bins - 1  # K widths, K heights, K - 1 inner derivatives

    def __init__(
        self, n_features: int, blocks: int = 5, hidden: int = 128, layers: int = 2, bins: int = 8, context: int = 0
    ):
        sizes = _sizes(n_features, blocks, hidden, layers, context)
        bins = check_int("bins", bins, minimum=2)
        extra = {} if self.passes is None else {"passes": self.passes}
        super().__init__(n_features, _zuko().flows.NSF(n_features, bins=bins, **sizes, **extra), context)


class ZukoNSFCoupling(ZukoNSF):
    r"""zuko's neural spline flow as a coupling flow (two passes: half the features condition
    the other half, one network pass to sample).

    Arguments:
        n_features: The number of features :math:`D \geq 2`.
        blocks: The number of coupling transforms.
        hidden: The hidden width of the networks.
        layers: The number of hidden layers of each network.
        bins: The number of spline bins :math:`K`.
        context: The number of context features :math:`C` (0: unconditional).
    """

    passes = 2

    def __init__(
        self, n_features: int, blocks: int = 5, hidden: int = 128, layers: int = 2, bins: int = 8, context: int = 0
    ):
        check_int("n_features", n_features, minimum=2)
        super().__init__(n_features, blocks, hidden, layers, bins, context)
