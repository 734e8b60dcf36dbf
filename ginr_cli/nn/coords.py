"""Coordinates: cell centres in [-1, 1] (align_corners=False, LIIF's `make_coord`), and Fourier features."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def cell_centres(shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
    """Centres of a grid of `shape` cells spanning [-1, 1] per axis: (*shape, k)."""
    axes = [(torch.arange(n, device=device, dtype=dtype) * 2 + 1) / n - 1 for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def axis_centres(n: int, lo: float = -1.0, hi: float = 1.0, device=None, dtype=torch.float32) -> Tensor:
    """Centres of `n` equal cells spanning [lo, hi]: (n,)."""
    return lo + (torch.arange(n, device=device, dtype=dtype) + 0.5) * ((hi - lo) / n)


def cell_size(shape: Sequence[int], device=None, dtype=torch.float32) -> Tensor:
    """The side of one cell of a grid of `shape` in [-1, 1] units, per axis: (k,)."""
    return torch.tensor([2.0 / n for n in shape], device=device, dtype=dtype)


def interpolate_at(x: Tensor, coords: Tensor) -> Tensor:
    """Sample x (b, c, *spatial) at coords (b, q, k) in [-1, 1] (axis order): (b, q, c).

    Bicubic for images, trilinear for volumes (grid_sample has no tricubic), edges clamped.
    """
    b, q, k = coords.shape
    grid = coords.flip(-1).view(b, *([1] * (k - 1)), q, k).to(x.dtype)  # grid_sample wants x first
    mode = "bicubic" if k == 2 else "bilinear"
    out = torch.nn.functional.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)
    return out.reshape(b, x.shape[1], q).transpose(1, 2)  # (b, q, c)


def fourier_features(x: Tensor, n_freqs: int) -> Tensor:
    """(..., k) -> (..., k * 2 * n_freqs): sin and cos at log-spaced frequencies pi * 2**(i/2)."""
    freqs = math.pi * 2.0 ** (torch.arange(n_freqs, device=x.device, dtype=x.dtype) / 2)  # (f,)
    angles = (x[..., None] * freqs).flatten(-2)  # (..., k * f)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
