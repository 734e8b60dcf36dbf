"""The compiled conv+SiLU is held to the same computation in torch ops, values and gradients, causal and
anti-causal, on a strided channel slice as BiMamba passes it."""

import pytest
import torch

from ginr_cli.nn.conv_cpu import conv_silu, conv_silu_torch
from ginr_cli.nn.scan_cpu import can_build

pytestmark = pytest.mark.skipif(not can_build(), reason="needs a C++ compiler and ninja")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reverse", [(), (False, True), (True,)])
@pytest.mark.parametrize("l", [1, 3, 50])  # shorter than the kernel, and longer
def test_matches_torch(dtype, reverse, l):
    g = torch.Generator().manual_seed(l)
    e = 6
    whole = torch.randn(2, 2 * e, l, generator=g, dtype=dtype)  # x is its first half: a strided batch
    weight = torch.randn(e, 4, generator=g, dtype=dtype)
    bias = torch.randn(e, generator=g, dtype=dtype)
    inputs = [whole, weight, bias]
    for t in inputs:
        t.requires_grad_()

    fast = conv_silu(whole[:, :e], weight, bias, reverse)
    slow = conv_silu_torch(whole[:, :e], weight, bias, reverse)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else {}
    torch.testing.assert_close(fast, slow, **tol)
    dy = torch.randn(fast.shape, generator=g, dtype=dtype)
    for got, want in zip(
        torch.autograd.grad(fast, inputs, dy), torch.autograd.grad(slow, inputs, dy), strict=True
    ):
        torch.testing.assert_close(got, want, **tol)


def test_inference_writes_into_the_given_buffer():
    x, weight, bias = torch.randn(2, 6, 30), torch.randn(6, 4), torch.randn(6)
    buf = torch.full((2, 6, 30), float("nan"))
    with torch.no_grad():
        got = conv_silu(x, weight, bias, (False, True), out=buf)
    assert got is buf
    torch.testing.assert_close(got, conv_silu_torch(x, weight, bias, (False, True)), rtol=1e-5, atol=1e-5)


def test_anti_causal_sees_only_later_positions():
    """A step at position 10 moves the causal outputs from 10 on, the anti-causal ones up to 10."""
    x = torch.zeros(1, 2, 20, dtype=torch.float64)
    x[..., 10] = 1.0
    y = conv_silu(
        x, torch.ones(2, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), (False, True)
    )
    moved = (y != 0).nonzero()[:, 1:].tolist()
    assert [t for c, t in moved if c == 0] == [10, 11, 12, 13]
    assert [t for c, t in moved if c == 1] == [7, 8, 9, 10]
