"""Patch tokenizer for images (b, c, h, w) and volumes (b, c, d, h, w).

Inputs whose sides are not multiples of the patch are padded at the far end of each axis (edge values
repeated). The decoder's coordinate frame is the padded grid; `to_padded_frame` maps coordinates of the
source into it, so a query never lands in the padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ginr_cli.nn.config import TokenizerConfig
from ginr_cli.nn.coords import cell_centres, fourier_features

POS_FREQS = 8


def padded_shape(shape: Sequence[int], patch: int) -> tuple[int, ...]:
    return tuple(-(-n // patch) * patch for n in shape)


def to_padded_frame(coords: Tensor, cell: Tensor, shape: Sequence[int], patch: int) -> tuple[Tensor, Tensor]:
    """Coordinates and cell sizes relative to a source of `shape` -> the padded grid's frame.

    coords (..., k), cell (..., k) in [-1, 1] units of the source; padding sits at the high end of
    each axis, so a source coordinate x maps to (x + 1) * n / p - 1 for n source and p padded cells.
    """
    ratio = torch.tensor(
        [n / p for n, p in zip(shape, padded_shape(shape, patch), strict=True)],
        device=coords.device,
        dtype=coords.dtype,
    )  # (k,)
    return (coords + 1) * ratio - 1, cell * ratio


class PatchTokenizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig, rank: int, in_channels: int, d_model: int):
        super().__init__()
        self.patch = cfg.patch_size
        conv = nn.Conv2d if rank == 2 else nn.Conv3d
        self.proj = conv(in_channels, d_model, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.pos = nn.Linear(rank * 2 * POS_FREQS, d_model) if cfg.pos_embed == "fourier" else None

    def forward(self, x: Tensor) -> Tensor:
        """(b, c, *spatial) -> tokens (b, n, d), in raster order of the patch grid."""
        spatial = x.shape[2:]
        pad = [p - n for n, p in zip(spatial, padded_shape(spatial, self.patch), strict=True)]
        if any(pad):
            # F.pad lists pads from the last axis backwards, (before, after) per axis.
            x = F.pad(x, [q for p in reversed(pad) for q in (0, p)], mode="replicate")
        tokens = self.proj(x)  # (b, d, *grid)
        grid = tokens.shape[2:]
        tokens = tokens.flatten(2).transpose(1, 2)  # (b, n, d)
        if self.pos is not None:
            centres = cell_centres(grid, device=x.device, dtype=tokens.dtype).flatten(0, -2)  # (n, k)
            tokens = tokens + self.pos(fourier_features(centres, POS_FREQS))  # (b, n, d)
        return tokens
