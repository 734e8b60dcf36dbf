"""Grid geometry for resampling that keeps the field of view (MONAI's `scale_affine(centered=True)`).

A grid of `old` voxels per axis resampled to `new` voxels covers the same extent: the voxel size
grows by `s = old / new` and the centre of new voxel 0 moves to `(s - 1) / 2` in old voxel units, so
the corner of the field of view (voxel -0.5 on every axis) stays where it was:

    A_new = A @ S,    S = [[diag(s), (s - 1) / 2], [0, 1]]

Rotations, flips (LPS) and obliquity live in `A`'s direction cosines and are untouched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ginr_cli.errors import GinrError


def _per_axis(value: float | Sequence[float], rank: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(rank, float(arr))
    if arr.shape != (rank,):
        raise GinrError(f"{name} needs 1 or {rank} values, got {arr.size}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise GinrError(f"{name} must be positive and finite, got {tuple(arr.tolist())}")
    return arr


def fov_grid(old_shape: Sequence[int], new_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(step, offset) per axis of `new_shape` voxels over the field of view of `old_shape`: new voxel j
    sits at old voxel index offset + step * j, with step = old / new and offset = (step - 1) / 2."""
    if len(new_shape) != len(old_shape):
        raise ValueError(f"shapes {old_shape} -> {new_shape} differ in rank")
    step = np.asarray(old_shape, dtype=np.float64) / np.asarray(new_shape, dtype=np.float64)
    return step, (step - 1) / 2


def grid_affine(affine: np.ndarray, step: Sequence[float], offset: Sequence[float]) -> np.ndarray:
    """The affine of an axis-aligned grid whose voxel j is the old voxel index offset + step * j."""
    affine = np.asarray(affine, dtype=np.float64)
    step, offset = np.asarray(step, dtype=np.float64), np.asarray(offset, dtype=np.float64)
    k = len(step)
    if affine.shape != (k + 1, k + 1):
        raise ValueError(f"affine {affine.shape} does not match a rank-{k} grid")
    if np.all(step == 1) and np.all(offset == 0):
        return affine.copy()  # exact at scale 1
    S = np.diag([*step, 1.0])
    S[:k, k] = offset
    return affine @ S


def scale_affine(affine: np.ndarray, old_shape: Sequence[int], new_shape: Sequence[int]) -> np.ndarray:
    """The (k+1, k+1) affine of `old_shape` resampled to `new_shape` over the same field of view."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (len(old_shape) + 1,) * 2:
        raise ValueError(f"affine {affine.shape} does not match shapes {old_shape} -> {new_shape}")
    return grid_affine(affine, *fov_grid(old_shape, new_shape))


def scale_spacing(spacing: Sequence[float], old_shape: Sequence[int], new_shape: Sequence[int]) -> tuple:
    """Voxel size after resampling `old_shape` to `new_shape` over the same field of view."""
    s = np.asarray(old_shape, dtype=np.float64) / np.asarray(new_shape, dtype=np.float64)
    return tuple(float(v) for v in np.asarray(spacing, dtype=np.float64) * s)


def output_shape(shape: Sequence[int], scale: float | Sequence[float]) -> tuple[int, ...]:
    """`shape * scale` per axis, rounded half up, at least 1."""
    scale = _per_axis(scale, len(shape), "scale")
    return tuple(max(1, math.floor(n * f + 0.5)) for n, f in zip(shape, scale, strict=True))


def spacing_to_shape(
    shape: Sequence[int], old_spacing: float | Sequence[float], new_spacing: float | Sequence[float]
) -> tuple[int, ...]:
    """The grid that covers the same field of view with voxels of about `new_spacing`.

    The shape is rounded, so the exact new voxel size is `scale_spacing(old_spacing, shape, result)`.
    """
    old = _per_axis(old_spacing, len(shape), "spacing")
    new = _per_axis(new_spacing, len(shape), "spacing")
    return output_shape(shape, old / new)
