"""Residual networks that parameterise the transforms (activations, residual blocks, MLP)."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from .base import check_choice, check_float, check_int

__all__ = ["ACTIVATIONS", "ResidualBlock", "ResidualMLP", "conditioner_input", "make_activation", "small_init_"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def make_activation(name: str) -> nn.Module:
    """Instantiate the activation called ``name`` (one of :data:`ACTIVATIONS`)."""
    return ACTIVATIONS[check_choice("activation", name, sorted(ACTIVATIONS))]()


def conditioner_input(x: Tensor, context: Tensor | None, n_context: int) -> Tensor:
    """A conditioner network's input: ``x``, then the ``context`` (shape (N, n_context)) when the
    network takes one; a context where none is taken, or a missing or misshapen one, is refused."""
    if n_context == 0:
        if context is not None:
            raise ValueError("this transform is unconditional (context = 0) but was given a context")
        return x
    if context is None or context.shape != (x.shape[0], n_context):
        got = None if context is None else tuple(context.shape)
        raise ValueError(f"this transform needs a context of shape ({x.shape[0]}, {n_context}), got {got}")
    return torch.cat([x, context], dim=-1)


def small_init_(layer: nn.Linear, scale: float = 1e-3) -> nn.Linear:
    """Initialise a layer with weights in :math:`[-s, s]` and zero bias.

    Used on the last layer of every residual branch and every parameter network: a fresh block
    starts as the identity and a fresh flow as its base distribution (up to the fixed or random
    linear layers), which keeps deep stacks trainable. The weights are not exactly zero so that
    the gradients reach the earlier layers from the first step.
    """
    with torch.no_grad():
        layer.weight.uniform_(-scale, scale)
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


class ResidualBlock(nn.Module):
    r"""Pre-activation residual block :math:`h + W_2\,\mathrm{drop}(a(W_1 a(h)))`.

    References:
        | Identity Mappings in Deep Residual Networks (He et al., 2016)
        | https://arxiv.org/abs/1603.05027

    Arguments:
        first: The first linear layer :math:`W_1`, :math:`H \to H`.
        second: The second linear layer :math:`W_2`, :math:`H \to H`, initialised small.
        activation: The activation name :math:`a`.
        dropout: The dropout probability before :math:`W_2`.
    """

    def __init__(self, first: nn.Linear, second: nn.Linear, activation: str, dropout: float):
        super().__init__()
        self.first = first
        self.second = small_init_(second)
        self.act1 = make_activation(activation)
        self.act2 = make_activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: Tensor) -> Tensor:
        return h + self.second(self.dropout(self.act2(self.first(self.act1(h)))))


class ResidualMLP(nn.Module):
    r"""Residual multi-layer perceptron :math:`\mathbb{R}^{I} \to \mathbb{R}^{O}`.

    Layout: ``Linear(I, H)``, then ``residual_blocks`` :class:`ResidualBlock` of width :math:`H`,
    then an activation and ``Linear(H, O)`` initialised small (:func:`small_init_`).

    Arguments:
        in_features: The input size :math:`I`.
        out_features: The output size :math:`O`.
        hidden: The hidden width :math:`H`.
        residual_blocks: The number of residual blocks (0 gives a one-hidden-layer MLP).
        activation: The activation name.
        dropout: The dropout probability inside the residual blocks.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: int = 64,
        residual_blocks: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        hidden = check_int("hidden", hidden)
        residual_blocks = check_int("residual_blocks", residual_blocks, minimum=0)
        dropout = check_float("dropout", dropout, low=0.0, high=1.0, high_open=True)
        self.first = nn.Linear(in_features, hidden)
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(
                    nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), activation, dropout
                )
                for _ in range(residual_blocks)
            )
        )
        self.act = make_activation(activation)
        self.last = small_init_(nn.Linear(hidden, out_features))

    def forward(self, x: Tensor) -> Tensor:
        r"""Map :math:`(N, I) \to (N, O)`."""
        return self.last(self.act(self.blocks(self.first(x))))

