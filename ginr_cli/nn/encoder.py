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

MLP_CHUNK = 2048  # tokens per MLP call at inference (see Block.forward)


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
        if torch.is_grad_enabled() or x.shape[1] <= MLP_CHUNK:
            return x + self.mlp(self.norm_mlp(x))
        # Inference on a long sequence: the token-wise MLP a chunk of tokens at a time. Its (b, l, 4d)
        # hidden tensors would each be fresh memory (64 MB at L=16384, d=256), and first-touch page faults
        # cost as much as the GELU itself; chunks are reused by the allocator.
        out = torch.empty_like(x)
        for start in range(0, x.shape[1], MLP_CHUNK):
            part = x[:, start : start + MLP_CHUNK]
            out[:, start : start + MLP_CHUNK] = part + self.mlp(self.norm_mlp(part))
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
