"""Coordinates: cell centres in [-1, 1] (align_corners=False, LIIF's `make_coord`), and Fourier features."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
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

    Images: bicubic (grid_sample's, a = -0.75). Volumes: cubic B-spline interpolation (scipy's `order=3`;
    grid_sample has no 3D cubic mode). Edges clamped.
    """
    b, q, k = coords.shape
    if k == 3:
        return _cubic_bspline(x, coords)
    grid = coords.flip(-1).view(b, *([1] * (k - 1)), q, k).to(x.dtype)  # grid_sample wants x first
    out = F.grid_sample(x, grid, mode="bicubic", padding_mode="border", align_corners=False)
    return out.reshape(b, x.shape[1], q).transpose(1, 2)  # (b, q, c)


# The B-spline prefilter, 1 / (z^-1 + 4 + z) * 6, as its two-sided impulse response sqrt(3) * pole^|n|,
# truncated where it has fallen below 1e-5.
_POLE = math.sqrt(3.0) - 2.0
_PREFILTER = [math.sqrt(3.0) * _POLE ** abs(n) for n in range(-9, 10)]


def bspline_coefficients(x: Tensor) -> Tensor:
    """x (b, c, *spatial) -> the cubic B-spline coefficients that interpolate it, the signal mirrored about
    its edges (half-sample symmetric: scipy's mode='reflect', alias 'grid-mirror'; any size, even 1)."""
    taps = x.new_tensor(_PREFILTER).view(1, 1, -1)
    r = len(_PREFILTER) // 2
    for axis in range(2, x.dim()):
        n = x.shape[axis]
        period = torch.arange(-r, n + r, device=x.device) % (2 * n)
        mirrored = x.index_select(axis, torch.where(period < n, period, 2 * n - 1 - period))
        rows = mirrored.movedim(axis, -1)  # (..., n + 2r)
        filtered = F.conv1d(rows.reshape(-1, 1, n + 2 * r), taps)  # (rows, 1, n)
        x = filtered.view(*rows.shape[:-1], n).movedim(-1, axis)
    return x


def bspline_weights(t: Tensor) -> Tensor:
    """Cubic B-spline weights of the 4 taps around fractional offset t in [0, 1): (..., 4)."""
    u = 1 - t
    return torch.stack([u**3, 3 * t**3 - 6 * t**2 + 4, 3 * u**3 - 6 * u**2 + 4, t**3], dim=-1) / 6


def _cubic_bspline(x: Tensor, coords: Tensor) -> Tensor:
    b, c = x.shape[:2]
    q = coords.shape[1]
    feats = neighbourhood(bspline_coefficients(x), coords, 4)  # (b, q, c * 64 + 3)
    values, frac = feats[..., : c * 64].view(b, q, c, 4, 4, 4), feats[..., c * 64 :]
    w = bspline_weights(frac)  # (b, q, 3, 4)
    return torch.einsum("bqcijk,bqi,bqj,bqk->bqc", values, w[:, :, 0], w[:, :, 1], w[:, :, 2])


def neighbourhood(x: Tensor, coords: Tensor, support: int) -> Tensor:
    """The `support`^k input cells around each query, and where the query sits among them.

    x (b, c, *spatial), coords (b, q, k) in [-1, 1] -> (b, q, c * support^k + k): the cell values (edges
    clamped), then the query's fractional offset from the cell centre below it, in [0, 1) per axis. With
    support 4 these are exactly the cells (bi/tri)cubic interpolation weighs.
    """
    spatial = x.shape[2:]
    pos = (coords + 1) / 2 * coords.new_tensor(spatial) - 0.5  # (b, q, k), cell centres at integers
    below = pos.floor()
    first = below.long() - (support // 2 - 1)  # (b, q, k): the first cell of each query's window
    # Two ways to the same cells: look each one up, or tabulate every window of x once and look up one row
    # per query. The table pays off where queries outnumber windows (upscaling), not in training (1024
    # points a tile); the timings are in the README's Performance section.
    windows = math.prod(n + support - 1 for n in spatial)
    lookup = _cells_by_window if coords.shape[1] >= windows else _cells_by_index
    values = lookup(x, first, support)  # (b, q, c * s^k)
    return torch.cat([values, (pos - below).to(x.dtype)], dim=-1)


def _cells_by_index(x: Tensor, first: Tensor, s: int) -> Tensor:
    """x (b, c, *spatial), first cells (b, q, k) -> s^k cells from each, edges clamped: (b, q, c * s^k)."""
    b, c = x.shape[:2]
    spatial = x.shape[2:]
    q, k = first.shape[1:]
    steps = torch.arange(s, device=x.device)
    # Row-major index into the flattened grid, built axis by axis from small per-axis (b, q, s) indices
    # broadcast together, so the only tensor of size q * s^k is the index itself.
    flat = torch.zeros_like(first[:, :, 0])  # (b, q)
    for axis in range(k):
        along = (first[:, :, axis, None] + steps).clamp(0, spatial[axis] - 1)  # (b, q, s)
        flat = flat[..., None] * spatial[axis] + along.view(b, q, *([1] * axis), s)  # (b, q, s, ...)
    flat = flat.reshape(b, q, -1)  # (b, q, s^k)
    values = x.flatten(2).gather(2, flat.view(b, 1, -1).expand(b, c, -1))  # (b, c, q * s^k)
    return values.view(b, c, q, -1).permute(0, 2, 1, 3).reshape(b, q, -1)  # (b, q, c * s^k)


def _cells_by_window(x: Tensor, first: Tensor, s: int) -> Tensor:
    """The same as _cells_by_index, from a table of every window of x: (b, windows, c * s^k)."""
    b, c = x.shape[:2]
    k = first.shape[-1]
    table = F.pad(x, [s - 1, s - 1] * k, mode="replicate")  # edges clamped
    for axis in range(k):
        table = table.unfold(2 + axis, s, 1)  # (b, c, *(n + s - 1), s, ..., s)
    counts = table.shape[2 : 2 + k]
    table = table.movedim(1, 1 + k).reshape(b, -1, c * s**k)
    # Window starts run from s - 1 cells before the edge; clamping a start to them changes no value (past
    # the edge, every cell is the edge).
    row = torch.zeros_like(first[..., 0])  # (b, q), row-major over the window starts
    for axis in range(k):
        row = row * counts[axis] + (first[..., axis] + s - 1).clamp(0, counts[axis] - 1)
    return table[torch.arange(b, device=x.device)[:, None], row]  # (b, q, c * s^k)


def fourier_features(x: Tensor, n_freqs: int) -> Tensor:
    """(..., k) -> (..., k * 2 * n_freqs): sin and cos at log-spaced frequencies pi * 2**(i/2)."""
    freqs = math.pi * 2.0 ** (torch.arange(n_freqs, device=x.device, dtype=x.dtype) / 2)  # (f,)
    angles = (x[..., None] * freqs).flatten(-2)  # (..., k * f)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
