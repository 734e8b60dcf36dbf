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


def fourier_features(x: Tensor, n_freqs: int) -> Tensor:
    """(..., k) -> (..., k * 2 * n_freqs): sin and cos at log-spaced frequencies pi * 2**(i/2)."""
    freqs = math.pi * 2.0 ** (torch.arange(n_freqs, device=x.device, dtype=x.dtype) / 2)  # (f,)
    angles = (x[..., None] * freqs).flatten(-2)  # (..., k * f)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
