"""The Mamba selective-SSM layer and the bidirectional mixer built from two of them.

Mamba (Gu & Dao, 2023), one direction:
    x, z = in_proj(u)                     (b, l, e) each
    x = silu(causal depthwise conv(x))
    delta, B, C = x_proj(x)               input-dependent step, input and output maps
    y = selective_scan(x, delta, A, B, C, D) * silu(z)
    out = out_proj(y)

BiMamba runs one Mamba forward in time and another on the reversed sequence and averages them (the seed's
design: two Mambas with their own weights). It computes exactly that, fused: both in_projs as one GEMM,
the reverse Mamba's conv and scan run backwards in time on the unflipped sequence (anti-causal conv, a
reversed scan group), one scan call over 2e channels, and both out_projs and the average as one GEMM.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ginr_cli.nn.config import EncoderConfig
from ginr_cli.nn.scan import selective_scan


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

    def mix(self, x: Tensor, reverse: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x (b, e, l), in_proj's x half -> the scan's u, delta (b, e, l) and B, C (b, s, l).

        The conv is causal in the scan's direction: with `reverse`, it looks at the later positions of the
        unflipped sequence, which is this Mamba's causal conv applied to the flipped sequence, flipped back.
        """
        l, k = x.shape[-1], self.conv.kernel_size[0]
        if reverse:
            x = F.conv1d(x, self.conv.weight.flip(-1), self.conv.bias, padding=k - 1, groups=self.d_inner)
            x = x[..., k - 1 :]
        else:
            x = self.conv(x)[..., :l]
        x = F.silu(x)
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], -1)
        delta = torch.bmm(self.dt_proj.weight.expand(x.shape[0], -1, -1), dt.transpose(1, 2))  # bias: in scan
        return x, delta, B.transpose(1, 2), C.transpose(1, 2)

    def forward(self, u: Tensor) -> Tensor:
        """(b, l, d) -> (b, l, d): the plain definition, one direction (BiMamba fuses two of these)."""
        xz = self.in_proj(u).transpose(1, 2)  # (b, 2e, l)
        x, z = xz.chunk(2, dim=1)
        x, delta, B, C = self.mix(x)
        y = selective_scan(
            x,
            delta,
            -torch.exp(self.A_log.float()),
            B,
            C,
            self.D.float(),
            z,
            self.dt_proj.bias.float(),
            delta_softplus=True,
            backend=self.backend,
        )  # (b, e, l)
        return self.out_proj(y.transpose(1, 2))


class BiMamba(nn.Module):
    """A forward and a reverse Mamba over the same sequence, outputs averaged; computed fused (see above)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.forward_mamba = Mamba(cfg)
        self.reverse_mamba = Mamba(cfg)
        self.backend = cfg.scan_backend

    def forward(self, u: Tensor) -> Tensor:
        """(b, l, d) -> (b, l, d)"""
        fwd, rev = self.forward_mamba, self.reverse_mamba
        b, e = u.shape[0], fwd.d_inner
        # Both in_projs as one GEMM, channel-first (W @ u^T): rows x_fwd, x_rev, z_fwd, z_rev.
        w_in = torch.cat(
            [fwd.in_proj.weight[:e], rev.in_proj.weight[:e], fwd.in_proj.weight[e:], rev.in_proj.weight[e:]]
        )
        xz = torch.bmm(w_in.expand(b, -1, -1), u.transpose(1, 2))  # (b, 4e, l)
        x_fwd, x_rev, z = xz[:, :e], xz[:, e : 2 * e], xz[:, 2 * e :]
        x_fwd, delta_fwd, B_fwd, C_fwd = fwd.mix(x_fwd)
        x_rev, delta_rev, B_rev, C_rev = rev.mix(x_rev, reverse=True)
        y = selective_scan(
            torch.cat([x_fwd, x_rev], 1),
            torch.cat([delta_fwd, delta_rev], 1),
            -torch.exp(torch.cat([fwd.A_log, rev.A_log]).float()),  # (2e, s)
            torch.stack([B_fwd, B_rev], 1),  # (b, 2, s, l): one group per direction
            torch.stack([C_fwd, C_rev], 1),
            torch.cat([fwd.D, rev.D]).float(),
            z,
            torch.cat([fwd.dt_proj.bias, rev.dt_proj.bias]).float(),
            delta_softplus=True,
            reverse=(False, True),
            backend=self.backend,
        )  # (b, 2e, l)
        # Both out_projs and the average as one GEMM: (W_fwd y_fwd + W_rev y_rev) / 2.
        w_out = torch.cat([fwd.out_proj.weight, rev.out_proj.weight], dim=1) * 0.5  # (d, 2e)
        return torch.matmul(y.transpose(1, 2), w_out.t())  # (b, l, d)
