"""Masked autoencoder for distribution estimation (MADE): degrees, masks and a residual MADE."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .base import check_float, check_int
from .nets import ResidualBlock, conditioner_input, make_activation, small_init_

__all__ = [
    "MaskedLinear",
    "ResidualMADE",
    "hidden_degrees",
    "input_degrees",
    "made_mask",
]


def input_degrees(n_features: int, order: Sequence[int] | None = None) -> Tensor:
    r"""Degrees :math:`m(i) \in \{1, \dots, D\}` of the inputs.

    Arguments:
        n_features: The number of features :math:`D`.
        order: The autoregressive order, a permutation of :math:`0, \dots, D-1`: input
            ``order[k]`` is the :math:`k`-th variable and gets degree :math:`k+1`. Defaults to
            ``None`` (the natural order, :math:`m(i) = i + 1`).

    Returns:
        The degrees, shape :math:`(D,)`, dtype ``long``.

    Example:
        >>> input_degrees(3, order=[2, 0, 1])
        tensor([2, 3, 1])
    """
    n_features = check_int("n_features", n_features)
    if order is None:
        return torch.arange(1, n_features + 1)
    order_t = torch.as_tensor(list(order), dtype=torch.long)
    if sorted(order_t.tolist()) != list(range(n_features)):
        raise ValueError(f"order must be a permutation of 0..{n_features - 1}, got {list(order)}")
    degrees = torch.empty(n_features, dtype=torch.long)
    degrees[order_t] = torch.arange(1, n_features + 1)
    return degrees


def hidden_degrees(hidden: int, n_features: int, conditional: bool = False) -> Tensor:
    r"""Degrees of :math:`H` hidden units, cycled over :math:`1, \dots, \max(D - 1, 1)`, or
    over :math:`0, \dots, D - 1` for a ``conditional`` MADE.

    Cycling (rather than drawing at random) spreads the units evenly over the degrees, so every
    conditional gets the same share of the width and the masks are deterministic. A unit of degree
    :math:`D` would feed no output, hence the range stops at :math:`D - 1`. Units of degree 0 see
    the context alone (context inputs have degree 0): through them the first variable's
    parameters depend on the context, instead of being the output bias.

    Example:
        >>> hidden_degrees(5, 3), hidden_degrees(5, 3, conditional=True)
        (tensor([1, 2, 1, 2, 1]), tensor([0, 1, 2, 0, 1]))
    """
    if conditional:
        return torch.arange(hidden) % n_features
    return torch.arange(hidden) % max(n_features - 1, 1) + 1


def made_mask(degrees_in: Tensor, degrees_out: Tensor, strict: bool) -> Tensor:
    r"""Connectivity mask :math:`M_{ji}` of a layer, shape :math:`(O, I)`.

    .. math:: M_{ji} = [m_\text{out}(j) \geq m_\text{in}(i)] \quad \text{(hidden layers)},
              \qquad M_{ji} = [m_\text{out}(j) > m_\text{in}(i)] \quad \text{(output layer)}

    Together these make output :math:`d` a function of the inputs of degree :math:`< m(d)` only.

    References:
        | MADE: Masked Autoencoder for Distribution Estimation (Germain et al., 2015)
        | https://arxiv.org/abs/1502.03509
    """
    if strict:
        return (degrees_out[:, None] > degrees_in[None, :]).to(torch.get_default_dtype())
    return (degrees_out[:, None] >= degrees_in[None, :]).to(torch.get_default_dtype())


class MaskedLinear(nn.Linear):
    r"""Linear layer with a fixed connectivity mask, :math:`y = (W \odot M) x + b`.

    The mask is a persistent buffer so that a random order survives ``state_dict`` round trips.

    Arguments:
        mask: The mask :math:`M`, shape :math:`(O, I)`.
        bias: Whether to learn a bias :math:`b`.
    """

    def __init__(self, mask: Tensor, bias: bool = True):
        super().__init__(mask.shape[1], mask.shape[0], bias=bias)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def _masked_linear(
    layer: MaskedLinear, x: Tensor, rows: Tensor | slice, cols: Tensor | None = None
) -> Tensor:
    """``layer`` restricted to output ``rows`` and input ``cols`` (all inputs if None)."""
    weight, mask = layer.weight[rows], layer.mask[rows]
    if cols is not None:
        weight, mask = weight[:, cols], mask[:, cols]
    return F.linear(x, weight * mask, layer.bias[rows])


class ResidualMADE(nn.Module):
    r"""Residual MADE giving :math:`P` parameters per dimension, :math:`(N, D) \to (N, D, P)`,
    optionally conditioned on a context :math:`c \in \mathbb{R}^C`.

    Layout: a masked input layer :math:`D \to H`, ``residual_blocks`` masked residual blocks
    (hidden-to-hidden masks with :math:`\geq`, so the identity branch respects the degrees), an
    activation and a masked output layer :math:`H \to D P` (strict mask) initialised small
    (:func:`~flowsim.flows.nets.small_init_`). The parameters ``out[:, d, :]`` depend only on the
    inputs of degree :math:`< m(d)`; for the first variable they are constants (the output bias).
    With a context, the context inputs have degree 0 and reach every output, the first
    variable's through hidden units of degree 0 (:func:`hidden_degrees`).

    References:
        | MADE: Masked Autoencoder for Distribution Estimation (Germain et al., 2015)
        | https://arxiv.org/abs/1502.03509

        | Autoregressive Energy Machines (Nash & Durkan, 2019)
        | https://arxiv.org/abs/1904.05626

    Arguments:
        n_features: The number of features :math:`D`.
        n_params: The number of parameters per dimension :math:`P`.
        hidden: The hidden width :math:`H`.
        residual_blocks: The number of residual blocks.
        activation: The activation name.
        dropout: The dropout probability inside the residual blocks.
        order: The autoregressive order (see :func:`input_degrees`).
        context: The number of context inputs :math:`C` (0: unconditional).

    Example:
        >>> made = ResidualMADE(3, n_params=2, hidden=8, residual_blocks=1)
        >>> made(torch.randn(5, 3)).shape
        torch.Size([5, 3, 2])
    """

    def __init__(
        self,
        n_features: int,
        n_params: int,
        hidden: int = 128,
        residual_blocks: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,
        order: Sequence[int] | None = None,
        context: int = 0,
    ):
        super().__init__()
        self.n_features = check_int("n_features", n_features)
        self.context = check_int("context", context, minimum=0)
        self.n_params = check_int("n_params", n_params)
        hidden = check_int("hidden", hidden)
        residual_blocks = check_int("residual_blocks", residual_blocks, minimum=0)
        dropout = check_float("dropout", dropout, low=0.0, high=1.0, high_open=True)

        m_in = input_degrees(n_features, order)
        m_hidden = hidden_degrees(hidden, n_features, conditional=self.context > 0)
        # Output unit d * P + p carries parameter p of dimension d.
        m_out = m_in.repeat_interleave(n_params)
        self.register_buffer("degrees", m_in)
        # not saved: a function of the sizes, used by invert() only
        self.register_buffer("hidden_degrees", m_hidden, persistent=False)
        m_first = torch.cat([m_in, torch.zeros(self.context, dtype=m_in.dtype)])  # the context: degree 0

        self.first = MaskedLinear(made_mask(m_first, m_hidden, strict=False))
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(
                    MaskedLinear(made_mask(m_hidden, m_hidden, strict=False)),
                    MaskedLinear(made_mask(m_hidden, m_hidden, strict=False)),
                    activation,
                    dropout,
                )
                for _ in range(residual_blocks)
            )
        )
        self.act = make_activation(activation)
        self.last = small_init_(MaskedLinear(made_mask(m_hidden, m_out, strict=True)))

    def _inputs(self, x: Tensor, context: Tensor | None) -> Tensor:
        """The first layer's inputs: the events, then their context."""
        return conditioner_input(x, context, self.context)

    def trunk(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """The activations :math:`h(x, c)` of the last hidden layer, shape :math:`(N, H)`."""
        return self.act(self.blocks(self.first(self._inputs(x, context))))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.last(self.trunk(x, context)).unflatten(-1, (self.n_features, self.n_params))

    def invert(
        self, like: Tensor, column: Callable[[int, Tensor], Tensor], context: Tensor | None = None
    ) -> Tensor:
        r"""Solve an autoregressive map for :math:`x`, one dimension at a time.

        In the order of the degrees, the variable of degree :math:`k + 1` gets
        :math:`x_d = \texttt{column}(d, \theta_d(x_{<d}))`, with :math:`\theta_d` of shape
        :math:`(N, P)`. Step :math:`k` evaluates only what :math:`\theta_d` depends on: the
        hidden units of degree :math:`\leq k` (the masks connect degrees upwards only, so that
        set is closed) and dimension :math:`d`'s :math:`P` output rows. The :math:`D` steps
        together cost about half a trunk pass per step and one pass of the output layer and of
        the element-wise transform in all, instead of :math:`D` full passes. The first variable's
        parameters are the output bias alone.

        Arguments:
            like: A tensor of shape :math:`(N, D)` giving the batch size, device and dtype.
            column: Maps ``(d, theta_d)`` to :math:`x_d`, shape :math:`(N,)`.
            context: The events' contexts, shape :math:`(N, C)` (conditional MADE only).
        """
        n, P = like.shape[0], self.n_params
        x = torch.zeros_like(like)
        self._inputs(x, context)  # checks the context once
        index = torch.arange(self.n_features, device=like.device)
        for k, d in enumerate(torch.argsort(self.degrees).tolist()):
            rows = slice(d * P, (d + 1) * P)
            if k == 0 and self.context == 0:
                theta = self.last.bias[rows].expand(n, P)
            else:
                units = torch.nonzero(self.hidden_degrees <= k).squeeze(1)
                h = self._trunk_units(self._inputs(x, context), units)
                theta = _masked_linear(self.last, self.act(h), rows, units)
            x = x.index_copy(1, index[d : d + 1], column(d, theta).unsqueeze(1))
        return x

    def _trunk_units(self, inputs: Tensor, units: Tensor) -> Tensor:
        """The trunk's pre-activations of the hidden ``units`` alone, shape (N, len(units)),
        from the first layer's ``inputs`` (events and context).

        Exact for any set of units that receives from no unit outside it, such as the units of
        degree <= k.
        """
        h = _masked_linear(self.first, inputs, units)
        for block in self.blocks:
            inner = _masked_linear(block.first, block.act1(h), units, units)
            h = h + _masked_linear(block.second, block.dropout(block.act2(inner)), units, units)
        return h

    def extra_repr(self) -> str:
        context = f", context={self.context}" if self.context else ""
        return f"n_features={self.n_features}, n_params={self.n_params}{context}"
