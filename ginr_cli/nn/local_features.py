"""Learned local features (LIIF-style): a convolutional stem before tokenisation, and each query's reading of
the encoder's outputs around it.

The encoder's output for every patch token is kept as a feature grid over the input. A query reads the 2^k
grid cells around it: their features concatenated, mapped by one linear layer to the decoder's width, plus
its offset from the lower corner in grid cells. A linear map of a concatenation is the sum of one map per
block, so the grid is projected once per tile, one (d -> d_hidden) map per corner, and a query only gathers
and adds 2^k rows: its cost does not grow with d or with the number of tokens.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(x))), 3x3 (3x3x3) convolutions, edges replicated: EDSR's block."""

    def __init__(self, rank: int, width: int):
        super().__init__()
        conv = nn.Conv2d if rank == 2 else nn.Conv3d
        self.body = nn.Sequential(
            conv(width, width, 3, padding=1, padding_mode="replicate"),
            nn.ReLU(inplace=True),
            conv(width, width, 3, padding=1, padding_mode="replicate"),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ConvStem(nn.Module):
    """(b, c, *spatial) -> (b, width, *spatial): a 3x3 convolution, then residual blocks. It gives every
    token a receptive field of a few pixels before the encoder mixes them across the tile."""

    def __init__(self, rank: int, in_channels: int, width: int, blocks: int):
        super().__init__()
        conv = nn.Conv2d if rank == 2 else nn.Conv3d
        self.head = conv(in_channels, width, 3, padding=1, padding_mode="replicate")
        self.blocks = nn.Sequential(*(ResidualBlock(rank, width) for _ in range(blocks)))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.head(x))


class LocalReader(nn.Module):
    """Projects a tile's token outputs once, then reads them at query points."""

    def __init__(self, rank: int, d_model: int, d_hidden: int):
        super().__init__()
        self.rank = rank
        self.corners = 2**rank
        self.proj = nn.Linear(d_model, self.corners * d_hidden)  # one (d -> d_hidden) block per corner
        self.offset = nn.Linear(rank, d_hidden, bias=False)
        # The corner offsets, row-major: corner j adds offsets[j] cells to the lower corner.
        self.register_buffer(
            "offsets", torch.tensor(list(itertools.product((0, 1), repeat=rank))), persistent=False
        )
        self._grids: dict[tuple, Tensor] = {}

    def _sizes(self, grid: tuple[int, ...], like: Tensor) -> Tensor:
        """The grid's sides as a tensor on `like`'s device, made once per grid: no host-to-device copy
        in every call."""
        key = (grid, like.device, like.dtype)
        if key not in self._grids:
            self._grids[key] = like.new_tensor(grid)
        return self._grids[key]

    def project(self, tokens: Tensor, grid: tuple[int, ...]) -> Tensor:
        """Token outputs (b, n, d) in raster order of `grid` -> the field (b, *grid, 2^k * d_hidden)."""
        return self.proj(tokens).view(tokens.shape[0], *grid, -1)

    def forward(self, field: Tensor, coords: Tensor) -> Tensor:
        """field (b, *grid, 2^k * h), coords (b, q, k) in the grid's [-1, 1] frame -> (b, q, h)."""
        b, q, k = coords.shape
        grid = field.shape[1:-1]
        h = field.shape[-1] // self.corners
        size = self._sizes(grid, coords)  # (k,)
        pos = (coords + 1) / 2 * size - 0.5  # (b, q, k): cell centres at integers
        below = pos.floor()
        cells = (below.long()[:, :, None] + self.offsets).clamp_min(0)  # (b, q, 2^k, k)
        cells = torch.minimum(cells, size.long() - 1)  # edges clamped
        flat = torch.zeros_like(cells[..., 0])  # (b, q, 2^k): row-major cell index
        for axis in range(k):
            flat = flat * grid[axis] + cells[..., axis]
        n = field[0].numel() // h  # rows of one tile's table: cells * 2^k
        rows = flat * self.corners + torch.arange(self.corners, device=flat.device)  # corner j's block
        rows = rows + torch.arange(b, device=flat.device)[:, None, None] * n  # (b, q, 2^k) in all tiles
        # Gather and sum in one op over the flattened tables (an embedding bag of 2^k rows per query):
        # several times faster than indexing (b, rows), and no (b, q, 2^k, h) tensor in between.
        local = F.embedding_bag(rows.view(-1, self.corners), field.reshape(-1, h), mode="sum").view(b, q, h)
        return local + self.offset((pos - below).to(field.dtype))  # (b, q, h)
