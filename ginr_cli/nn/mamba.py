"""The Mamba selective-SSM layer and the bidirectional mixer built from two of them.

Mamba (Gu & Dao, 2023), one direction:
    x, z = in_proj(u)                     (b, l, e) each
    x = silu(causal depthwise conv(x))
    delta, B, C = x_proj(x)               input-dependent step, input and output maps
    y = selective_scan(x, delta, A, B, C, D) * silu(z)
    out = out_proj(y)

BiMamba runs one Mamba forward in time and another on the reversed sequence and averages them (the seed's
design: two Mambas with their own weights). It computes exactly that, fused: both in_projs as one GEMM,
both convs (the reverse one anti-causal, on the unflipped sequence) as one conv+SiLU call, both dt_projs as
one GEMM, one scan call over 2e channels (the reverse group run backwards in time), and both out_projs and
the average as one GEMM: no flipped copies and no per-direction concatenation of (b, e, l) tensors.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ginr_cli.nn.config import EncoderConfig
from ginr_cli.nn.conv_cpu import conv_silu
from ginr_cli.nn.scan import resolve_backend, selective_scan
from ginr_cli.nn.workspace import Workspace


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

    def forward(self, u: Tensor) -> Tensor:
        """(b, l, d) -> (b, l, d): the plain definition, one direction. BiMamba fuses two of these and is
        tested against this."""
        l = u.shape[1]
        x, z = self.in_proj(u).transpose(1, 2).chunk(2, dim=1)  # (b, e, l) each
        x = F.silu(self.conv(x)[..., :l])  # causal
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], -1)
        delta = self.dt_proj.weight @ dt.transpose(1, 2)  # (b, e, l); the bias is added in the scan
        B, C = B.transpose(1, 2), C.transpose(1, 2)  # (b, s, l)
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


class FusedWeights(NamedTuple):
    """Both directions' weights side by side, as BiMamba.forward uses them."""

    w_in: Tensor  # (4e, d)
    conv_w: Tensor  # (2e, k)
    conv_b: Tensor  # (2e,)
    w_dt: Tensor  # (2e, 2r), block-diagonal
    dt_bias: Tensor  # (2e,)
    A: Tensor  # (2e, s)
    D: Tensor  # (2e,)
    w_out: Tensor  # (d, 2e)


class BiMamba(nn.Module):
    """A forward and a reverse Mamba over the same sequence, outputs averaged; computed fused (see above)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.forward_mamba = Mamba(cfg)
        self.reverse_mamba = Mamba(cfg)
        self.backend = cfg.scan_backend
        self._fused: tuple[list, FusedWeights] | None = None  # (parameter versions, weights), see fused()

    def fused(self) -> FusedWeights:
        """The two Mambas' weights in the fused layout. While gradients are on they are rebuilt on every call
        (autograd must see the ops); at inference they are kept until a parameter changes (an in-place update
        moves its version counter, a replaced one its storage)."""
        params = list(self.parameters())
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in params)
        key = [(p, p.data_ptr(), p._version) for p in params]  # holding p keeps its identity unique
        if not grad and self._fused is not None and _same(self._fused[0], key):
            return self._fused[1]
        fwd, rev = self.forward_mamba, self.reverse_mamba
        w_fwd, w_rev = fwd.in_proj.weight.chunk(2), rev.in_proj.weight.chunk(2)  # (x, z) rows each
        weights = FusedWeights(
            w_in=torch.cat([w_fwd[0], w_rev[0], w_fwd[1], w_rev[1]]),  # rows x_fwd, x_rev, z_fwd, z_rev
            conv_w=torch.cat([fwd.conv.weight[:, 0], rev.conv.weight[:, 0]]),
            conv_b=torch.cat([fwd.conv.bias, rev.conv.bias]),
            w_dt=torch.block_diag(fwd.dt_proj.weight, rev.dt_proj.weight),  # (2e, 2r)
            dt_bias=torch.cat([fwd.dt_proj.bias, rev.dt_proj.bias]).float(),
            A=-torch.exp(torch.cat([fwd.A_log, rev.A_log]).float()),  # (2e, s)
            D=torch.cat([fwd.D, rev.D]).float(),
            # both out_projs and the average: (W_fwd y_fwd + W_rev y_rev) / 2
            w_out=torch.cat([fwd.out_proj.weight, rev.out_proj.weight], dim=1) * 0.5,  # (d, 2e)
        )
        self._fused = None if grad else (key, weights)
        return weights

    def forward(self, u: Tensor, workspace: Workspace | None = None) -> Tensor:
        """(b, l, d) -> (b, l, d). At inference, `workspace` lends the big intermediates (see workspace.py);
        it must not be given when gradients are needed."""
        fwd, rev = self.forward_mamba, self.reverse_mamba
        b, e, r, s, l = u.shape[0], fwd.d_inner, fwd.dt_rank, fwd.d_state, u.shape[1]
        both = (False, True)  # channel groups: the forward Mamba's, then the reverse one's
        w = self.fused()

        # The C++ conv and scan write into lent buffers too (float32/float64 only); the others make their own.
        compiled = resolve_backend(self.backend, u.device) == "cpp"
        writes_out = compiled and u.dtype in (torch.float32, torch.float64)

        def buffer(name: str, rows: int, used: bool = True) -> Tensor | None:
            return workspace.take(name, (b, rows, l), u) if workspace is not None and used else None

        # Both in_projs as one GEMM, channel-first (W @ u^T).
        xz = torch.bmm(w.w_in.expand(b, -1, -1), u.transpose(1, 2), out=buffer("xz", 4 * e))  # (b, 4e, l)
        # Both convs and SiLUs in one call; the reverse one anti-causal (fused in C++ on the CPU).
        x = conv_silu(
            xz[:, : 2 * e], w.conv_w, w.conv_b, both, compiled=compiled, out=buffer("x", 2 * e, writes_out)
        )  # (b, 2e, l)
        x_fwd, x_rev = x[:, :e], x[:, e:]
        dbc_fwd = torch.bmm(fwd.x_proj.weight.expand(b, -1, -1), x_fwd)  # (b, r + 2s, l)
        dbc_rev = torch.bmm(rev.x_proj.weight.expand(b, -1, -1), x_rev)
        # Both dt_projs as one GEMM with a block-diagonal weight, straight into the (b, 2e, l) layout.
        dt = torch.cat([dbc_fwd[:, :r], dbc_rev[:, :r]], 1)
        delta = torch.bmm(w.w_dt.expand(b, -1, -1), dt, out=buffer("delta", 2 * e))
        y = selective_scan(
            x,
            delta,
            w.A,
            torch.stack([dbc_fwd[:, r : r + s], dbc_rev[:, r : r + s]], 1),  # B (b, 2, s, l)
            torch.stack([dbc_fwd[:, r + s :], dbc_rev[:, r + s :]], 1),  # C (b, 2, s, l)
            w.D,
            xz[:, 2 * e :],  # z
            w.dt_bias,
            delta_softplus=True,
            reverse=both,
            backend=self.backend,
            out=buffer("y", 2 * e, writes_out),
        )  # (b, 2e, l)
        return torch.bmm(w.w_out.expand(b, -1, -1), y).transpose(1, 2)  # (b, l, d), no copy of y


def _same(a: list, b: list) -> bool:
    """The same parameters, storage and versions (see BiMamba.fused)."""
    return len(a) == len(b) and all(x[0] is y[0] and x[1:] == y[1:] for x, y in zip(a, b, strict=True))
