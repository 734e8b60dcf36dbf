"""3D volumes: NIfTI (nibabel) and TIFF stacks (tifffile), read as float32 and written on a new grid.

`Volume.data` is float32 `(frames, d0, d1, d2)` in physical units (NIfTI `scl_slope`/`scl_inter`
applied). NIfTI axes are (x, y, z) and a 4D series gives one frame per time point; TIFF axes are
(Z, Y, X) and a T or C axis gives the frames. Callers process frames one by one.

`write_volume` writes data resampled over the source's field of view (see `geometry`): the affine,
voxel size and header of the new grid, everything else of the source kept.

Policies:
- Non-finite voxels (NaN, Inf) are refused on read and on write, with their count.
- NIfTI: 3D (including (x, y, 1)) and 4D only; 2D and 5D+ are refused. sform and qform are each
  rescaled and keep their codes; units, intent, description, time step and extensions are kept;
  slice-timing fields are cleared when the grid changes.
- Output dtype: the source's on-disk dtype ('keep', the default) or float32. Integer output is
  rounded and clipped to the dtype's range; when the source had scl_slope/scl_inter, the same
  scaling is written and values are rounded to its grid, so integer data never drifts.
- TIFF: axes ZYX, optionally with one T or C axis (ImageJ hyperstacks); a plain multi-page file
  (axes I or Q) is read as Z. Samples (RGB), both T and C, or other axes are refused. Voxel size
  from ImageJ (`spacing`, X/YResolution, `unit`) or OME (`PhysicalSize*`), else 1 pixel. Written
  as ImageJ for uint8, uint16, int16 and float32; as OME-TIFF for other dtypes ImageJ cannot hold.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from xml.etree import ElementTree

import nibabel as nib
import numpy as np
import tifffile

from ginr_cli.errors import GinrError
from ginr_cli.io.atomic import atomic_path
from ginr_cli.io.geometry import fov_grid, grid_affine

NIFTI_SUFFIXES = (".nii", ".nii.gz")
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGEJ_DTYPES = (np.uint8, np.uint16, np.int16, np.float32)
GZIP_LEVEL = 6


@dataclass(kw_only=True, eq=False)
class Volume:
    data: np.ndarray  # float32 (frames, d0, d1, d2), physical values
    kind: Literal["nifti", "tiff"]
    dtype: np.dtype  # on-disk dtype of the source: the default output dtype
    spacing: tuple[float, float, float]  # voxel size along d0, d1, d2
    unit: str  # NIfTI: 'mm' (or what xyzt_units says); TIFF: ImageJ/OME unit or 'pixel'
    affine: np.ndarray  # 4x4, voxel (d0, d1, d2) -> world; TIFF: diag(spacing)
    axes: str  # on-disk axes: 'XYZ', 'XYZT'; TIFF 'ZYX', 'TZYX', 'ZCYX', ...
    path: Path | None = None
    # NIfTI: the source header (units, intent, description, pixdim[4], extensions) and what write restores
    header: nib.Nifti1Header | None = None
    sform_code: int = 0
    qform_code: int = 0
    slope: float | None = None  # scl_slope/scl_inter; None: unscaled
    inter: float | None = None
    # TIFF: extra ImageJ metadata kept on write (finterval)
    metadata: dict = field(default_factory=dict)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[1:])


def volume_kind(path: str | Path) -> Literal["nifti", "tiff"] | None:
    """'nifti' or 'tiff' by file name, else None."""
    name = Path(path).name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    return "tiff" if name.endswith(TIFF_SUFFIXES) else None


def tiff_is_stack(path: str | Path) -> bool:
    """True for a TIFF whose first series has more than one slice (Z, or plain pages I/Q)."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return any(a in "ZIQ" and n > 1 for a, n in zip(series.axes, series.shape, strict=True))
    except Exception:  # a damaged file: not a stack here; reading it as an image reports the damage
        return False


def is_volume_path(path: str | Path) -> bool:
    """NIfTI by name; TIFF only when it is a stack (a single-page TIFF is an image)."""
    kind = volume_kind(path)
    return kind == "nifti" or (kind == "tiff" and tiff_is_stack(path))


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _check_finite(data: np.ndarray, path: Path, verb: str) -> None:
    bad = data.size - int(np.count_nonzero(np.isfinite(data)))
    if bad:
        raise GinrError(f"{bad} of {data.size} voxel values are not finite (NaN or Inf): cannot {verb}", path)


def read_volume(path: str | Path) -> Volume:
    """Read a NIfTI (.nii, .nii.gz), a TIFF stack or a DICOM series (`dicom.Series`). Every failure is a
    GinrError naming the file (the series' folder)."""
    from ginr_cli.io.dicom import Series, read_series

    if isinstance(path, Series):
        vol = read_series(path)
        _check_finite(vol.data, Path(path), "process it")
        return vol
    path = Path(path)
    kind = volume_kind(path)
    if kind is None:
        raise GinrError("not a volume file (expected .nii, .nii.gz, .tif or .tiff)", path)
    try:
        vol = _read_nifti(path) if kind == "nifti" else _read_tiff(path)
    except GinrError:
        raise
    except FileNotFoundError as err:
        raise GinrError("no such file", path) from err
    except MemoryError as err:
        raise GinrError("not enough memory to load this volume", path) from err
    except Exception as err:  # nibabel, gzip and tifffile raise many types on damaged files
        label = "NIfTI" if kind == "nifti" else "TIFF"
        if path.is_file() and path.stat().st_size == 0:
            raise GinrError(f"empty file (0 bytes), not a {label}", path) from err
        raise GinrError(f"cannot read {label}: {_one_line(err)}", path) from err
    if vol.data.size == 0:
        raise GinrError(f"no voxels: the volume's shape is {vol.data.shape[1:]}", path)
    _check_finite(vol.data, path, "process it")
    return vol


def _read_nifti(path: Path) -> Volume:
    img = nib.load(path, mmap=False)  # lazy: header only
    hdr = img.header
    shape = img.shape
    if len(shape) < 3:
        raise GinrError(f"{len(shape)}D NIfTI {shape} is an image, not a volume", path)
    if len(shape) > 4:
        raise GinrError(f"{len(shape)}D NIfTI {shape} is not supported: only 3D volumes and 4D series", path)
    if 0 in shape:
        raise GinrError(f"empty NIfTI {shape}", path)
    dtype = hdr.get_data_dtype()
    if dtype.kind not in "iuf":
        raise GinrError(f"NIfTI data type {dtype} is not supported (only integer and float)", path)
    if not path.name.lower().endswith(".gz"):  # uncompressed: the header's size must fit the file
        need = int(hdr.get_data_offset()) + math.prod(shape) * dtype.itemsize
        have = path.stat().st_size
        if have < need:
            raise GinrError(f"truncated: the header declares {need} bytes, the file holds {have}", path)
    arr = np.asanyarray(img.dataobj)  # reads the data: truncation and corruption raise here
    arr = arr[None] if arr.ndim == 3 else np.moveaxis(arr, -1, 0)
    # nibabel moves scl_slope/scl_inter from the loaded header to the data proxy
    slope, inter = float(img.dataobj.slope), float(img.dataobj.inter)
    scaled = not (slope == 1 and inter == 0)
    return Volume(
        data=np.ascontiguousarray(arr, dtype=np.float32),
        kind="nifti",
        dtype=dtype.newbyteorder("="),
        spacing=tuple(float(z) for z in hdr.get_zooms()[:3]),
        unit=hdr.get_xyzt_units()[0],
        affine=np.asarray(img.affine, dtype=np.float64),
        axes="XYZT"[: len(shape)],
        path=path,
        header=hdr.copy(),
        sform_code=int(hdr["sform_code"]),
        qform_code=int(hdr["qform_code"]),
        slope=slope if scaled else None,
        inter=inter if scaled else None,
    )


def _tiff_axes(axes: str, path: Path) -> str:
    """Normalise tifffile's series axes to Z, Y, X plus at most one T or C axis."""
    if "Z" not in axes and sum(a in "IQ" for a in axes) == 1:
        axes = axes.replace("I", "Z").replace("Q", "Z")  # plain multi-page file: pages are slices
    if "Z" not in axes and set(axes) <= set("YXS"):
        raise GinrError(f"a single 2D image (axes {axes}), not a stack", path)
    if not ({"Z", "Y", "X"} <= set(axes) <= set("ZYXTC")) or ("T" in axes and "C" in axes):
        raise GinrError(f"TIFF axes {axes} are not supported: ZYX with at most one T or C axis", path)
    return axes


def _tiff_spacing(tif: tifffile.TiffFile) -> tuple[tuple[float, float, float], str, dict]:
    """(z, y, x) voxel size, unit and extra ImageJ metadata to keep."""
    if tif.is_imagej:
        meta = tif.imagej_metadata or {}
        tags = tif.pages[0].tags

        def size(tag: str) -> float:
            num, den = tags[tag].value if tag in tags else (1, 1)
            return den / num if num else 1.0

        keep = {"finterval": meta["finterval"]} if "finterval" in meta else {}
        spacing = (float(meta.get("spacing", 1.0)), size("YResolution"), size("XResolution"))
        return spacing, str(meta.get("unit", "pixel")), keep
    if tif.is_ome:
        pixels = ElementTree.fromstring(tif.ome_metadata).find(".//{*}Pixels")
        attrs = {} if pixels is None else pixels.attrib
        spacing = tuple(float(attrs.get(f"PhysicalSize{a}", 1.0)) for a in "ZYX")
        return spacing, attrs.get("PhysicalSizeXUnit", "µm"), {}
    return (1.0, 1.0, 1.0), "pixel", {}


def _read_tiff(path: Path) -> Volume:
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = _tiff_axes(series.axes, path)
        dtype = series.dtype
        if dtype.kind not in "iuf":
            raise GinrError(f"TIFF data type {dtype} is not supported (only integer and float)", path)
        spacing, unit, meta = _tiff_spacing(tif)
        arr = series.asarray()
    frame = next((a for a in axes if a in "TC"), None)
    order = ([axes.index(frame)] if frame else []) + [axes.index(a) for a in "ZYX"]
    arr = np.transpose(arr, order)
    return Volume(
        data=np.ascontiguousarray(arr if frame else arr[None], dtype=np.float32),
        kind="tiff",
        dtype=dtype.newbyteorder("="),
        spacing=spacing,
        unit=unit,
        affine=np.diag([*spacing, 1.0]),
        axes=axes,
        path=path,
        metadata=meta,
    )


def _to_dtype(data: np.ndarray, dtype: np.dtype, slope: float | None, inter: float | None) -> np.ndarray:
    """Cast to `dtype`; integers: through the scaling, rounded to the grid, clipped to the range. Integers
    are converted a slab of about 16M values at a time, so a big volume needs no full-size float64 copy."""
    if dtype.kind == "f":
        return data.astype(dtype)
    info = np.iinfo(dtype)
    hi = float(info.max) if int(float(info.max)) <= info.max else np.nextafter(float(info.max), 0)
    out = np.empty(data.shape, dtype)
    step = max(1, 2**24 // max(1, math.prod(data.shape[1:])))
    for i in range(0, data.shape[0], step):
        x = data[i : i + step].astype(np.float64)
        if slope is not None:
            x = (x - inter) / slope
        out[i : i + step] = np.clip(np.rint(x), float(info.min), hi)
    return out


def write_volume(
    path: str | Path,
    data: np.ndarray,
    source: Volume,
    dtype: Literal["keep", "float32"] | None = None,
    grid: tuple[Sequence[float], Sequence[float]] | None = None,
) -> Path:
    """Write `data` (frames, *spatial) as `source` resampled over its field of view, atomically.

    The format follows `path` and must match the source's. `dtype`: 'keep' (None) writes the source's
    on-disk dtype, 'float32' writes float32 without scaling. `grid` (step, offset per axis, see
    `geometry.grid_affine`) places a grid that is not the whole field of view (a region, a slice).
    """
    path = Path(path)
    data = np.asarray(data)
    if data.ndim != 4:
        raise ValueError(f"data must be (frames, d0, d1, d2), got shape {data.shape}")
    if dtype not in (None, "keep", "float32"):
        raise GinrError(f"unknown output dtype {dtype!r} (expected 'keep' or 'float32')", path)
    kind = volume_kind(path)
    if kind != source.kind:
        raise GinrError(f"cannot write a {source.kind} volume to this file type", path)
    _check_finite(data, path, "write them")
    out = np.dtype(np.float32) if dtype == "float32" else np.dtype(source.dtype)
    step, offset = grid if grid is not None else fov_grid(source.spatial_shape, data.shape[1:])
    with atomic_path(path) as tmp:
        try:
            (_write_nifti if kind == "nifti" else _write_tiff)(tmp, path, data, source, out, step, offset)
        except (OSError, GinrError):
            raise
        except Exception as err:  # nibabel and tifffile refuse some headers and metadata only here
            label = "NIfTI" if kind == "nifti" else "TIFF"
            raise GinrError(f"cannot write {label}: {_one_line(err)}", path) from err
    return path


def _write_nifti(
    tmp: Path, path: Path, data: np.ndarray, source: Volume, out: np.dtype, step, offset
) -> None:
    old, new = source.spatial_shape, data.shape[1:]
    src = source.header
    arr = np.moveaxis(data, 0, -1) if source.axes == "XYZT" or data.shape[0] > 1 else data[0]
    scaled = out.kind in "iu" and source.slope is not None
    raw = _to_dtype(arr, out, *((source.slope, source.inter) if scaled else (None, None)))
    cls = nib.Nifti2Image if isinstance(src, nib.Nifti2Header) else nib.Nifti1Image
    img = cls(raw, None, header=src)  # copies the header; affine None: the header is the geometry
    img.update_header()  # data shape
    hdr = img.header
    hdr.set_data_dtype(out)
    hdr.set_sform(grid_affine(src.get_sform(), step, offset), code=source.sform_code)
    hdr.set_qform(grid_affine(src.get_qform(), step, offset), code=source.qform_code)  # also sets pixdim
    # Fixed scaling: nibabel then writes `raw` as is instead of choosing its own slope.
    hdr.set_slope_inter(*((source.slope, source.inter) if scaled else (1.0, 0.0)))
    if old != new:  # slice timing refers to the old slices
        for key in ("slice_code", "slice_start", "slice_end", "slice_duration"):
            hdr[key] = 0
    with open(tmp, "wb") as f:
        if path.name.lower().endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=GZIP_LEVEL, mtime=0) as gz:
                img.to_stream(gz)
        else:
            img.to_stream(f)


def _write_tiff(tmp: Path, path: Path, data: np.ndarray, source: Volume, out: np.dtype, step, offset) -> None:
    z, y, x = (float(v) for v in np.asarray(source.spacing) * step)  # ImageJ keeps no origin: offset unused
    raw = _to_dtype(data, out, None, None)
    frame = next((a for a in source.axes if a in "TC"), "T" if data.shape[0] > 1 else None)
    if frame is None:
        axes, raw = "ZYX", raw[0]
    elif frame == "C":
        axes, raw = "ZCYX", raw.transpose(1, 0, 2, 3)  # ImageJ hyperstack order
    else:
        axes = "TZYX"
    unit = source.unit
    if out.type in IMAGEJ_DTYPES:
        meta = {"spacing": z, "axes": axes, **source.metadata} | ({"unit": unit} if unit else {})
        tifffile.imwrite(tmp, raw, imagej=True, resolution=(1 / x, 1 / y), metadata=meta)
    else:  # ImageJ holds only 8/16-bit and float32
        meta = {"axes": axes, "PhysicalSizeX": x, "PhysicalSizeY": y, "PhysicalSizeZ": z}
        if unit and unit != "pixel":
            meta |= {f"PhysicalSize{a}Unit": unit for a in "XYZ"}
        tifffile.imwrite(tmp, raw, ome=True, photometric="minisblack", metadata=meta)


def volume_metadata(volume: Volume) -> dict:
    """Everything but the voxels, as JSON-safe values: what a latent keeps to write the volume back.
    NIfTI header extensions are not kept."""
    header = None
    if volume.header is not None:
        header = base64.b64encode(volume.header.binaryblock).decode()
    extra = {}
    for key, value in volume.metadata.items():  # TIFF metadata: keep what JSON can hold
        try:
            json.dumps(value)
            extra[key] = value
        except TypeError:
            pass
    return {
        "spacing": [float(v) for v in volume.spacing],
        "unit": volume.unit,
        "affine": np.asarray(volume.affine, dtype=float).tolist(),
        "axes": volume.axes,
        "header": header,
        "nifti2": isinstance(volume.header, nib.Nifti2Header),
        "sform_code": int(volume.sform_code),
        "qform_code": int(volume.qform_code),
        "slope": volume.slope,
        "inter": volume.inter,
        "metadata": extra,
    }


_QUIET = logging.getLogger(__name__ + ".header_check")  # nibabel's header checks log; we raise instead
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def nifti_header(text: str, nifti2: bool = False) -> nib.Nifti1Header:
    """The NIfTI header kept (base64) in a latent's metadata; GinrError if it is damaged."""
    cls = nib.Nifti2Header if nifti2 else nib.Nifti1Header
    try:
        header = cls(binaryblock=base64.b64decode(text, validate=True), check=False)
        header.check_fix(logger=_QUIET, error_level=40)  # raises on what nibabel cannot fix
        header.get_data_dtype(), header.get_best_affine(), header.get_qform(), header.get_sform()
    except Exception as err:
        raise GinrError(f"damaged NIfTI header: {_one_line(err)}") from err
    return header


def volume_from_metadata(meta: dict, shape: Sequence[int], frames: int, dtype: str) -> Volume:
    """A `Volume` without voxels (a zero-size view of `shape`) from `volume_metadata`, for `write_volume`."""
    header = nifti_header(meta["header"], bool(meta.get("nifti2"))) if meta.get("header") else None
    kind = "nifti" if header is not None else "tiff"
    return Volume(
        data=np.broadcast_to(np.float32(0), (frames, *shape)),
        kind=kind,
        dtype=np.dtype(dtype),
        spacing=tuple(meta["spacing"]),
        unit=meta["unit"],
        affine=np.asarray(meta["affine"]),
        axes=meta["axes"],
        header=header,
        sform_code=meta["sform_code"],
        qform_code=meta["qform_code"],
        slope=meta["slope"],
        inter=meta["inter"],
        metadata=meta.get("metadata", {}),
    )


def describe_volume(path: str | Path) -> dict:
    """What `ginr info` shows of a NIfTI or TIFF volume: shape, voxel size, affine and its codes, dtype,
    scaling, value range. Problems raise GinrError as `read_volume` does."""
    vol = read_volume(path)
    facts = {
        "path": str(path),
        "kind": "volume",
        "format": "NIfTI" if vol.kind == "nifti" else "TIFF",
        "shape": "x".join(map(str, vol.spatial_shape)),
        "frames": vol.data.shape[0],
        "axes": vol.axes,
        "voxel size": " x ".join(f"{s:g}" for s in vol.spacing) + f" {vol.unit}",
        "dtype": str(vol.dtype),
        "value range": f"{float(vol.data.min()):g} to {float(vol.data.max()):g}",
    }
    if vol.kind == "nifti":
        facts["affine"] = [[round(float(v), 6) for v in row] for row in vol.affine]
        facts["sform code"], facts["qform code"] = vol.sform_code, vol.qform_code
        facts["orientation"] = "".join(nib.aff2axcodes(vol.affine))
        facts["scaling"] = "none" if vol.slope is None else f"x {vol.slope:g} + {vol.inter:g}"
    else:
        facts.update({k: v for k, v in vol.metadata.items()})
    return facts
