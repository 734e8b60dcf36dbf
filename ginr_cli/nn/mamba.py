"""The Mamba selective-SSM layer and the bidirectional mixer built from two of them.

Mamba (Gu & Dao, 2023), one direction:
    x, z = in_proj(u)                     (b, l, e) each
    x = silu(causal depthwise conv(x))
    delta, B, C = x_proj(x)               input-dependent step, input and output maps
    y = selective_scan(x, delta, A, B, C, D) * silu(z)
    out = out_proj(y)

BiMamba runs one Mamba forward in time and another on the reversed sequence and averages them. With the
pure-PyTorch scan the two run as one call over 2e channels, halving its per-step cost.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ginr_cli.nn.config import EncoderConfig
from ginr_cli.nn.scan import resolve_backend, selective_scan


class Mamba(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d, e, s = cfg.d_model, cfg.expand * cfg.d_model, cfg.d_state
        self.d_inner, self.d_state, self.dt_rank = e, s, math.ceil(d / 16)
        self.backend = cfg.scan_backend
        self.in_proj = nn.Linear(d, 2 * e, bias=False)
        self.conv = nn.Conv1d(e, e, cfg.d_conv, groups=e, padding=cfg.d_conv - 1)
        self.x_proj = nn.Linear(e, self.dt_rank + 2 * s, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, e)
        self.out_proj = nn.Linear(e, d, bias=False)
        # S4D-real initialisation: A = -(1, 2, ..., s) for every channel, stored as log for stability.
        self.A_log = nn.Parameter(torch.log(torch.arange(1, s + 1, dtype=torch.float32)).repeat(e, 1))
        self.D = nn.Parameter(torch.ones(e))
        self._init_dt()

    def _init_dt(self, dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        """Step sizes start log-uniform in [dt_min, dt_max], as in the Mamba reference code."""
        nn.init.uniform_(self.dt_proj.weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus

    def scan_inputs(self, u: Tensor) -> dict[str, Tensor]:
        """u (b, l, d) -> the selective scan's arguments, channel-first (b, e, l) as mamba-ssm wants."""
        l = u.shape[1]
        # Channel-first from the start: W @ u^T as one batched GEMM is (b, 2e, l), the layout the conv and
        # the scan want, without the transposed copies `matmul` or `linear` + transpose would make.
        b = u.shape[0]
        xz = torch.bmm(self.in_proj.weight.expand(b, -1, -1), u.transpose(1, 2))  # (b, 2e, l), contiguous
        x, z = xz.chunk(2, dim=1)  # (b, e, l) each
        x = F.silu(self.conv(x)[..., :l])  # (b, e, l)
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], -1)
        delta = torch.bmm(
            self.dt_proj.weight.expand(b, -1, -1), dt.transpose(1, 2)
        )  # (b, e, l); bias: in the scan
        return dict(
            u=x,
            delta=delta,
            A=-torch.exp(self.A_log.float()),  # A (e, s)
            B=B.transpose(1, 2),
            C=C.transpose(1, 2),  # (b, s, l)
            D=self.D.float(),
            z=z,  # (b, e, l)
            delta_bias=self.dt_proj.bias.float(),
        )

    def forward(self, u: Tensor) -> Tensor:
        """(b, l, d) -> (b, l, d)"""
        y = selective_scan(**self.scan_inputs(u), delta_softplus=True, backend=self.backend)  # (b, e, l)
        return self.out_proj(y.transpose(1, 2))  # (b, l, d)


class BiMamba(nn.Module):
    """A forward and a reverse Mamba over the same sequence, outputs averaged."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.forward_mamba = Mamba(cfg)
        self.reverse_mamba = Mamba(cfg)
        self.backend = cfg.scan_backend

    def forward(self, x: Tensor) -> Tensor:
        """(b, l, d) -> (b, l, d)"""
        if resolve_backend(self.backend, x.device) != "torch":  # fused kernels: one call per direction
            return (self.forward_mamba(x) + self.reverse_mamba(x.flip(1)).flip(1)) / 2
        # The pure-PyTorch scan pays per time step: run both directions as one scan over 2e channels, in
        # two groups with their own B and C, which halves its steps.
        fwd = self.forward_mamba.scan_inputs(x)
        rev = self.reverse_mamba.scan_inputs(x.flip(1))
        channel_dim = {"u": 1, "delta": 1, "z": 1, "A": 0, "D": 0, "delta_bias": 0}
        both = {k: torch.cat([fwd[k], rev[k]], dim=dim) for k, dim in channel_dim.items()}
        both |= {k: torch.stack([fwd[k], rev[k]], dim=1) for k in ("B", "C")}  # (b, 2, s, l)
        y = selective_scan(**both, delta_softplus=True, backend="torch")  # (b, 2e, l)
        y_fwd, y_rev = y.chunk(2, dim=1)  # (b, e, l) each
        out_fwd = self.forward_mamba.out_proj(y_fwd.transpose(1, 2))  # (b, l, d)
        out_rev = self.reverse_mamba.out_proj(y_rev.transpose(1, 2)).flip(1)  # (b, l, d)
        return (out_fwd + out_rev) / 2
