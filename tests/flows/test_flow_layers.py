"""Shared bijections: LU linear map, batch norm, permutations."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from flowsim.flows.transforms import (
    BatchNormTransform,
    LULinearTransform,
    PermutationTransform,
    make_permutation,
    stack_blocks,
)


def test_lu_log_det_matches_slogdet():
    lu = LULinearTransform(5)
    with torch.no_grad():
        for p in lu.parameters():
            p.add_(0.5 * torch.randn_like(p))
    W = lu.weight()
    x = torch.randn(7, 5)
    y, ladj = lu(x)
    torch.testing.assert_close(y, x @ W.T)
    _, logabsdet = torch.linalg.slogdet(W)
    torch.testing.assert_close(ladj, logabsdet.expand(7))
    torch.testing.assert_close(lu.inverse(y), x)


def test_lu_starts_as_a_rotation_with_a_real_permutation():
    torch.manual_seed(3)
    lu = LULinearTransform(6)
    W = lu.weight()
    torch.testing.assert_close(W @ W.T, torch.eye(6))
    assert sorted(lu.perm.tolist()) == list(range(6))
    assert lu.perm.dtype == torch.long


def test_lu_permutation_survives_weights_only_reload(tmp_path):
    torch.manual_seed(1)
    lu = LULinearTransform(6)
    path = tmp_path / "lu.pt"
    torch.save(lu.state_dict(), path)
    assert {"perm", "sign"} <= set(lu.state_dict())
    torch.manual_seed(2)
    other = LULinearTransform(6)
    assert not torch.equal(other.perm, lu.perm)  # seeds chosen so the permutations differ
    other.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(other.perm, lu.perm)
    torch.testing.assert_close(other.weight(), lu.weight())


def test_batch_norm_training_uses_batch_statistics():
    bn = BatchNormTransform(3, momentum=0.5)
    x = 3.0 + 2.0 * torch.randn(4000, 3)
    y, ladj = bn(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(3), atol=1e-10, rtol=0)
    torch.testing.assert_close(y.var(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    expected = -0.5 * (x.var(0, unbiased=False) + bn.eps).log().sum()
    torch.testing.assert_close(ladj, expected.expand(4000))
    torch.testing.assert_close(bn.running_mean, 0.5 * x.mean(0))
    torch.testing.assert_close(bn.running_var, 0.5 + 0.5 * x.var(0))


def test_batch_norm_eval_is_an_exact_bijection():
    bn = BatchNormTransform(3)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(3))
        bn.running_var.copy_(torch.rand(3) + 0.5)
        bn.log_gamma.copy_(torch.randn(3))
        bn.beta.copy_(torch.randn(3))
    bn.eval()
    x = torch.randn(5, 3)
    y, ladj = bn(x)
    J = jacobian(lambda v: bn(v.unsqueeze(0))[0].squeeze(0), x[0])
    torch.testing.assert_close(ladj[0], torch.linalg.slogdet(J)[1])
    torch.testing.assert_close(bn.inverse(y), x)
    before = bn.running_mean.clone()
    bn(torch.randn(10, 3))
    assert torch.equal(bn.running_mean, before)  # eval mode never updates the statistics


def test_permutations():
    x = torch.randn(4, 5)
    for kind in ("reverse", "random"):
        layer = make_permutation(kind, 5)
        y, ladj = layer(x)
        assert torch.equal(ladj, torch.zeros(4))
        assert torch.equal(layer.inverse(y), x)
    assert torch.equal(make_permutation("reverse", 5)(x)[0], x.flip(-1))
    assert isinstance(make_permutation("lu", 5), LULinearTransform)
    with pytest.raises(ValueError, match="permutation"):
        make_permutation("shuffle", 5)
    with pytest.raises(ValueError, match="perm"):
        PermutationTransform(torch.tensor([0, 0, 1]))


@pytest.mark.parametrize(
    "batch_norm, mix_first, layout",
    [
        (False, False, "B P B P B"),
        (True, False, "B N P B N P B"),
        (False, True, "P B P B P B"),
        (True, True, "N P B N P B N P B"),
    ],
)  # fmt: skip
def test_stack_blocks_puts_the_mixing_between_blocks(batch_norm, mix_first, layout):
    codes = {PermutationTransform: "P", BatchNormTransform: "N", torch.nn.Identity: "B"}
    layers = stack_blocks(torch.nn.Identity, 4, 3, batch_norm, "reverse", mix_first=mix_first)
    assert " ".join(codes[type(layer)] for layer in layers) == layout
    with pytest.raises(ValueError, match="blocks"):
        stack_blocks(torch.nn.Identity, 4, 0, batch_norm, "reverse")
