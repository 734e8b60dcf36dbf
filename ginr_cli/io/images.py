"""Image files in and out (PNG, JPEG, WebP, TIFF, BMP, GIF): pure IO, no resampling.

`read_image` returns colour and alpha as separate float32 arrays in [0, 1] plus an `ImageMeta`;
`write_image` quantises them back to the source's bit depth and writes atomically.

- Bit depth comes from the file's mode or sample format, never from pixel values: 16-bit in gives
  16-bit out (PNG or TIFF only), even if every value is below 256.
- Modes: L, LA, RGB, RGBA are kept. P (palette) and PA read as RGB, or RGBA when the palette has
  transparency, and are written as RGB/RGBA (an upscaled image has colours the palette lacks), except
  GIF, which is re-quantised to a new palette (`io.palette`).
- Animations (GIF, APNG, animated WebP): `read_image` reads the first frame and counts the frames in
  `meta.frames`; `io.animation` reads and writes them all.
  1 (bilevel) reads as L (0 or 1) and is written as 8-bit L: thresholding would throw away the
  upscaler's anti-aliased edges. CMYK reads as RGB (through its ICC profile when it has one) and is
  written as RGB without the CMYK profile (sRGB is assumed). A tRNS colour key becomes an alpha plane.
- 16-bit colour: Pillow (13.0 here) decodes 16-bit RGB/RGBA/LA PNG and TIFF to 8 bits silently.
  Gray/RGB(A) TIFFs are read with tifffile (see `_read_tiff`); such PNGs are decoded twice by
  Pillow, once for the high and once for the low byte of each sample. 16-bit images are written
  by tifffile (TIFF) or by the small PNG writer below.
- Metadata: EXIF orientation is applied to the pixels and dropped from the EXIF that is written;
  ICC profile kept; DPI kept and multiplied by the scale, so the physical size stays the same (also
  the EXIF resolution and pixel size tags, when present). EXIF is read from JPEG, PNG and WebP and
  written to JPEG, PNG and WebP; not to TIFF (libtiff rejects EXIF sub-IFDs in TIFF tags) nor BMP.
"""

from __future__ import annotations

import contextlib
import io
import logging
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageCms

from ginr_cli.errors import GinrError
from ginr_cli.io import palette
from ginr_cli.io.atomic import atomic_path

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own MAX_IMAGE_PIXELS
_EXT_FORMAT = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".gif": "GIF",
}
_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")  # MPO (JPEG) has frames too, but they are views, not time
_NO_ALPHA = ("JPEG", "BMP")  # Pillow writes BMP alpha that readers (Pillow included) ignore
_CAN_16 = ("PNG", "TIFF")
_ORIENTATION, _XRES, _YRES, _RES_UNIT, _EXIF_IFD, _PIXEL_X, _PIXEL_Y = (
    0x0112,
    0x011A,
    0x011B,
    0x0128,
    0x8769,
    0xA002,
    0xA003,
)
# EXIF orientation -> numpy view of an (h, w, c) array, as ImageOps.exif_transpose does it
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a),
}
_CONVERT = {"1": "L", "PA": "RGBA", "YCbCr": "RGB", "RGBX": "RGB", "RGBa": "RGBA", "La": "LA"}
_KEEP = {"L", "LA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I;16N"}
_PNG16_LOW = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}  # rawmode of the high byte -> low byte
_PNG_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)
_C = tifffile.COMPRESSION  # the codecs tifffile decodes without the imagecodecs package
_TIFFFILE_CODECS = {_C.NONE, _C.ADOBE_DEFLATE, _C.DEFLATE, _C.PACKBITS, _C.LZMA}
_pil_limit_lock = threading.Lock()


@dataclass(frozen=True, kw_only=True)
class ImageMeta:
    """What `write_image` needs to write the image back the way it came."""

    path: Path | None = None
    format: str = "PNG"  # Pillow's name: PNG, JPEG, WEBP, TIFF, BMP, GIF
    mode: str = "RGB"  # source mode as Pillow names it; 16-bit colour as "RGB;16", "LA;16"...
    bit_depth: int = 8  # per sample: 8 or 16
    size: tuple[int, int] = (0, 0)  # (h, w) after orientation; lets write_image infer the scale
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None  # (x, y), after orientation
    exif: bytes | None = None  # orientation tag already removed
    frames: int = 1  # more than 1: an animation (GIF, APNG, WebP), of which this is the first frame


@dataclass(frozen=True, kw_only=True, eq=False)
class ImageData:
    color: np.ndarray  # float32 (h, w, c), c in {1, 3}, in [0, 1]
    alpha: np.ndarray | None  # float32 (h, w) in [0, 1], or None
    meta: ImageMeta


def image_extensions() -> tuple[str, ...]:
    """Lower-case extensions, with the dot, that `read_image` and `write_image` handle."""
    return tuple(_EXT_FORMAT)


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in _EXT_FORMAT


# ---------------------------------------------------------------------------------------------- reading


def read_image(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageData:
    """Read an image; every problem with the file raises `GinrError(one line, path)`.

    `max_pixels` guards against decompression bombs (None: no limit).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if not head:
            raise GinrError("empty file (0 bytes)", path)
        raw = _read_tiff(path, max_pixels) if head[:2] in (b"II", b"MM") else None
        arr, has_alpha, orientation, fields = raw or _read_pillow(path, max_pixels)
    except GinrError:
        raise
    except FileNotFoundError as err:
        raise GinrError("no such file", path) from err
    except (IsADirectoryError, PermissionError) as err:
        raise GinrError(f"cannot open: {err.strerror}", path) from err
    except Image.UnidentifiedImageError as err:
        raise GinrError("not a PNG, JPEG, WebP, TIFF, BMP or GIF image", path) from err
    except MemoryError as err:
        raise GinrError("not enough memory to decode this image", path) from err
    except Exception as err:  # Pillow, tifffile, zlib and struct raise many types on damaged files
        detail = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
        raise GinrError(f"cannot decode image, truncated or corrupt? ({detail})", path) from err
    if arr.ndim != 3 or arr.size == 0 or arr.shape[2] - has_alpha not in (1, 3):
        raise GinrError(f"cannot decode image: no pixels, or an unexpected layout {arr.shape}", path)

    if orientation in _ORIENT:
        arr = np.ascontiguousarray(_ORIENT[orientation](arr))
        if orientation >= 5 and fields["dpi"]:  # rows and columns swapped
            fields["dpi"] = fields["dpi"][::-1]
    peak = np.float32(255 if fields["bit_depth"] == 8 else 65535)
    c = arr.shape[2] - has_alpha
    color = arr[..., :c].astype(np.float32) / peak
    alpha = arr[..., c].astype(np.float32) / peak if has_alpha else None
    meta = ImageMeta(path=path, size=arr.shape[:2], **fields)
    return ImageData(color=color, alpha=alpha, meta=meta)


@contextlib.contextmanager
def _open(path: Path, formats: tuple[str, ...] = _PIL_FORMATS) -> Iterator[Image.Image]:
    # Pillow's bomb limit is a module global; we apply max_pixels ourselves, so lift it while opening.
    with _pil_limit_lock:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            im = Image.open(path, formats=formats)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with im:
        yield im


def _check_pixels(w: int, h: int, max_pixels: int | None, path: Path) -> None:
    if max_pixels is not None and w * h > max_pixels:
        raise GinrError(
            f"{w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,} that guards "
            f"against decompression bombs; if you trust the file, pass --max-pixels {w * h}",
            path,
        )


def _unsupported(mode: str, path: Path) -> GinrError:
    return GinrError(f"unsupported pixel format {mode}; convert it to 8- or 16-bit grayscale or RGB", path)


def _read_pillow(path: Path, max_pixels: int | None) -> tuple[np.ndarray, bool, int, dict]:
    with _open(path) as src:
        _check_pixels(src.width, src.height, max_pixels, path)
        rawmode = src.tile[0][3] if src.tile else None  # (codec, extents, offset, args)
        rawmode = rawmode[0] if isinstance(rawmode, tuple) else rawmode
        mode, bits, icc, im = src.mode, 8, src.info.get("icc_profile") or None, src
        if src.format == "PNG" and rawmode in ("RGB;16B", "RGBA;16B", "LA;16B"):
            arr, bits, mode = _png16(src, rawmode, path), 16, rawmode.replace("16B", "16")
        else:
            src.load()
            if mode == "P":
                im = src.convert("RGBA" if src.has_transparency_data else "RGB")
            elif mode == "CMYK":
                im, icc = _cmyk_to_rgb(src, icc, path), None
            elif mode in _CONVERT:
                im = src.convert(_CONVERT[mode])
            elif mode == "I" and rawmode in ("I;16", "I;16B", "I;16L", "I;16N"):
                pass  # unsigned 16-bit held in a 32-bit mode
            elif mode not in _KEEP:
                raise _unsupported(f"{mode} ({rawmode})" if rawmode else mode, path)
            bits = 16 if im.mode.startswith("I") else 8
            arr = np.asarray(im)
        arr = arr[..., None] if arr.ndim == 2 else arr
        has_alpha = arr.shape[2] in (2, 4)
        key = src.info.get("transparency")  # tRNS colour key of an L, RGB or 16-bit image
        if key is not None and not has_alpha and mode not in ("P", "1") and not isinstance(key, bytes):
            opaque = np.any(arr != np.array(key, ndmin=1)[: arr.shape[2]], axis=2)
            arr = np.dstack([arr, opaque.astype(arr.dtype) * arr.dtype.type(2**bits - 1)])
            has_alpha = True
        exif = src.getexif()  # read after load(): Pillow's TIFF loader applies and drops orientation
        orientation = exif.pop(_ORIENTATION, 1)
        keep_exif = src.format != "TIFF" and ("exif" in src.info or "Raw profile type exif" in src.info)
        fields = dict(
            format="JPEG" if src.format == "MPO" else src.format,
            mode=mode,
            bit_depth=bits,
            icc_profile=icc,
            dpi=_valid_dpi(src.info.get("dpi")),
            exif=exif.tobytes() if keep_exif else None,
            frames=getattr(src, "n_frames", 1) if src.format in ANIMATED_FORMATS else 1,
        )
    return arr, has_alpha, orientation, fields


def _png16(im: Image.Image, rawmode: str, path: Path) -> np.ndarray:
    """16-bit colour PNG, which Pillow decodes to 8 bits: decode it as bytes, high and low."""

    def decode(image: Image.Image, raw: str) -> np.ndarray:
        image.tile = [(*t[:3], raw) for t in image.tile]
        image.load()
        return np.asarray(image).astype(np.uint16)

    if rawmode == "LA;16B":  # 4 bytes a pixel, the size of 8-bit RGBA: L_hi, L_lo, A_hi, A_lo
        b = decode(im, "RGBA")
        return (b[..., 0::2] << 8) | b[..., 1::2]
    high = decode(im, rawmode)
    with _open(path, ("PNG",)) as again:
        low = decode(again, _PNG16_LOW[rawmode])
    return (high << 8) | low


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None, path: Path) -> Image.Image:
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError) as err:
            log.warning("%s: CMYK ICC profile unusable (%s); converting CMYK to RGB without it", path, err)
    return im.convert("RGB")


def _valid_dpi(dpi) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in dpi)
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 else None


def _read_tiff(path: Path, max_pixels: int | None) -> tuple[np.ndarray, bool, int, dict] | None:
    """Gray/RGB(A) 8/16-bit TIFFs by tifffile; None: leave the file to Pillow.

    Pillow 13 decodes 16-bit colour to 8 bits, misreads planar RGB, and garbles uncompressed
    single-channel TIFFs with orientation 5-8; tifffile has none of these faults, but it needs the
    imagecodecs package for LZW and JPEG compression, which Pillow (libtiff) then handles.
    """
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        spp, bits = page.samplesperpixel, page.bitspersample
        photometric = {tifffile.PHOTOMETRIC.MINISBLACK: 1, tifffile.PHOTOMETRIC.RGB: 3}.get(page.photometric)
        plain = (
            photometric is not None
            and spp >= photometric
            and bits in (8, 16)
            and page.dtype.kind == "u"
            and page.imagedepth == 1
        )
        if not (plain and page.compression in _TIFFFILE_CODECS):
            if bits == 16 and spp > 1:  # Pillow would truncate it to 8 bits
                why = (
                    f"{page.compression.name} compression needs the imagecodecs package"
                    if plain
                    else (f"{page.photometric.name} samples are not supported")
                )
                raise GinrError(f"cannot read this 16-bit TIFF: {why}", path)
            return None
        _check_pixels(page.imagewidth, page.imagelength, max_pixels, path)
        arr = page.asarray()
        arr = arr[..., None] if arr.ndim == 2 else arr
        if spp > 1 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
            arr = np.moveaxis(arr, 0, -1)  # (c, h, w) -> (h, w, c)
        extra = tuple(page.extrasamples)
        has_alpha = spp > photometric and extra[:1] in ((1,), (2,))  # associated or unassociated alpha
        arr = arr[..., : photometric + has_alpha]
        if has_alpha and extra[0] == 1:  # associated (premultiplied) alpha: divide it out
            peak = np.iinfo(arr.dtype).max
            a = arr[..., -1:].astype(np.float64)
            color = np.where(a > 0, arr[..., :-1] * (peak / np.maximum(a, 1)), 0)
            arr = np.dstack([np.clip(np.rint(color), 0, peak).astype(arr.dtype), arr[..., -1:]])
        tags = page.tags
        icc = tags.get(34675)
        dpi = None
        if 282 in tags and 283 in tags and (unit := tags.get(296)) is not None and unit.value in (2, 3):
            dpi = tuple(
                float(n) / float(d) * (2.54 if unit.value == 3 else 1.0)
                for n, d in (tags[282].value, tags[283].value)
                if d
            )
        orientation = tags[274].value if 274 in tags else 1
        mode = ["L", "LA", "RGB", "RGBA"][photometric + has_alpha - 1]
        mode = mode if bits == 8 else "I;16" if mode == "L" else f"{mode};16"
        fields = dict(
            format="TIFF",
            mode=mode,
            bit_depth=bits,
            icc_profile=bytes(icc.value) if icc is not None else None,
            dpi=_valid_dpi(dpi),
            exif=None,
        )
    return arr, has_alpha, int(orientation), fields


# ---------------------------------------------------------------------------------------------- writing


def write_image(
    path: str | Path,
    color: np.ndarray,
    alpha: np.ndarray | None,
    meta: ImageMeta,
    *,
    scale: float | tuple[float, float] | None = None,
    format: str | None = None,
    quality: int | None = None,
) -> Path:
    """Write colour (h, w, c) and optional alpha (h, w), floats in [0, 1], at `meta.bit_depth`.

    Values are clipped to [0, 1] (NaN to 0) and rounded. The format comes from the extension, or
    `format` ("png", "jpg", ...). `scale` is (sy, sx) or one number: output over source size, used
    to scale the DPI; None infers it from `meta.size`. `quality`: None is JPEG 95 (4:4:4) and
    lossless WebP; a number asks for lossy JPEG/WebP at that quality. The file is written atomically.
    """
    path = Path(path)
    fmt = format_of(path, format)
    color = np.asarray(color)
    color = color[..., None] if color.ndim == 2 else color
    if color.ndim != 3 or color.shape[2] not in (1, 3):
        raise ValueError(f"color must be (h, w, 1) or (h, w, 3), got {color.shape}")
    h, w, _ = color.shape
    if alpha is not None and np.shape(alpha)[:2] != (h, w):
        raise ValueError(f"alpha must be ({h}, {w}), got {np.shape(alpha)}")
    if alpha is not None and fmt in _NO_ALPHA:
        raise GinrError(f"{fmt} cannot hold the alpha channel; write PNG, WebP or TIFF (--ext png)", path)
    if meta.bit_depth == 16 and fmt not in _CAN_16:
        raise GinrError(f"{fmt} cannot hold 16-bit samples; write PNG or TIFF (--ext png)", path)

    if scale is None:
        sy, sx = (h / meta.size[0], w / meta.size[1]) if min(meta.size) > 0 else (1.0, 1.0)
    else:
        sy, sx = (scale, scale) if np.isscalar(scale) else scale
    dpi = (meta.dpi[0] * sx, meta.dpi[1] * sy) if meta.dpi else None
    exif = _output_exif(meta.exif, dpi, (h, w))

    arr = _quantize(color, None if alpha is None else np.reshape(alpha, (h, w, 1)), meta.bit_depth)

    with atomic_path(path) as tmp:
        try:
            if meta.bit_depth == 16 and fmt == "PNG":
                _write_png16(tmp, arr, meta.icc_profile, dpi, exif)
            elif meta.bit_depth == 16:
                tifffile.imwrite(
                    tmp,
                    arr[..., 0] if arr.shape[2] == 1 else arr,
                    metadata=None,
                    photometric="rgb" if arr.shape[2] >= 3 else "minisblack",
                    planarconfig="contig" if arr.shape[2] > 1 else None,
                    extrasamples=("unassalpha",) if alpha is not None else None,
                    compression="zlib",
                    predictor=True,
                    iccprofile=meta.icc_profile,
                    resolution=dpi,
                    resolutionunit="INCH" if dpi else None,
                )
            elif fmt == "GIF":
                (im,), transparent = palette.quantize([as_rgba(arr)], dither=True)
                extra = {"transparency": palette.TRANSPARENT} if transparent else {}
                im.save(tmp, format=fmt, optimize=False, icc_profile=meta.icc_profile, **extra)
            else:
                im = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
                im.save(tmp, format=fmt, **_save_options(fmt, meta.icc_profile, dpi, exif, quality))
        except (OSError, ValueError, struct.error) as err:
            raise GinrError(f"cannot write {fmt}: {err}", path) from err
    return path


def as_rgba(arr: np.ndarray) -> np.ndarray:
    """uint8 (h, w, c), c in 1 to 4 (L, LA, RGB, RGBA) -> (h, w, 4) RGBA."""
    c = arr.shape[2]
    rgb = arr[..., :1].repeat(3, axis=2) if c <= 2 else arr[..., :3]
    alpha = arr[..., -1:] if c in (2, 4) else np.full_like(arr[..., :1], 255)
    return np.concatenate([rgb, alpha], axis=2)


def _quantize(color: np.ndarray, alpha: np.ndarray | None, bit_depth: int, rows: int = 256) -> np.ndarray:
    """Colour (h, w, c) and alpha (h, w, 1) as one uint8/uint16 array: clipped to [0, 1] (NaN to 0), scaled
    and rounded a band of rows at a time, so a big image needs no full-size float copies."""
    peak, dtype = (65535, np.uint16) if bit_depth == 16 else (255, np.uint8)
    h, w, c = color.shape
    out = np.empty((h, w, c + (alpha is not None)), dtype)
    for r in range(0, h, rows):
        band = (
            color[r : r + rows]
            if alpha is None
            else np.concatenate([color[r : r + rows], alpha[r : r + rows]], 2)
        )
        band = np.nan_to_num(band.astype(np.float32), nan=0.0)
        out[r : r + rows] = np.rint(np.clip(band, 0.0, 1.0) * peak)
    return out


def format_of(path: Path, format: str | None = None) -> str:
    """Pillow's format name for `path`'s extension, or for `format` ("png", "jpg"...)."""
    key = f".{format.lower().lstrip('.')}" if format else path.suffix.lower()
    if key not in _EXT_FORMAT:
        wanted = f"format {format!r}" if format else f"extension {path.suffix or '(none)'!r}"
        raise GinrError(f"unknown image {wanted}; use one of {', '.join(_EXT_FORMAT)}", path)
    return _EXT_FORMAT[key]


def _output_exif(data: bytes | None, dpi: tuple[float, float] | None, size: tuple[int, int]) -> bytes | None:
    """Source EXIF with its resolution and pixel-size tags updated, where it has them."""
    if not data:
        return None
    exif = Image.Exif()
    exif.load(data)
    if dpi and _XRES in exif and _YRES in exif:
        exif[_XRES], exif[_YRES], exif[_RES_UNIT] = dpi[0], dpi[1], 2  # 2: inches
    sub = exif.get_ifd(_EXIF_IFD) if _EXIF_IFD in exif else {}
    for tag, value in ((_PIXEL_X, size[1]), (_PIXEL_Y, size[0])):
        if tag in sub:
            sub[tag] = value
    return exif.tobytes()


def _save_options(fmt: str, icc: bytes | None, dpi, exif: bytes | None, quality: int | None) -> dict:
    opts: dict = {"icc_profile": icc, "exif": exif, "dpi": dpi}
    if fmt == "JPEG":
        q = 95 if quality is None else quality
        opts.update(quality=q, subsampling=0 if q >= 90 else 2)  # 4:4:4 at high quality, else 4:2:0
    elif fmt == "WEBP":  # exact: keep the colour under transparent pixels
        opts.update(exact=True, **({"lossless": True} if quality is None else {"quality": quality}))
    elif fmt == "TIFF":
        opts.update(compression="tiff_deflate", exif=None)
    elif fmt == "BMP":
        opts.update(icc_profile=None, exif=None)
    return {k: v for k, v in opts.items() if v is not None}


def _write_png16(path: Path, arr: np.ndarray, icc: bytes | None, dpi, exif: bytes | None) -> None:
    """A 16-bit PNG (gray, gray+alpha, RGB or RGBA), which Pillow cannot write beyond gray."""
    h, w, c = arr.shape
    data = arr.astype(">u2").view(np.uint8).reshape(h, w * c * 2)
    sub = data.copy()
    sub[:, 2 * c :] -= data[:, : -2 * c]  # filter 1 ("Sub"): difference with the pixel to the left
    rows = np.concatenate([np.ones((h, 1), np.uint8), sub], axis=1)
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, _PNG_COLOR_TYPE[c], 0, 0, 0))]
    if icc:
        chunks.append((b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc)))
    if dpi:
        chunks.append((b"pHYs", struct.pack(">IIB", *(round(d / 0.0254) for d in dpi), 1)))
    if exif:
        chunks.append((b"eXIf", exif.removeprefix(b"Exif\0\0")))
    idat = zlib.compress(rows.tobytes(), 6)
    chunks += [(b"IDAT", idat[i : i + 2**30]) for i in range(0, len(idat), 2**30)] + [(b"IEND", b"")]
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        for tag, body in chunks:
            f.write(struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body)))


# ---------------------------------------------------------------------------------------------- describing


def describe_image(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> dict:
    """What `ginr info` shows of an image: the file as stored (size, mode, depth, alpha, ICC, EXIF
    orientation, DPI, frames). Problems raise GinrError as `read_image` does."""
    path = Path(path)
    image = read_image(path, max_pixels=max_pixels)
    meta = image.meta
    with _open(path) as im:
        orientation = im.getexif().get(_ORIENTATION, 1)
        stored = im.size
    icc = "none"
    if meta.icc_profile:
        try:
            name = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(meta.icc_profile)))
            icc = f"{name.strip()} ({len(meta.icc_profile)} bytes)"
        except (ImageCms.PyCMSError, OSError, ValueError):
            icc = f"unreadable ({len(meta.icc_profile)} bytes)"
    h, w = meta.size
    return {
        "path": str(path),
        "kind": "image",
        "format": meta.format,
        "size": f"{stored[0]}x{stored[1]}",
        "mode": meta.mode,
        "bit depth": meta.bit_depth,
        "alpha": image.alpha is not None,
        "icc profile": icc,
        "exif orientation": orientation,
        "size upright": f"{w}x{h}",
        "dpi": "none" if meta.dpi is None else " x ".join(f"{round(d, 2):g}" for d in meta.dpi),
        "frames": meta.frames,
    }
