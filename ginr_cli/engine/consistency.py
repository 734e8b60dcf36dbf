"""Data consistency: a volume upscaled by whole factors is made to agree with its input.

The volume model learns to undo thick slicing, the mean over each slab of slices (`engine.data` makes its
training inputs so, `ginr eval` its test inputs). Read that way, an input voxel is the mean of the block
of output voxels it becomes. Every output whose block means equal the input is a reconstruction the
input allows, the truth among them; shifting each block of the model's output by its own residual (input
minus block mean) is the orthogonal projection onto them, so it never moves the output away from the
truth, in squared error, for an input made that way, and it keeps whatever detail the model added within
the blocks. Iterative back-projection (Irani and Peleg, 1991) and the data-consistency steps of learned MRI
reconstruction apply their own forward models the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def whole_factors(in_shape: Sequence[int], out_shape: Sequence[int]) -> tuple[int, ...] | None:
    """Per axis, how many output voxels each input voxel became, when every axis is a whole multiple
    (one or more) of the input; None otherwise (a block would straddle input voxels)."""
    factors = tuple(n // m for n, m in zip(out_shape, in_shape, strict=True))
    whole = all(f >= 1 and n == f * m for f, n, m in zip(factors, out_shape, in_shape, strict=True))
    return factors if whole else None


def _split(shape: Sequence[int], factors: Sequence[int]) -> list[int]:
    """`shape` with each axis split into (blocks, voxels a block)."""
    return [d for n, f in zip(shape, factors, strict=True) for d in (n // f, f)]


def block_means(values: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """The mean of each block of `factors` voxels of `values` (*spatial)."""
    return values.reshape(_split(values.shape, factors)).mean(axis=tuple(range(1, 2 * values.ndim, 2)))


def make_consistent(out: np.ndarray, source: np.ndarray, factors: Sequence[int]) -> None:
    """Shift each block of `out` (*spatial, `factors` times the shape of `source`, same units) in place so
    that its mean equals the voxel of `source` it came from."""
    if not out.flags.c_contiguous:
        raise ValueError("make_consistent needs a C-contiguous output, to change it in place")
    residual = source - block_means(out, factors)
    blocks = out.reshape(_split(out.shape, factors))
    spread = tuple(slice(None) if i % 2 == 0 else None for i in range(2 * out.ndim))
    blocks += residual.astype(out.dtype)[spread]
