"""Animations in and out: GIF, APNG and animated WebP, frame by frame.

- Read: every frame as the full canvas a viewer shows at that moment, RGBA uint8: Pillow composites each
  frame over the ones before, following its disposal (GIF: keep, restore to background, restore to
  previous; APNG: dispose and blend ops). Durations (ms, per frame), loop count and ICC profile are kept.
- Write: full canvases again, so the source's disposal methods are not copied but their result is: each
  frame renders exactly the canvas it came from. GIF: a shared palette (`io.palette`), disposal 1 (keep)
  when every frame is opaque, so that only the changed rectangle of each frame is stored, else 2
  (restore to background, i.e. transparent), so that a pixel that turns transparent does not show the
  frame before. Two identical frames in a row are stored as one with both durations (the GIF writer's
  optimisation; it looks the same). APNG: dispose none, blend source (each frame replaces the
  canvas). WebP: lossless unless a quality is given.
- Loop: 0 is forever; None (a GIF without a loop extension) plays once, written as 1 to APNG and WebP.
- WebP: libwebp crops each frame to what it changes and sets the file's alpha flag only when a cropped
  frame holds alpha, so an opaque sprite on a transparent canvas makes a file flagged opaque, which
  Pillow then decodes without alpha. The flag is set on write when a frame is transparent, and assumed
  on read (decoding an opaque animation as RGBA only adds alpha 255).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ginr_cli.errors import GinrError
from ginr_cli.io import palette
from ginr_cli.io.atomic import atomic_path
from ginr_cli.io.images import ANIMATED_FORMATS, ImageMeta, _open, format_of, read_image

_OUT_FORMATS = ("GIF", "PNG", "WEBP")


@dataclass(frozen=True, kw_only=True, eq=False)
class Animation:
    frames: list[np.ndarray]  # uint8 (h, w, 4) RGBA canvases, as shown
    durations: list[int]  # ms, one per frame
    loop: int | None  # 0: forever; None: once
    meta: ImageMeta  # of the first frame: format, size, ICC, DPI


def read_animation(path: str | Path, *, max_pixels: int | None) -> Animation:
    """Every frame of a GIF, APNG or animated WebP; problems raise `GinrError(one line, path)`."""
    path = Path(path)
    meta = read_image(path, max_pixels=max_pixels).meta  # the checks of a still image, on frame 1
    if meta.format not in ANIMATED_FORMATS:
        raise GinrError(f"{meta.format} is not an animation format", path)
    frames, durations = [], []
    try:
        source = io.BytesIO(_webp_alpha(path.read_bytes())) if meta.format == "WEBP" else path
        with _open(source, ANIMATED_FORMATS) as im:
            loop = im.info.get("loop")
            for index in range(im.n_frames):
                im.seek(index)
                im.load()  # WebP sets the duration on load
                frames.append(np.asarray(im.convert("RGBA")))
                durations.append(round(float(im.info.get("duration") or 0)))
    except MemoryError as err:
        raise GinrError("not enough memory to decode this animation", path) from err
    except Exception as err:  # Pillow raises many types on damaged files
        detail = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
        raise GinrError(
            f"cannot decode frame {len(frames) + 1}, truncated or corrupt? ({detail})", path
        ) from err
    return Animation(frames=frames, durations=durations, loop=loop, meta=meta)


def animation_format(path: Path) -> str:
    """Pillow's format name for an animation written to `path`; GinrError for a still-only format."""
    fmt = format_of(path)
    if fmt not in _OUT_FORMATS:
        raise GinrError(f"{fmt} cannot hold an animation; write GIF, PNG or WebP (--ext gif|png|webp)", path)
    return fmt


def write_animation(
    path: str | Path,
    frames: list[np.ndarray],
    durations: list[int],
    loop: int | None,
    meta: ImageMeta,
    *,
    quality: int | None = None,
) -> Path:
    """Write RGBA uint8 frames (h, w, 4) as an animation in the format of `path`'s extension (GIF, PNG
    for APNG, WebP), atomically. `meta` gives the ICC profile, and the DPI, scaled as the frames are."""
    path = Path(path)
    fmt = animation_format(path)
    h, w = frames[0].shape[:2]
    opts: dict = {"save_all": True, "duration": list(durations)}
    if meta.icc_profile:
        opts["icc_profile"] = meta.icc_profile
    if fmt == "GIF":
        images, transparent = palette.quantize(frames, dither=False)
        opts.update(optimize=False, disposal=2 if transparent else 1)
        if transparent:
            opts["transparency"] = palette.TRANSPARENT
        if loop is not None:
            opts["loop"] = loop
    else:
        images = [Image.fromarray(frame, "RGBA") for frame in frames]
        opts["loop"] = 1 if loop is None else loop
        if fmt == "PNG":
            opts.update(disposal=0, blend=0)  # APNG_DISPOSE_OP_NONE, APNG_BLEND_OP_SOURCE
            if meta.dpi and min(meta.size) > 0:
                opts["dpi"] = (meta.dpi[0] * w / meta.size[1], meta.dpi[1] * h / meta.size[0])
        else:
            opts.update({"lossless": True} if quality is None else {"quality": quality})
    with atomic_path(path) as tmp:
        try:
            data = io.BytesIO()
            images[0].save(data, format=fmt, append_images=images[1:], **opts)
            transparent = fmt == "WEBP" and any((frame[..., 3] < 255).any() for frame in frames)
            tmp.write_bytes(_webp_alpha(data.getvalue()) if transparent else data.getvalue())
        except (OSError, ValueError) as err:
            raise GinrError(f"cannot write {fmt}: {err}", path) from err
    return path


def _webp_alpha(data: bytes) -> bytes:
    """An animated WebP with its VP8X alpha flag set (see the module's notes); other data as it is."""
    animated, alpha = 0x02, 0x10
    if len(data) > 20 and data[12:16] == b"VP8X" and data[20] & animated and not data[20] & alpha:
        return data[:20] + bytes([data[20] | alpha]) + data[21:]
    return data
