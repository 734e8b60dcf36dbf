"""The continuous decoder (hyponet): query coordinates cross-attend to the LP latents, then an MLP.

A query is embedded from Fourier features of its coordinates and the log of the target cell size (so the
decoder knows the output resolution, as LIIF's cell decoding does), attends to the m LP latents in a few
pre-norm cross-attention layers, and an MLP maps the result to the output channels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ginr_cli.nn.attention import MultiHeadAttention
from ginr_cli.nn.config import HyponetConfig
from ginr_cli.nn.coords import fourier_features


class CrossAttentionLayer(nn.Module):
    def __init__(self, d_hidden: int, d_latent: int, n_heads: int):
        super().__init__()
        self.norm_attn = nn.LayerNorm(d_hidden)
        self.attn = MultiHeadAttention(d_hidden, n_heads, d_context=d_latent)
        self.norm_mlp = nn.LayerNorm(d_hidden)
        self.mlp = nn.Sequential(
            nn.Linear(d_hidden, 2 * d_hidden), nn.GELU(), nn.Linear(2 * d_hidden, d_hidden)
        )

    def forward(self, h: Tensor, latents: Tensor) -> Tensor:
        """h (b, q, d_hidden), latents (b, m, d_latent) -> (b, q, d_hidden)"""
        h = h + self.attn(self.norm_attn(h), latents)
        return h + self.mlp(self.norm_mlp(h))


class Hyponet(nn.Module):
    def __init__(self, cfg: HyponetConfig, rank: int, d_latent: int, out_channels: int):
        super().__init__()
        self.n_freqs = cfg.n_freqs
        self.embed = nn.Linear(rank * 2 * cfg.n_freqs + rank, cfg.d_hidden)
        self.latent_norm = nn.LayerNorm(d_latent)
        self.layers = nn.ModuleList(
            CrossAttentionLayer(cfg.d_hidden, d_latent, cfg.n_heads) for _ in range(cfg.n_attn_layers)
        )
        mlp: list[nn.Module] = [nn.LayerNorm(cfg.d_hidden)]
        for _ in range(cfg.n_mlp_layers - 1):
            mlp += [nn.Linear(cfg.d_hidden, cfg.d_hidden), nn.GELU()]
        self.mlp = nn.Sequential(*mlp, nn.Linear(cfg.d_hidden, out_channels))

    def forward(self, coords: Tensor, cell: Tensor, latents: Tensor) -> Tensor:
        """coords (b, q, k) in [-1, 1], cell (b, q, k) cell sides, latents (b, m, d) -> values (b, q, c)"""
        features = torch.cat([fourier_features(coords, self.n_freqs), torch.log2(cell)], dim=-1)  # (b, q, f)
        h = self.embed(features)  # (b, q, d_hidden)
        latents = self.latent_norm(latents)  # (b, m, d)
        for layer in self.layers:
            h = layer(h, latents)  # (b, q, d_hidden)
        return self.mlp(h)  # (b, q, c)
