"""The sequence encoder: a stack of blocks, each a token mixer then an MLP, with LayerNorm and residuals.

The seed's block is BiMamba -> MLP (GELU) -> LayerNorm + residual. We use the pre-norm arrangement of the
same pieces, x + mixer(norm(x)) then x + mlp(norm(x)), which trains stably at depth. The mixer is BiMamba,
or multi-head self-attention for the Trans-INR baseline at equal width and depth.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ginr_cli.nn.attention import MultiHeadAttention
from ginr_cli.nn.config import EncoderConfig
from ginr_cli.nn.mamba import BiMamba
from ginr_cli.nn.workspace import Workspace

MLP_CHUNK = 2048  # tokens per MLP call at inference (see Block._mlp_inference)


class Block(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d = cfg.d_model
        self.norm_mixer = nn.LayerNorm(d)
        self.mixer = BiMamba(cfg) if cfg.mixer == "mamba" else MultiHeadAttention(d, cfg.n_heads)
        self.norm_mlp = nn.LayerNorm(d)
        hidden = int(cfg.mlp_ratio * d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))

    def forward(self, x: Tensor, workspace: Workspace | None = None) -> Tensor:
        """(b, l, d) -> (b, l, d); `workspace` at inference only (see workspace.py)."""
        h = self.norm_mixer(x)
        x = x + (self.mixer(h, workspace) if isinstance(self.mixer, BiMamba) else self.mixer(h))
        if workspace is None:
            return x + self.mlp(self.norm_mlp(x))
        return self._mlp_inference(x, workspace)

    def _mlp_inference(self, x: Tensor, workspace: Workspace) -> Tensor:
        """x + mlp(norm(x)), a chunk of tokens at a time, the (tokens, 4d) hidden activations written into one
        lent buffer and the GELU applied in place. Fresh hidden tensors would be new memory in every block
        (64 MB at L=16384, d=256) whose first-touch page faults cost as much as the GELU itself."""
        fc1, fc2 = self.mlp[0], self.mlp[2]
        b, l, d = x.shape
        # One buffer for every chunk (a last, short chunk takes its leading rows) and every block.
        buffer = workspace.take("mlp", (b * min(l, MLP_CHUNK), fc1.out_features), x)
        out = torch.empty_like(x)
        for start in range(0, l, MLP_CHUNK):
            part = x[:, start : start + MLP_CHUNK]
            n = b * part.shape[1]
            hidden = buffer[:n]
            torch.addmm(fc1.bias, self.norm_mlp(part).reshape(n, d), fc1.weight.t(), out=hidden)
            torch.ops.aten.gelu_(hidden)
            mixed = torch.addmm(fc2.bias, hidden, fc2.weight.t()).view_as(part)
            out[:, start : start + MLP_CHUNK] = part + mixed
        return out


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        if cfg.mixer not in ("mamba", "attention"):
            raise ValueError(f"unknown mixer {cfg.mixer!r}")
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:
        """(b, l, d) -> (b, l, d)"""
        # At inference the blocks share one workspace for their big intermediates: their memory is
        # touched once per forward instead of once per block.
        workspace = None if torch.is_grad_enabled() else Workspace()
        for block in self.blocks:
            x = block(x, workspace)
        return self.norm(x)
