"""Encode files to latents and decode latents to files at any resolution, region or slice.

An image's latent has one frame for its colour and, when it has alpha, a second frame for the alpha
(run through the model as a gray image). A volume's frames are its time points (one for 3D).

What is stored is quantised (`io/latents.py`). A codec model's latent grid is quantised with one step
for every channel, set by `quality` (step 1 in the model's units at quality 3; training covers 1 to 5),
after any `refine` steps that fit it to this file (`engine/refine.py`). Other models' LP latents are
stored with 8 bits per value (each channel's largest magnitude over 127): they were not trained for a
rate, and only their fidelity counts.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ginr_cli.engine import metrics, normalize, targets
from ginr_cli.engine.infer import default_grid, encode_tiles, fit_channels, latent_render
from ginr_cli.engine.refine import OnStep, refine_latents
from ginr_cli.engine.tiling import OnTiles, OutputGrid, TileGrid, frame_progress, stitch
from ginr_cli.errors import GinrError, UsageError
from ginr_cli.io.latents import LatentFile, load_latent, read_model_name, read_source_metadata, save_latent
from ginr_cli.nn.ginr import MambaGINR

QUALITIES = (1, 2, 3, 4, 5)
DEFAULT_QUALITY = 3
# Refinement steps by default: none. With the shipped codecs it only moves a file along their own
# rate-distortion curve (the rate it optimises is the model's estimate, not the LZMA stream's), at a cost
# in time; the codec cards have the measurements.
DEFAULT_REFINE = 0


def quality_step(quality: int) -> float:
    """The quantisation step of a codec model's latents at `quality`, in the units it was trained at (where
    the step is 1, quality 3): each level up divides it by sqrt 2."""
    if quality not in QUALITIES:
        raise UsageError(f"--quality must be one of {', '.join(map(str, QUALITIES))}, not {quality}")
    return 2.0 ** ((DEFAULT_QUALITY - quality) / 2)


@dataclass
class EncodeReport:
    latent_bytes: int
    raw_bytes: int
    source_bytes: int  # the input file's size
    sites: int  # pixels or voxels (per frame)
    unit: str  # "pixel" or "voxel"
    psnr: float | None = None

    @property
    def ratio(self) -> float:
        return self.raw_bytes / max(self.latent_bytes, 1)

    @property
    def bits_per_site(self) -> float:
        return 8 * self.latent_bytes / max(self.sites, 1)

    def to_dict(self) -> dict:
        return {
            "bytes": self.latent_bytes,
            f"bits_per_{self.unit}": round(self.bits_per_site, 4),
            "raw_bytes": self.raw_bytes,
            "ratio_to_raw": round(self.ratio, 3),
            "source_bytes": self.source_bytes,
            "ratio_to_source": round(self.source_bytes / max(self.latent_bytes, 1), 3),
            "psnr": None if self.psnr is None else round(self.psnr, 3),
        }

    def __str__(self) -> str:
        text = f"latent {self.latent_bytes / 1024:.1f} KiB ({self.bits_per_site:.3f} bits a {self.unit}), "
        text += f"source file {self.source_bytes / 1024:.1f} KiB, raw {self.raw_bytes / 1024:.1f} KiB"
        text += f" ({self.ratio:.2f}x smaller)" if self.ratio >= 1 else f" ({1 / self.ratio:.2f}x larger)"
        return text + (f", PSNR at scale 1: {self.psnr:.2f} dB" if self.psnr is not None else "")


def _image_source(
    path: Path, max_pixels: int | None
) -> tuple[list[np.ndarray], dict, normalize.Normalization, int]:
    """Frames (c, h, w) in model units, the source metadata, the normalisation and the raw size in bytes."""
    from ginr_cli.io.images import DEFAULT_MAX_PIXELS, read_image

    image = read_image(path, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    meta = image.meta
    if meta.frames > 1:  # one latent holds one image: keeping the first frame alone would lose the rest
        raise GinrError(f"an animation of {meta.frames} frames; encode takes still images", path)
    frames = [normalize.IMAGE.apply(image.color).transpose(2, 0, 1)]
    if image.alpha is not None:
        frames.append(normalize.IMAGE.apply(image.alpha)[None])
    source = {
        "kind": "image",
        "shape": list(image.color.shape[:2]),
        "channels": image.color.shape[2],
        "dtype": "uint16" if meta.bit_depth == 16 else "uint8",
        "alpha": image.alpha is not None,
        "format": meta.format,
        "mode": meta.mode,
        "bit_depth": meta.bit_depth,
        "dpi": list(meta.dpi) if meta.dpi else None,
        "icc_profile": base64.b64encode(meta.icc_profile).decode() if meta.icc_profile else None,
        "name": path.name,
    }
    raw = image.color.size * meta.bit_depth // 8 + (
        0 if image.alpha is None else image.alpha.size * meta.bit_depth // 8
    )
    return frames, source, normalize.IMAGE, raw


def _volume_source(path: Path) -> tuple[list[np.ndarray], dict, normalize.Normalization, int]:
    from ginr_cli.io.volumes import read_volume, volume_metadata

    volume = read_volume(path)
    norm = normalize.for_volume(volume.data)
    frames = [norm.apply(frame)[None].astype(np.float32) for frame in volume.data]
    source = {
        "kind": volume.kind,
        "shape": list(volume.data.shape[1:]),
        "channels": 1,
        "dtype": str(volume.dtype),
        "frames": len(frames),
        "name": _source_name(path),
        **volume_metadata(volume),
    }
    raw = volume.data.size * np.dtype(volume.dtype).itemsize
    return frames, source, norm, raw


def _source_name(src) -> str:
    """The source's file name, kept in the latent: a DICOM series is decoded as NIfTI, named after it."""
    from ginr_cli.io.dicom import Series

    return src.name + ".nii.gz" if isinstance(src, Series) else Path(src).name


def _source_bytes(src) -> int:
    from ginr_cli.io.dicom import Series

    return src.bytes if isinstance(src, Series) else Path(src).stat().st_size


def encode_file(
    model: MambaGINR,
    fingerprint: str,
    device,
    src: Path,
    dst: Path,
    kind: str,
    tile: int | None = None,
    batch: int = 8,
    check: bool = False,
    max_pixels: int | None = None,
    on_tiles: OnTiles | None = None,
    quality: int = DEFAULT_QUALITY,
    refine: int = DEFAULT_REFINE,
    on_refine: OnStep | None = None,
) -> EncodeReport:
    """Encode `src` to the latent file `dst`. `refine`: a codec model's refinement steps."""
    frames, source, norm, raw = _image_source(src, max_pixels) if kind == "image" else _volume_source(src)
    shape = source["shape"]
    grid = default_grid(model, shape, tile)
    codec = model.cfg.latent.grid
    step = quality_step(quality)
    stored = []
    for i, frame in enumerate(frames):
        fitted = fit_channels(frame, model)[0]
        latents = encode_tiles(model, fitted, grid, device, batch, frame_progress(on_tiles, i, len(frames)))
        if codec:
            progress = None if on_refine is None else frame_progress(on_refine, i, len(frames))
            stored.append(
                refine_latents(model, fitted, grid, latents / step, step, refine, device, on_step=progress)
            )
        else:
            stored.append(latents)
    latents = torch.stack(stored)  # (frames, tiles, m, w)
    if codec:
        steps = torch.full((latents.shape[-1],), step)
    else:  # 8 bits a value, each channel scaled to its largest magnitude
        steps = latents.abs().amax(dim=(0, 1, 2)).clamp_min(1e-8) / 127
        latents = latents / steps
    latent = LatentFile(
        latents.round(), steps, model.cfg.name, fingerprint, source, norm.to_dict(), grid.to_dict()
    )
    save_latent(dst, latent)
    unit = "pixel" if kind == "image" else "voxel"
    report = EncodeReport(dst.stat().st_size, raw, _source_bytes(src), math.prod(shape), unit)
    if check:  # decode back at scale 1 from what was written, compare with the source
        decoded = render_frames(
            model, open_latent(dst, model, fingerprint), OutputGrid.full(shape, shape), device, batch
        )
        truth = np.concatenate([norm.invert(f).ravel() for f in frames])
        pred = np.concatenate([norm.invert(d).ravel() for d in decoded])
        data_range = 1.0 if kind == "image" else float(truth.max() - truth.min()) or 1.0
        report.psnr = metrics.psnr(pred, truth, data_range)
    return report


def render_frames(
    model: MambaGINR,
    latent: LatentFile,
    out: OutputGrid,
    device,
    batch: int = 8,
    on_tiles: OnTiles | None = None,
) -> list[np.ndarray]:
    """Each frame of a latent rendered on `out`: (c, *out.shape) in model units."""
    grid = TileGrid.from_dict(latent.tiles)
    frames = []
    for i, latents in enumerate(latent.values()):
        channels = latent.source["channels"] if i == 0 or latent.source["kind"] != "image" else 1
        step = float(latent.steps.max()) if model.cfg.latent.grid else 1.0  # a codec's one step
        render = latent_render(model, latents, grid, device, step)
        progress = frame_progress(on_tiles, i, len(latent.latents))
        values = stitch(grid, out, render, model.cfg.out_channels, batch, on_tiles=progress)
        if channels != model.cfg.out_channels:  # gray through a colour model: average back
            values = values.mean(axis=-1, keepdims=True)
        frames.append(np.moveaxis(values, -1, 0))
    return frames


def open_latent(path: Path, model: MambaGINR, fingerprint: str) -> LatentFile:
    latent = load_latent(path, fingerprint)
    grid = TileGrid.from_dict(latent.tiles)
    need = model.latent_shape(grid.tile)
    if tuple(latent.latents.shape[2:]) != need:
        raise GinrError(
            f"latents of shape (m, d) = {tuple(latent.latents.shape[2:])}, the model needs {need}", path
        )
    if latent.latents.shape[1] != len(grid):
        raise GinrError(f"{latent.latents.shape[1]} tiles of latents for a grid of {len(grid)} tiles", path)
    if len(latent.source["shape"]) != model.cfg.rank:
        raise GinrError(
            f"a {len(latent.source['shape'])}D latent cannot be decoded by a {model.cfg.rank}D model", path
        )
    return latent


def output_grid(
    shape: list[int],
    out_shape: tuple[int, ...],
    roi: list[tuple[float, float]] | None = None,
    plane: tuple[int, float] | None = None,
) -> OutputGrid:
    """The whole field of view at `out_shape`; or the box `roi` (source pixel units, per axis) at the same
    resolution; `plane` (axis, voxel index) keeps the one plane through that position on that axis."""
    if roi is None:
        out = OutputGrid.full(shape, out_shape)
    else:
        if len(roi) != len(shape):
            raise UsageError(f"--roi needs {len(shape)} ranges for this input, got {len(roi)}")
        cells = [n / o for n, o in zip(shape, out_shape, strict=True)]
        sizes = [max(1, round((hi - lo) / c)) for (lo, hi), c in zip(roi, cells, strict=True)]
        out = OutputGrid.box([lo for lo, _ in roi], [hi for _, hi in roi], sizes)
    if plane is None:
        return out
    axis, index = plane
    positions = list(out.positions)
    positions[axis] = np.array([index + 0.5])  # voxel index i has its centre at i + 0.5 in pixel units
    return OutputGrid(tuple(positions), out.cell)


def peek_source(path: Path) -> dict:
    """The source metadata of a latent, without loading its tensors."""
    return read_source_metadata(path)


def peek_model(path: Path) -> str | None:
    """The name of the model that wrote a latent, without loading its tensors."""
    return read_model_name(path)


def decode_file(
    model: MambaGINR,
    fingerprint: str,
    device,
    src: Path,
    dst: Path,
    out_shape_of,
    roi=None,
    plane=None,
    batch: int = 8,
    quality: int | None = None,
    dtype: str | None = None,
    on_tiles: OnTiles | None = None,
) -> str:
    """Render the latent `src` to `dst`. `out_shape_of(source metadata) -> output shape` applies the user's
    scale, size or spacing; `roi` (per axis (lo, hi) in source pixels) limits the render to a box and
    `plane` (axis, voxel index) to one plane. `dtype`: None keeps a volume's source dtype, or 'float32'."""
    latent = open_latent(src, model, fingerprint)
    source = latent.source
    shape = source["shape"]
    out_shape = tuple(out_shape_of(source))
    out = output_grid(shape, out_shape, roi, plane)
    channels = source.get("channels", 1) if source["kind"] == "image" else source.get("frames", 1)
    label = f"{out.shape[1]}x{out.shape[0]}" if source["kind"] == "image" else "x".join(map(str, out.shape))
    targets.check_output_fits(out.shape, channels, label)
    norm = normalize.Normalization.from_dict(latent.normalization)
    frames = [norm.invert(f) for f in render_frames(model, latent, out, device, batch, on_tiles)]
    if source["kind"] == "image":
        _write_image(dst, frames, source, out, quality)
    else:
        from ginr_cli.io.volumes import volume_from_metadata, write_volume

        volume = volume_from_metadata(source, shape, len(frames), source["dtype"])
        write_volume(dst, np.stack([f[0] for f in frames]), volume, dtype=dtype, grid=out.voxel_grid())
    return f"{'x'.join(map(str, shape))} -> {'x'.join(map(str, out.shape))}"


def _write_image(dst: Path, frames: list[np.ndarray], source: dict, out: OutputGrid, quality) -> None:
    from ginr_cli.io.images import ImageMeta, write_image

    meta = ImageMeta(
        format=source["format"],
        mode=source["mode"],
        bit_depth=source["bit_depth"],
        size=tuple(source["shape"]),
        dpi=tuple(source["dpi"]) if source.get("dpi") else None,
        icc_profile=base64.b64decode(source["icc_profile"]) if source.get("icc_profile") else None,
    )
    color = np.clip(np.moveaxis(frames[0], 0, -1), 0, 1).astype(np.float32)
    alpha = np.clip(frames[1][0], 0, 1).astype(np.float32) if source.get("alpha") else None
    scale = tuple(1.0 / c for c in out.cell)  # output pixels per source pixel, per axis (y, x)
    write_image(dst, color, alpha, meta, scale=scale, quality=quality)
