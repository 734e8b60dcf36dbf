"""The continuous decoder (hyponet): query coordinates cross-attend to the LP latents, then an MLP.

A query is embedded from Fourier features of its coordinates and the log of the target cell size (so the
decoder knows the output resolution, as LIIF's cell decoding does), attends to the m LP latents in a few
pre-norm cross-attention layers, and an MLP maps the result to the output channels.

With `use_base`, a query may also carry a base: the input interpolated there, followed by the input
cells around it and the query's offset among them (see `MambaGINR.base`). The base is an input feature
and the output is the interpolated value + a correction, so the decoder can learn a sharper, adaptive
interpolation from the neighbourhood while the LPs bring the context. The neighbourhood is seen, and the
correction predicted, in units of the neighbourhood's spread (`local_contrast`): without that, the small
differences that matter drown in the absolute values, and learning crawls. A flag feature tells the decoder
whether a base was given; without one it predicts the values from the latents alone. The last layer
starts at zero, so an untrained decoder returns the interpolation.

A model with learned local features (`local_features.py`) gives each query its reading of the feature grid
too, `local` (b, q, d_hidden), added to the query's embedding; it comes with the base (the input at hand)
and is absent when decoding stored latents.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ginr_cli.nn.attention import MultiHeadAttention
from ginr_cli.nn.config import HyponetConfig
from ginr_cli.nn.coords import fourier_features

CONTRAST_FLOOR = 1e-3  # in model units (values span 2): below it, a neighbourhood counts as flat


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
    def __init__(
        self, cfg: HyponetConfig, rank: int, d_latent: int, out_channels: int, base_features: int = 0
    ):
        super().__init__()
        self.n_freqs = cfg.n_freqs
        self.out_channels = out_channels
        self.use_base = cfg.use_base
        self.rank = rank
        self.base_features = base_features if cfg.use_base else 0  # interpolated value + neighbourhood
        self.embed = nn.Linear(
            rank * 2 * cfg.n_freqs + rank + self.base_features + cfg.use_base, cfg.d_hidden
        )
        self.latent_norm = nn.LayerNorm(d_latent) if cfg.n_attn_layers else None  # none to attend to
        self.layers = nn.ModuleList(
            CrossAttentionLayer(cfg.d_hidden, d_latent, cfg.n_heads) for _ in range(cfg.n_attn_layers)
        )
        mlp: list[nn.Module] = [nn.LayerNorm(cfg.d_hidden)]
        for _ in range(cfg.n_mlp_layers - 1):
            mlp += [nn.Linear(cfg.d_hidden, cfg.d_hidden), nn.GELU()]
        self.mlp = nn.Sequential(*mlp, nn.Linear(cfg.d_hidden, out_channels))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(
        self,
        coords: Tensor,
        cell: Tensor,
        latents: Tensor,
        base: Tensor | None = None,
        local: Tensor | None = None,
    ) -> Tensor:
        """coords (b, q, k) in [-1, 1], cell (b, q, k) cell sides, latents (b, m, d),
        base (b, q, f) or None, its first c features the interpolated values,
        local (b, q, d_hidden) or None: the query's local features -> values (b, q, c)"""
        features = [fourier_features(coords, self.n_freqs), torch.log2(cell)]  # (b, q, f) each
        if self.use_base:
            given = base is not None
            if given:
                base_in, spread = self.local_contrast(base)  # (b, q, f), (b, q, c)
            else:
                base_in = coords.new_zeros(*coords.shape[:2], self.base_features)
            features += [base_in, coords.new_full((*coords.shape[:2], 1), float(given))]
        elif base is not None:
            raise ValueError("this decoder was built without use_base; it takes no base")
        h = self.embed(torch.cat(features, dim=-1))  # (b, q, d_hidden)
        if local is not None:
            h = h + local  # (b, q, d_hidden)
        if self.latent_norm is not None:
            latents = self.latent_norm(latents)  # (b, m, d)
        for layer in self.layers:
            h = layer(h, latents)  # (b, q, d_hidden)
        out = self.mlp(h)  # (b, q, c)
        return out if base is None else base[..., : self.out_channels] + spread * out

    def local_contrast(self, base: Tensor) -> tuple[Tensor, Tensor]:
        """The base with its neighbourhood as differences from the interpolated value in units of the
        neighbourhood's spread, and that spread (b, q, c): the correction is predicted in those units, so
        edges and textures of any contrast look alike to the decoder and flat regions stay flat."""
        c = self.out_channels
        value, rest = base[..., :c], base[..., c:]
        n = (rest.shape[-1] - self.rank) // c  # cells per channel
        near = rest[..., : c * n].unflatten(-1, (c, n))  # (b, q, c, n)
        # The sample standard deviation, written out: torch.std over these short rows is several times slower
        # (README, Performance).
        centred = near - near.mean(dim=-1, keepdim=True)
        spread = (centred.square().sum(dim=-1) / (n - 1)).sqrt() + CONTRAST_FLOOR  # (b, q, c)
        shape = (near - value[..., None]) / spread[..., None]
        return torch.cat([value, shape.flatten(-2), rest[..., c * n :]], dim=-1), spread
