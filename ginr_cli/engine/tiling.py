"""Seam-free tiling for any 2D or 3D input: plan overlapping tiles, decode each tile's share of the output
grid, blend the overlaps with smooth weights, and stream finished output slabs so memory stays bounded by
a band of tiles, not by the image.

Positions are in source pixel units along each axis: pixel i covers [i, i + 1) and has its centre at
i + 0.5. A tile with origin o and extent t covers [o, o + t); its decoder frame maps that to [-1, 1].

Blending: along each axis a tile's weight rises with a smoothstep across the middle quarter of the overlap,
from o + 3*overlap/8 to o + 5*overlap/8, and falls symmetrically at its far end (no ramp at the image
border). Consecutive tiles' ramps add up to one, and every output sample with a non-zero weight lies at
least 3*overlap/8 pixels inside its tile, so a decoder that only looks near the query (interpolation) sees
the same data in every tile: no seams. Only samples with a non-zero weight are decoded, so the narrower the
ramp, the less is decoded twice; a quarter of the overlap scores as half of it did (`scripts/eval_models.py`;
the README's Performance section has the figures).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

Origin = tuple[int, ...]
# render(origins, coords, cells) -> values: for a batch of tiles, each tile's query points in its own
# [-1, 1] frame (q_i, k) and cell size (k,), return the decoded values (q_i, c) as float32 arrays.
Render = Callable[[list[Origin], list[np.ndarray], np.ndarray], list[np.ndarray]]
# on_tiles(done, total): called after each batch of tiles with the tiles finished so far and the total.
OnTiles = Callable[[int, int], None]
RAMP = 0.25  # the blending ramp's width, a fraction of the overlap, centred in it (see above)


def axis_origins(n: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along an axis of n pixels: stride tile - overlap, the last tile flush with the end."""
    if n <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((n - tile) / stride) + 1
    return [min(i * stride, n - tile) for i in range(count)]


@dataclass(frozen=True)
class TileGrid:
    shape: tuple[int, ...]  # source spatial shape
    tile: tuple[int, ...]  # tile extent per axis (the model's tile, or less where the source is smaller)
    overlap: int
    origins: tuple[tuple[int, ...], ...]  # per axis

    def __iter__(self) -> Iterator[Origin]:
        """Tile origins in raster order, axis 0 slowest."""
        return iter(itertools.product(*self.origins))

    def __len__(self) -> int:
        return math.prod(len(o) for o in self.origins)

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "tile": list(self.tile), "overlap": self.overlap}

    @classmethod
    def from_dict(cls, data: dict) -> TileGrid:
        """The grid `to_dict` wrote. One tile of the source's own shape has no overlap, whatever is stored
        (earlier versions stored the model's overlap there, even one wider than the source)."""
        one_tile = list(data["tile"]) == list(data["shape"])
        return plan_tiles(data["shape"], max(data["tile"]), 0 if one_tile else data["overlap"])


def plan_tiles(shape: Sequence[int], tile: int, overlap: int) -> TileGrid:
    """Tiles of `tile` pixels a side, clipped to the source, overlapping by `overlap` where an axis needs
    more than one. A source that fits in one tile has no overlap (0): then the tile extents are the source
    shape, however thin, and a grid is decodable from its `to_dict` alone (`from_dict`)."""
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, {tile}), got {overlap}")
    extents = tuple(min(tile, n) for n in shape)
    if extents == tuple(shape):
        overlap = 0
    origins = tuple(tuple(axis_origins(n, t, overlap)) for n, t in zip(shape, extents, strict=True))
    return TileGrid(tuple(shape), extents, overlap, origins)


@dataclass(frozen=True)
class OutputGrid:
    """Where the output samples sit: per axis, cell centres in source pixel units, and the cell size."""

    positions: tuple[np.ndarray, ...]
    cell: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(p) for p in self.positions)

    def voxel_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(step, offset) per axis: output voxel j sits at source voxel index offset + step * j (voxel
        indices have their centres at integers), what `io.geometry.grid_affine` takes."""
        step = np.array(
            [p[1] - p[0] if len(p) > 1 else c for p, c in zip(self.positions, self.cell, strict=True)]
        )
        return step, np.array([p[0] - 0.5 for p in self.positions])

    @classmethod
    def box(cls, lo: Sequence[float], hi: Sequence[float], out_shape: Sequence[int]) -> OutputGrid:
        """`out_shape` equal cells spanning [lo, hi) per axis (source pixel units)."""
        cells = tuple((h - l) / n for l, h, n in zip(lo, hi, out_shape, strict=True))
        positions = tuple(l + (np.arange(n) + 0.5) * c for l, n, c in zip(lo, out_shape, cells, strict=True))
        return cls(positions, cells)

    @classmethod
    def full(cls, shape: Sequence[int], out_shape: Sequence[int]) -> OutputGrid:
        """The whole field of view of a source of `shape`, resampled to `out_shape` cells."""
        return cls.box([0.0] * len(shape), list(shape), out_shape)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def axis_weights(x: np.ndarray, origin: int, extent: int, n: int, overlap: int) -> np.ndarray:
    """Blending weight along one axis of the tile [origin, origin + extent) at positions x."""
    w = np.ones_like(x)
    ramp = max(overlap * RAMP, 1e-9)
    inset = overlap * (1 - RAMP) / 2  # where the ramp starts, from the tile's edge
    if origin > 0:
        w *= _smoothstep((x - origin - inset) / ramp)
    if origin + extent < n:
        w *= _smoothstep((origin + extent - inset - x) / ramp)
    return w


@dataclass(frozen=True)
class _AxisShare:
    """The output samples one tile origin decodes along one axis: the index range [lo, hi), their blending
    weights and their coordinates in the tile's [-1, 1] frame, each (hi - lo,)."""

    lo: int
    hi: int
    weights: np.ndarray
    coords: np.ndarray


def _axis_shares(
    origins: Sequence[int], extent: int, n: int, overlap: int, x: np.ndarray
) -> dict[int, _AxisShare | None]:
    """Each origin's share of the output positions x along one axis (None where it has no sample). Computed
    once per axis: a tile's share is the product of its axes' shares, so planning costs O(tiles + samples)
    and holds only short 1D arrays (copies, never views of x)."""
    shares: dict[int, _AxisShare | None] = {}
    for o in origins:
        w = axis_weights(x, o, extent, n, overlap)
        nonzero = np.flatnonzero(w > 0)
        if nonzero.size == 0:
            shares[o] = None
            continue
        lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
        shares[o] = _AxisShare(lo, hi, w[lo:hi].copy(), (x[lo:hi] - o) / extent * 2 - 1)
    return shares


@dataclass(frozen=True)
class _TileShare:
    """The output samples one tile decodes: the product of its axes' shares. The tile's (q, k) coordinates
    and weights are built only when the tile is rendered."""

    origin: Origin
    axes: tuple[_AxisShare, ...]

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return [(a.lo, a.hi) for a in self.axes]

    @property
    def weights(self) -> np.ndarray:
        """(*sub_shape) float32."""
        weight = self.axes[0].weights
        for a in self.axes[1:]:
            weight = np.multiply.outer(weight, a.weights)
        return weight.astype(np.float32)

    @property
    def coords(self) -> np.ndarray:
        """(q, k) float32, axis 0 slowest."""
        mesh = np.meshgrid(*(a.coords for a in self.axes), indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1).astype(np.float32)


def _tile_shares(grid: TileGrid, out: OutputGrid) -> list[_TileShare]:
    """The shares of the tiles that decode any output sample, in raster order."""
    per_axis = [
        _axis_shares(origins, t, n, grid.overlap, x)
        for origins, t, n, x in zip(grid.origins, grid.tile, grid.shape, out.positions, strict=True)
    ]
    shares = []
    for origin in grid:
        axes = tuple(share[o] for share, o in zip(per_axis, origin, strict=True))
        if all(a is not None for a in axes):
            shares.append(_TileShare(origin, axes))
    return shares


def stitch(
    grid: TileGrid,
    out: OutputGrid,
    render: Render,
    channels: int,
    batch: int = 8,
    sink: Callable[[int, np.ndarray], None] | None = None,
    on_tiles: OnTiles | None = None,
) -> np.ndarray | None:
    """Decode `out` tile by tile and blend. Finished slabs along axis 0 go to `sink(start, values)` with
    values (rows, *out.shape[1:], c) as soon as no later tile touches them; without a sink the whole
    output (*out.shape, c) is returned. Only one band of tiles is accumulated at a time. `on_tiles` counts
    the tiles that decode any output sample.
    """
    shares = _tile_shares(grid, out)
    cells = np.array([c / t * 2 for c, t in zip(out.cell, grid.tile, strict=True)], dtype=np.float32)
    rest = out.shape[1:]
    result = None if sink is not None else np.zeros((*out.shape, channels), np.float32)

    def keep(start: int, values: np.ndarray) -> None:
        result[start : start + values.shape[0]] = values

    emit = sink or keep
    acc = np.zeros((0, *rest, channels), np.float32)  # running band of weighted sums, from row acc_lo
    wsum = np.zeros((0, *rest), np.float32)
    acc_lo = 0
    for start in range(0, len(shares), batch):
        group = shares[start : start + batch]
        values = render([s.origin for s in group], [s.coords for s in group], cells)
        for share, value in zip(group, values, strict=True):
            (lo, hi), *others = share.ranges
            if hi - acc_lo > acc.shape[0]:  # grow the band downwards
                grow = hi - acc_lo - acc.shape[0]
                acc = np.concatenate([acc, np.zeros((grow, *rest, channels), np.float32)])
                wsum = np.concatenate([wsum, np.zeros((grow, *rest), np.float32)])
            index = (slice(lo - acc_lo, hi - acc_lo), *(slice(a, b) for a, b in others))
            weights = share.weights
            sub = value.reshape(*weights.shape, channels)
            acc[index] += sub * weights[..., None]
            wsum[index] += weights
        # Rows above the next tile's first row are final: normalise, emit and drop them.
        done = shares[start + batch].ranges[0][0] if start + batch < len(shares) else acc_lo + acc.shape[0]
        if done > acc_lo:
            k = done - acc_lo
            emit(acc_lo, acc[:k] / np.maximum(wsum[:k], 1e-12)[..., None])
            acc, wsum, acc_lo = acc[k:], wsum[k:], done
        if on_tiles is not None:
            on_tiles(start + len(group), len(shares))
    return result


def frame_progress(on_tiles: OnTiles | None, frame: int, frames: int) -> OnTiles | None:
    """`on_tiles` for one of several frames tiled alike: its counts offset so that they run over all."""
    if on_tiles is None:
        return None
    return lambda done, total: on_tiles(frame * total + done, frames * total)
