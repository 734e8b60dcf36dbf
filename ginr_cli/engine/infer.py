"""Inference: encode a source tile by tile, and render any output grid from a model or from stored latents.

Sources here are normalised float32 arrays (c, *spatial) in model units; `tiling.stitch` does the
blending and streams the output, these functions supply its `render` callback.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

from ginr_cli.engine.tiling import OnTiles, OutputGrid, Render, TileGrid, plan_tiles, stitch
from ginr_cli.errors import UsageError
from ginr_cli.nn.ginr import DECODE_CHUNK, MambaGINR


def pick_device(spec: str = "auto") -> torch.device:
    """auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps. Under torchrun, `auto` and `cuda`
    mean this rank's GPU (LOCAL_RANK)."""
    if spec in ("auto", "cuda") and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0
        return torch.device("cuda", local % torch.cuda.device_count())
    if spec == "auto":
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise UsageError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {spec!r} asked for, but this machine has no CUDA device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {spec!r} asked for, but MPS is not available here")
    return device


def fit_channels(
    source: np.ndarray, model: MambaGINR
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Adapt a source's channels to the model's: a gray source runs through a colour model as three equal
    channels and the output is averaged back. Returns (source, map from model output to source channels)."""
    have, want = source.shape[0], model.cfg.in_channels
    if have == want:
        return source, lambda values: values
    if have == 1 and want == 3:
        return np.repeat(source, 3, axis=0), lambda values: values.mean(axis=-1, keepdims=True)
    raise UsageError(f"the model takes {want} channel(s); this input has {have}")


def default_grid(model: MambaGINR, shape, tile: int | None = None, overlap: int | None = None) -> TileGrid:
    """Tiles of the model's size, overlapping by tile / 8 for images (at least 4 pixels) and tile / 4 for
    volumes: the narrowest overlaps that cost the shipped models no score (README, Performance).
    A codec model's tiles do not overlap: what is stored costs bits, and refinement fits each tile's edges."""
    tile = tile or model.cfg.input_size
    if overlap is None and model.cfg.latent.grid:  # a codec's tiles do not overlap: every latent costs
        overlap = 0
    overlap = overlap if overlap is not None else max(4, tile // (8 if len(shape) == 2 else 4))
    return plan_tiles(shape, tile, min(overlap, tile - 1))


def _crop(source: np.ndarray, origin, grid: TileGrid) -> np.ndarray:
    return source[(slice(None), *(slice(o, o + t) for o, t in zip(origin, grid.tile, strict=True)))]


def _decode_each(
    model, latents, coords, cells, grid, device, tiles=None, field=None, step: float = 1.0
) -> list[np.ndarray]:
    """Decode each tile's points; with the tiles themselves (and their local feature field, where the model
    has one), the decoder refines their interpolation. Tiles with as many points (all but the last row and
    column, usually) are decoded together: one call for many tiles, as many points a call as for one."""
    cell = torch.from_numpy(cells).to(device)
    values: list[np.ndarray | None] = [None] * len(coords)
    by_count: dict[int, list[int]] = {}
    for i, c in enumerate(coords):
        by_count.setdefault(len(c), []).append(i)
    for same in by_count.values():
        index = torch.tensor(same, device=device)
        points = torch.from_numpy(np.stack([coords[i] for i in same])).to(device)  # (g, q, k)
        base = None if tiles is None else model.base(tiles[index], points)  # (g, q, f)
        near = None if field is None else field[index]  # (g, *grid, f)
        chunk = max(1, DECODE_CHUNK // len(same))
        out = model.decode(
            latents[index], points, cell, shape=grid.tile, base=base, field=near, chunk_size=chunk, step=step
        )
        for i, v in zip(same, out.float().cpu().numpy(), strict=True):
            values[i] = v
    return values


def flip_sets(rank: int) -> list[tuple[int, ...]]:
    """Every subset of the spatial axes: the 4 flips of an image, the 8 of a volume."""
    return [tuple(a for a in range(rank) if mask >> a & 1) for mask in range(2**rank)]


def model_render(
    model: MambaGINR, source: np.ndarray, grid: TileGrid, device: torch.device, ensemble: bool = False
) -> Render:
    """Render callback that encodes each batch of tiles from `source` (c, *spatial), then decodes them.
    With `ensemble`, each tile is also rendered flipped along every subset of its axes, its query points
    mirrored with it (a tile's frame is symmetric about 0, so each value lands where it belongs), and the
    outputs are averaged: the self-ensemble of EDSR+ (Lim et al. 2017), tile by tile so that streaming
    still works."""
    flips = flip_sets(len(grid.tile)) if ensemble else [()]

    def render(origins, coords, cells):
        tiles = torch.from_numpy(np.stack([_crop(source, o, grid) for o in origins])).to(device)
        total = None
        for axes in flips:
            sign = np.array([-1.0 if a in axes else 1.0 for a in range(len(grid.tile))], dtype=np.float32)
            flipped = tiles.flip([2 + a for a in axes]) if axes else tiles
            mirrored = [c * sign for c in coords]
            with torch.inference_mode():
                latents, field = model.encode_with_features(flipped)  # (b, m, d), (b, *grid, f) or None
                out = _decode_each(model, latents, mirrored, cells, grid, device, flipped, field)
            total = out if total is None else [t + o for t, o in zip(total, out, strict=True)]
        return total if len(flips) == 1 else [t / len(flips) for t in total]

    return render


def latent_render(
    model: MambaGINR, latents: torch.Tensor, grid: TileGrid, device: torch.device, step: float = 1.0
) -> Render:
    """Render callback that decodes stored latents (tiles, m, d), in the grid's raster order; `step`: a
    codec model's quantisation step."""
    index = {origin: i for i, origin in enumerate(grid)}

    def render(origins, coords, cells):
        batch = latents[[index[o] for o in origins]].to(device)
        with torch.inference_mode():
            return _decode_each(model, batch, coords, cells, grid, device, step=step)

    return render


def encode_tiles(
    model: MambaGINR,
    source: np.ndarray,
    grid: TileGrid,
    device: torch.device,
    batch: int = 8,
    on_tiles: OnTiles | None = None,
) -> torch.Tensor:
    """Latents of every tile of `source` (c, *spatial), in the grid's raster order: (tiles, m, d) on CPU."""
    origins = list(grid)
    out = []
    with torch.inference_mode():
        for start in range(0, len(origins), batch):
            tiles = np.stack([_crop(source, o, grid) for o in origins[start : start + batch]])
            out.append(model.encode(torch.from_numpy(tiles).to(device)).float().cpu())
            if on_tiles is not None:
                on_tiles(start + len(tiles), len(origins))
    return torch.cat(out)


def resample(
    model: MambaGINR,
    source: np.ndarray,
    out: OutputGrid,
    device: torch.device,
    grid: TileGrid | None = None,
    batch: int = 8,
    sink: Callable[[int, np.ndarray], None] | None = None,
    on_tiles: OnTiles | None = None,
    ensemble: bool = False,
) -> np.ndarray | None:
    """Render `out` from `source` (c, *spatial, model units) with the model, tile by tile (averaged over
    the flips of each tile with `ensemble`, see `model_render`).

    Returns (*out.shape, c) in model units, or streams slabs to `sink` (see `tiling.stitch`).
    """
    fitted, back = fit_channels(source, model)
    grid = grid or default_grid(model, source.shape[1:])
    render = model_render(model, np.ascontiguousarray(fitted, dtype=np.float32), grid, device, ensemble)
    if sink is None:
        return back(stitch(grid, out, render, model.cfg.out_channels, batch, on_tiles=on_tiles))
    stitch(grid, out, render, model.cfg.out_channels, batch, lambda s, v: sink(s, back(v)), on_tiles)
    return None
