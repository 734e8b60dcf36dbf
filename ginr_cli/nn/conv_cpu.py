"""Mamba's depthwise conv and SiLU, fused in C++ for the CPU (`csrc/conv_silu_cpu.cpp`, built with the scan
by scan_cpu.py), with the same grouping as the scan: channel groups that are causal, or anti-causal where
`reverse` marks them (a reverse Mamba's conv, on the unflipped sequence). `conv_silu` picks it on the CPU
when the compiled kernels are ready and otherwise runs the same computation with torch ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class _ConvSiluCpu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, reverse):
        ctx.save_for_backward(x, weight, bias)
        ctx.reverse = reverse
        return torch.ops.ginr_conv.forward(x, weight, bias, reverse)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        x, weight, bias = ctx.saved_tensors
        dx, dw, dbias = torch.ops.ginr_conv.backward(dy.contiguous(), x, weight, bias, ctx.reverse)
        return dx, dw.sum(0), dbias.sum(0), None


def conv_silu_torch(x: Tensor, weight: Tensor, bias: Tensor, reverse: Sequence[bool] = ()) -> Tensor:
    """The same with torch ops: per group, a causal conv, or the anti-causal one (flipped kernel)."""
    groups = len(reverse) or 1
    parts = []
    for xs, ws, bs, rev in zip(
        x.chunk(groups, 1), weight.chunk(groups), bias.chunk(groups), reverse or (False,), strict=True
    ):
        k, l = ws.shape[-1], xs.shape[-1]
        a = F.conv1d(xs, (ws.flip(-1) if rev else ws)[:, None], bs, padding=k - 1, groups=ws.shape[0])
        parts.append(a[..., k - 1 :] if rev else a[..., :l])
    return F.silu(torch.cat(parts, 1) if groups > 1 else parts[0])


def conv_silu(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    reverse: Sequence[bool] = (),
    compiled: bool = True,
    out: Tensor | None = None,
) -> Tensor:
    """silu(depthwise conv(x)): x (b, e, l), weight (e, K), bias (e,); `reverse` one flag per channel group.
    `compiled` allows the C++ kernel (used on the CPU for float32/float64 when it is built). `out`, a
    buffer like x, is written and returned by the C++ kernel when no gradient is needed; otherwise unused."""
    from ginr_cli.nn import scan_cpu

    usable = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.stride(-1) == 1
    if compiled and usable and x.stride(1) == x.shape[-1] and scan_cpu.ready():
        w, b = weight.to(x.dtype).contiguous(), bias.to(x.dtype).contiguous()
        rev = [int(r) for r in reverse]
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, weight, bias))
        if out is not None and not needs_grad:
            torch.ops.ginr_conv.forward_out(x, w, b, rev, out)
            return out
        return _ConvSiluCpu.apply(x, w, b, rev)
    return conv_silu_torch(x, weight, bias, reverse)
