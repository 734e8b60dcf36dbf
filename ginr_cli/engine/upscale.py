"""Upscale one file with a model: read, normalise, render the output grid tile by tile, write atomically.

Images keep their mode, bit depth, ICC profile and (scaled) DPI; alpha is resampled on its own with
bicubic interpolation, never dropped or blended; animations (GIF, APNG, WebP) frame by frame. Volumes
keep their geometry: the output affine follows the field-of-view-preserving rule, voxel sizes are
divided by the scale; upscaled by whole factors, each block of output voxels averages to the input voxel
it came from (`consistency`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ginr_cli.engine import normalize, targets
from ginr_cli.engine.adapt import adapt as fit_to_scan
from ginr_cli.engine.consistency import make_consistent, whole_factors
from ginr_cli.engine.infer import default_grid, resample
from ginr_cli.engine.tiling import OnTiles, OutputGrid, frame_progress
from ginr_cli.errors import GinrError, UsageError
from ginr_cli.nn.ginr import MambaGINR


@dataclass(frozen=True, kw_only=True)
class Target:
    """What the user asked for; the fields that do not apply to a kind are ignored for it."""

    scale: tuple[float, ...] | None = None  # one value, or one per axis in the file's axis order
    size: tuple[int, int] | None = None  # images: (width, height)
    width: int | None = None
    height: int | None = None
    spacing: tuple[float, ...] | None = None  # volumes: target voxel size
    like: str | None = None  # volumes: a reference file whose grid to produce


@dataclass
class Result:
    output: Path
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def __str__(self) -> str:
        return f"{'x'.join(map(str, self.in_shape))} -> {'x'.join(map(str, self.out_shape))}"


def upscale_file(
    models, device, src: Path, dst: Path, target: Target, kind: str, tile=None, batch=8, **options
):
    """Upscale one file with the model for its kind (`models(kind) -> (model, fingerprint)`).

    On CUDA out-of-memory the tile batch is halved and the file retried, down to one tile at a time.
    """
    model, _ = models(kind)
    run = upscale_image if kind == "image" else upscale_volume
    while True:
        try:
            return run(model, device, src, dst, target, tile=tile, batch=batch, **options)
        except torch.cuda.OutOfMemoryError as err:
            torch.cuda.empty_cache()
            if batch == 1:
                raise GinrError(
                    "out of GPU memory even one tile at a time: use a smaller --tile or --device cpu", src
                ) from err
            batch = max(1, batch // 2)


def resize_alpha(alpha: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Alpha resampled on its own: bicubic (antialiased when shrinking), clipped to [0, 1]."""
    x = torch.from_numpy(alpha)[None, None]
    y = F.interpolate(x, size=out_hw, mode="bicubic", align_corners=False, antialias=True)
    return y[0, 0].clamp(0, 1).numpy()


def upscale_image(
    model: MambaGINR,
    device: torch.device,
    src: Path,
    dst: Path,
    target: Target,
    tile: int | None = None,
    batch: int = 8,
    max_pixels: int | None = None,
    quality: int | None = None,
    on_tiles: OnTiles | None = None,
    ensemble: bool = False,
    **_: object,  # volume options
) -> Result:
    from ginr_cli.io.images import DEFAULT_MAX_PIXELS, read_image, write_image

    if target.spacing is not None or target.like is not None:
        raise GinrError("--spacing and --like apply to volumes, and this is an image", src)
    image = read_image(src, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    if image.meta.frames > 1:
        del image
        return upscale_animation(
            model, device, src, dst, target, tile, batch, max_pixels, quality, on_tiles, ensemble
        )
    hw, channels = image.color.shape[:2], image.color.shape[2]
    out_hw = targets.image_shape(hw, target.scale, target.size, target.width, target.height)
    targets.check_output_fits(out_hw, channels, f"{out_hw[1]}x{out_hw[0]}")
    # The source in model units, (c, h, w), built a channel at a time: on a big image every full-size
    # float copy counts (see scripts/bench_memory.py), so the read colour is dropped once this exists.
    source = np.empty((channels, *hw), np.float32)
    for c in range(channels):
        source[c] = normalize.IMAGE.apply(image.color[..., c])
    alpha, meta = image.alpha, image.meta
    del image
    color = _render(model, device, source, out_hw, tile, batch, on_tiles, ensemble)
    alpha = None if alpha is None else resize_alpha(alpha, out_hw)
    write_image(dst, color, alpha, meta, quality=quality)
    return Result(dst, hw, out_hw)


def _render(model, device, source: np.ndarray, out_hw, tile, batch, on_tiles, ensemble) -> np.ndarray:
    """Source (c, h, w) in model units -> colour (out_h, out_w, c) in [0, 1] (over its flips with
    `ensemble`)."""
    hw = source.shape[1:]
    color = np.empty((*out_hw, source.shape[0]), np.float32)

    def keep(start: int, values: np.ndarray) -> None:
        color[start : start + values.shape[0]] = np.clip(normalize.IMAGE.invert(values), 0.0, 1.0)

    grid = default_grid(model, hw, tile)
    resample(model, source, OutputGrid.full(hw, out_hw), device, grid, batch, keep, on_tiles, ensemble)
    return color


def upscale_animation(
    model, device, src: Path, dst: Path, target: Target, tile, batch, max_pixels, quality, on_tiles, ensemble
) -> Result:
    """A GIF, APNG or animated WebP: each frame's full canvas upscaled (colour by the model, alpha on its
    own), written with the durations and loop count; the progress counts the tiles of all frames."""
    from ginr_cli.io.animation import animation_format, read_animation, write_animation
    from ginr_cli.io.images import DEFAULT_MAX_PIXELS

    animation_format(dst)  # a still-only output format fails before any frame is rendered
    anim = read_animation(src, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    hw, n = anim.frames[0].shape[:2], len(anim.frames)
    out_hw = targets.image_shape(hw, target.scale, target.size, target.width, target.height)
    targets.check_output_fits(out_hw, 4, f"{out_hw[1]}x{out_hw[0]}")
    out = []
    for i, frame in enumerate(anim.frames):  # uint8 results: n frames at float32 would not fit
        rgba = frame.astype(np.float32) / 255
        source = normalize.IMAGE.apply(np.ascontiguousarray(rgba[..., :3].transpose(2, 0, 1)))
        progress = None if on_tiles is None else _frame_progress(on_tiles, i, n)
        color = _render(model, device, source, out_hw, tile, batch, progress, ensemble)
        opaque = bool((frame[..., 3] == 255).all())
        alpha = np.ones(out_hw, np.float32) if opaque else resize_alpha(rgba[..., 3].copy(), out_hw)
        out.append(np.rint(np.dstack([color, alpha]) * 255).astype(np.uint8))
    write_animation(dst, out, anim.durations, anim.loop, anim.meta, quality=quality)
    return Result(dst, (n, *hw), (n, *out_hw))


def _frame_progress(on_tiles: OnTiles, frame: int, frames: int) -> OnTiles:
    label = f"  tiles of {frames} frames"
    return lambda done, total: on_tiles(frame * total + done, frames * total, label)


def like_grid(shape, affine: np.ndarray, ref: Path) -> OutputGrid:
    """The grid of the reference NIfTI `ref`, in the source's voxel units. Its axes must be parallel to
    the source's (the same orientation, any resolution and extent)."""
    import nibabel as nib

    try:
        header = nib.load(str(ref)).header
        ref_shape, ref_affine = header.get_data_shape()[:3], header.get_best_affine()
    except Exception as err:  # nibabel raises many types for foreign files
        raise UsageError(f"cannot read the --like reference: {err}", ref) from err
    to_source = np.linalg.inv(affine) @ ref_affine  # reference voxel -> source voxel
    linear = to_source[:3, :3]
    if not np.allclose(linear, np.diag(np.diag(linear)), atol=1e-6 * np.abs(linear).max()):
        raise UsageError(
            "the --like grid is rotated relative to the input; only axis-aligned grids are supported", ref
        )
    step, offset = np.diag(linear), to_source[:3, 3]
    positions = tuple(offset[i] + 0.5 + step[i] * np.arange(ref_shape[i]) for i in range(3))
    return OutputGrid(positions, tuple(abs(float(s)) for s in step))


def upscale_volume(
    model: MambaGINR,
    device: torch.device,
    src: Path,
    dst: Path,
    target: Target,
    tile: int | None = None,
    batch: int = 8,
    dtype: str | None = None,
    on_tiles: OnTiles | None = None,
    adapt: int = 0,
    ensemble: bool = False,
    consistency: bool = True,
    **_: object,  # image options
) -> Result:
    from ginr_cli.io.volumes import read_volume, write_volume

    if target.size is not None or target.width is not None or target.height is not None:
        raise GinrError("--size, --width and --height apply to images, and this is a volume", src)
    volume = read_volume(src)
    shape = volume.data.shape[1:]
    if target.like:
        out = like_grid(shape, volume.affine, Path(target.like))
        grid = out.voxel_grid()
    else:
        out_shape = targets.volume_shape(shape, target.scale, target.spacing, volume.spacing)
        out, grid = OutputGrid.full(shape, out_shape), None
    targets.check_output_fits(out.shape, volume.data.shape[0], "x".join(map(str, out.shape)))
    norm = normalize.for_volume(volume.data)
    tiles = default_grid(model, shape, tile)
    result = np.empty((volume.data.shape[0], *out.shape), np.float32)
    frames = volume.data.shape[0]
    # upscaled by whole factors onto its own grid: each block of output voxels averages to its input voxel
    factors = whole_factors(shape, out.shape) if consistency and not target.like else None
    if adapt:  # fitted to the first frame, used for all (the frames of a series share their anatomy)
        scales = [n / m for n, m in zip(out.shape, shape, strict=True)]
        progress = None if on_tiles is None else lambda done, total: on_tiles(done, total, "  adapt")
        model = fit_to_scan(model, norm.apply(volume.data[0])[None], scales, adapt, device, on_step=progress)
    for i, frame in enumerate(volume.data):
        progress = frame_progress(on_tiles, i, frames)
        source = norm.apply(frame)[None]
        values = resample(model, source, out, device, tiles, batch, on_tiles=progress, ensemble=ensemble)
        result[i] = norm.invert(values[..., 0])
        if factors:
            make_consistent(result[i], frame, factors)
    write_volume(dst, result, volume, dtype=dtype, grid=grid)
    return Result(dst, tuple(shape), out.shape)
