"""The latent file: one `.safetensors` per input.

Format 2 stores the latents quantised and entropy-coded: latent = integer x step, per channel.
Tensors:  "codes"  uint8 (bytes,): an LZMA (.xz) stream of the integers, little-endian `ginr.codes.dtype`
                   (int8 or int16), laid out (frames, d, tiles, m): channel by channel, so each channel's
                   statistics sit together for the coder
          "steps"  float32 (d,): the quantisation step of each channel
Metadata: str -> str, JSON under `ginr.*` keys, checked when read against `_SCHEMA` below:
    ginr.format         format version (an integer): 2. A newer one is refused ("upgrade ginr"), and so
                        is format 1 (float latents of earlier versions: encode the source again)
    ginr.codes          {"shape": [frames, tiles, m, d], "dtype": "int8" | "int16"}
    ginr.model          {"name", "fingerprint"} of the model that encoded it; decoding needs the same model
    ginr.source         what is needed to write the output like the source: kind ("image" | "nifti" |
                        "tiff"), shape (spatial), channels, dtype, and the kind's geometry and metadata
    ginr.normalization  {"lo", "hi"}: model units back to the source's units
    ginr.tiles          {"shape", "tile", "overlap"}: the tile grid, tiles in raster order (axis 0 slowest)
"""

from __future__ import annotations

import base64
import json
import lzma
import math
import reprlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ginr_cli.errors import GinrError
from ginr_cli.io.atomic import atomic_path

FORMAT_VERSION = 2
KEYS = ("ginr.format", "ginr.codes", "ginr.model", "ginr.source", "ginr.normalization", "ginr.tiles")
MAX_DECODED = 1 << 33  # bytes an LZMA stream may unpack to: a bomb is refused, not unpacked


@dataclass
class LatentFile:
    latents: torch.Tensor  # (frames, tiles, m, d): integers, in units of `steps`
    steps: torch.Tensor  # (d,) the quantisation step of each channel: the latents are latents * steps
    model_name: str
    fingerprint: str
    source: dict[str, Any]
    normalization: dict[str, float]  # engine.normalize.Normalization.to_dict()
    tiles: dict[str, Any]  # engine.tiling.TileGrid.to_dict()
    format: int = field(default=FORMAT_VERSION)

    def values(self) -> torch.Tensor:
        """The latents the decoder takes: (frames, tiles, m, d) float32."""
        return self.latents.float() * self.steps.float()


def pack_codes(integers: torch.Tensor) -> tuple[bytes, str]:
    """Integers (frames, tiles, m, d) -> (LZMA stream of them in (frames, d, tiles, m) order, dtype)."""
    values = integers.round().to(torch.int64)
    small = values.numel() == 0 or (values.min() >= -128 and values.max() <= 127)
    if not small and (values.min() < -32768 or values.max() > 32767):
        raise ValueError("latent integers beyond int16: the quantisation step is too fine")
    dtype = "int8" if small else "int16"
    array = values.permute(0, 3, 1, 2).numpy().astype("<i1" if small else "<i2")
    return lzma.compress(array.tobytes(), preset=6), dtype


def unpack_codes(stream: bytes, shape: list[int], dtype: str) -> torch.Tensor:
    """The inverse of `pack_codes`: (frames, tiles, m, d) int64. Raises ValueError on a broken stream."""
    width = {"int8": 1, "int16": 2}[dtype]
    need = math.prod(shape) * width
    if need > MAX_DECODED:
        raise ValueError(f"latents of {need} bytes, more than a latent may hold")
    try:
        raw = lzma.LZMADecompressor().decompress(stream, max_length=need + 1)
    except lzma.LZMAError as err:
        raise ValueError(f"broken latent codes ({err})") from err
    if len(raw) != need:
        raise ValueError(f"latent codes of {len(raw)} bytes, their shape {shape} needs {need}")
    array = np.frombuffer(raw, dtype="<i1" if width == 1 else "<i2").reshape(shape[0], shape[3], *shape[1:3])
    return torch.from_numpy(array.astype(np.int64)).permute(0, 2, 3, 1).contiguous()


def save_latent(path: str | Path, latent: LatentFile) -> None:
    stream, dtype = pack_codes(latent.latents)
    metadata = {
        "ginr.format": str(FORMAT_VERSION),
        "ginr.codes": json.dumps({"shape": list(latent.latents.shape), "dtype": dtype}),
        "ginr.model": json.dumps({"name": latent.model_name, "fingerprint": latent.fingerprint}),
        "ginr.source": json.dumps(latent.source),
        "ginr.normalization": json.dumps(latent.normalization),
        "ginr.tiles": json.dumps(latent.tiles),
    }
    tensors = {
        "codes": torch.frombuffer(bytearray(stream), dtype=torch.uint8),
        "steps": latent.steps.float().contiguous(),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_source_metadata(path: str | Path) -> dict[str, Any]:
    """The `ginr.source` metadata of a latent file, checked, without reading its tensors."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except FileNotFoundError as err:
        raise GinrError("no such file", path) from err
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable(path, err) from err
    if "ginr.source" not in metadata:
        raise GinrError("not a ginr latent: its metadata lacks ginr.source", path)
    try:
        return _parse(metadata, "ginr.source")
    except ValueError as err:  # JSONDecodeError is a ValueError
        raise GinrError(f"broken latent metadata: {err}", path) from err


def read_model_name(path: str | Path) -> str | None:
    """The name of the model that wrote a latent (None where its metadata does not say), without reading
    its tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return str(json.loads((f.metadata() or {})["ginr.model"])["name"])
    except (OSError, SafetensorError, ValueError, KeyError, TypeError):
        return None


def _unreadable(path: Path, err: Exception) -> GinrError:
    if path.is_file() and path.stat().st_size == 0:
        return GinrError("empty file (0 bytes), not a latent", path)
    return GinrError(f"not a readable ginr latent ({' '.join(str(err).split())})", path)


# The metadata's schema. Every `ginr.*` value but the format is a JSON object; each of its fields has a test
# and the words for what it must be, which make the one-line error ("ginr.source dpi must be null or two
# positive numbers, not [0, 72]"). Fields that earlier versions did not write may be absent (_ABSENT).
_Rule = tuple[Callable[[Any], bool], str]


def _int(v: Any, least: float = -math.inf) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _number(v: Any, above: float = -math.inf) -> bool:  # finite as a float: no NaN, no 10**400
    return (_int(v) or isinstance(v, float)) and abs(v) <= sys.float_info.max and v > above


def _list(n: int | None, item: Callable[[Any], bool]) -> Callable[[Any], bool]:  # n None: any length
    return lambda v: isinstance(v, list) and n in (None, len(v)) and all(map(item, v))


def _one_of(*choices: Any) -> _Rule:
    return lambda v: any(type(v) is type(c) and v == c for c in choices), " or ".join(map(str, choices))


def _or_null(rule: _Rule) -> _Rule:
    return lambda v: v is None or rule[0](v), f"null or {rule[1]}"


def _numeric_dtype(v: Any) -> bool:
    try:
        return isinstance(v, str) and np.dtype(v).kind in "iuf"
    except (TypeError, ValueError):
        return False


def _base64(v: Any) -> bytes | None:
    try:
        return base64.b64decode(v, validate=True)
    except (TypeError, ValueError):
        return None


def _nifti_header(v: Any) -> bool:
    from ginr_cli.io.volumes import nifti_header

    raw = _base64(v) or b""
    try:  # NIfTI-1 or NIfTI-2
        return len(raw) in (348, 540) and nifti_header(v, nifti2=len(raw) == 540) is not None
    except GinrError:
        return False


_TEXT = (lambda v: isinstance(v, str), "a string")
_INTEGER, _NUMBER = (_int, "an integer"), (_number, "a number")
_SIZES = (_list(None, lambda v: _int(v, 1)), "a list of sizes")
_DTYPE = (_numeric_dtype, "an integer or float type")
_SOURCE = {"kind": _one_of("image", "nifti", "tiff"), "name": _TEXT, "dtype": _DTYPE}  # then by kind:
_IMAGE = _SOURCE | {
    "shape": (_list(2, lambda v: _int(v, 1)), "two sizes"),
    "channels": _one_of(1, 3),
    "format": _TEXT,
    "mode": _TEXT,
    "bit_depth": _one_of(8, 16),
    "alpha": (lambda v: isinstance(v, bool), "true or false"),
    "dpi": _or_null((_list(2, lambda v: _number(v, 0)), "two positive numbers")),
    "icc_profile": _or_null((lambda v: _base64(v) is not None, "base64")),
}
_VOLUME = _SOURCE | {
    "shape": (_list(3, lambda v: _int(v, 1)), "three sizes"),
    "channels": _one_of(1),
    "spacing": (_list(3, lambda v: _number(v, 0)), "three positive numbers"),
    "unit": _TEXT,
    "affine": (_list(4, _list(4, _number)), "4x4 numbers"),
    "axes": _TEXT,
    "header": _or_null((_nifti_header, "a NIfTI header in base64")),
    "sform_code": _INTEGER,
    "qform_code": _INTEGER,
    "slope": _or_null(_NUMBER),
    "inter": _or_null(_NUMBER),
    "metadata": (lambda v: isinstance(v, dict), "an object"),
    "frames": (lambda v: _int(v, 1), "a count of at least 1"),
}
_SCHEMA = {
    "ginr.model": {"name": _TEXT, "fingerprint": _TEXT},
    "ginr.source": {"image": _IMAGE, "nifti": _VOLUME, "tiff": _VOLUME},  # by kind
    "ginr.normalization": {"lo": _NUMBER, "hi": _NUMBER},
    "ginr.tiles": {"shape": _SIZES, "tile": _SIZES, "overlap": (lambda v: _int(v, 0), "a count")},
    "ginr.codes": {
        "shape": (_list(4, lambda v: _int(v, 0)), "four counts (frames, tiles, m, d)"),
        "dtype": _one_of("int8", "int16"),
    },
}
_ABSENT = {"alpha": False, "dpi": None, "icc_profile": None, "header": None, "metadata": {}, "frames": 1}


def _parse(metadata: dict[str, str], key: str) -> dict[str, Any]:
    """The JSON object under `key`, its fields checked; else ValueError, naming the first field that fails."""
    value = json.loads(metadata[key])
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not a JSON object")
    fields = _SCHEMA[key] if key != "ginr.source" else _SCHEMA[key].get(str(value.get("kind")), _SOURCE)
    absent = [name for name in fields if name not in value and name not in _ABSENT]
    if absent:
        raise ValueError(f"{key} lacks {', '.join(absent)}")
    for name, (test, what) in fields.items():
        if not test(value.get(name, _ABSENT.get(name))):
            raise ValueError(f"{key} {name} must be {what}, not {reprlib.repr(value[name])}")
    return value


def check_tiles(tiles: Any, shape: list[int]) -> None:
    """Raise ValueError unless `tiles` is a tile grid (`engine.tiling.TileGrid.to_dict`) of a source of
    `shape`: the model's tile clipped to the source per axis, so a thin axis has a thin tile, and an
    overlap narrower than the model's tile (the widest), or any where one tile holds the whole source."""
    grid_shape, tile, overlap = list(tiles["shape"]), list(tiles["tile"]), tiles["overlap"]
    if (
        grid_shape != list(shape)
        or len(tile) != len(shape)
        or not all(_int(v) and 0 < v for v in grid_shape + tile)
        or tile != [min(max(tile), n) for n in grid_shape]
        or not _int(overlap)
        or not (0 <= overlap < max(tile) or (tile == grid_shape and overlap >= 0))
    ):
        raise ValueError(f"tile grid {tiles} does not fit the source shape {shape}")


def _frames(source: dict) -> int:
    """How many frames of latents the source needs: colour (+ alpha) for images, time points for volumes."""
    if source["kind"] == "image":
        return 2 if source.get("alpha") else 1
    return source.get("frames", 1)


def load_latent(
    path: str | Path, fingerprint: str | None = None, latent_shape: tuple[int, int] | None = None
) -> LatentFile:
    """Read and validate a latent file. With `fingerprint` (and the model's (m, d) for this file as
    `latent_shape`), refuse a latent made by another model."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            names = sorted(f.keys())
            tensors = {name: f.get_tensor(name) for name in names} if names == ["codes", "steps"] else None
    except FileNotFoundError as err:
        raise GinrError("no such file", path) from err
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable(path, err) from err
    version = metadata.get("ginr.format")
    if version == "1" and "ginr.source" in metadata:
        raise GinrError(
            "latent format 1 (float latents, written by ginr before format 2) is no longer read: "
            "encode the source again with this ginr",
            path,
        )
    if tensors is None:
        raise GinrError(f"not a ginr latent: expected tensors 'codes' and 'steps', found {names}", path)
    missing = [k for k in KEYS if k not in metadata]
    if missing:
        raise GinrError(f"not a ginr latent: metadata lacks {', '.join(missing)}", path)
    try:
        version = int(version)
        if version != FORMAT_VERSION:
            raise GinrError(
                f"latent format {version} is newer than this ginr reads ({FORMAT_VERSION}): upgrade ginr"
                if version > FORMAT_VERSION
                else f"unknown latent format {version}",
                path,
            )
        model, source, norm, tiles, codes = (
            _parse(metadata, f"ginr.{key}") for key in ("model", "source", "normalization", "tiles", "codes")
        )
        if not norm["hi"] > norm["lo"]:
            raise ValueError("normalisation range is empty")
        check_tiles(tiles, source["shape"])
    except GinrError:
        raise
    except ValueError as err:  # JSONDecodeError is a ValueError
        raise GinrError(f"broken latent metadata: {err}", path) from err
    name, fp, code_shape, code_dtype = model["name"], model["fingerprint"], codes["shape"], codes["dtype"]
    steps, stream = tensors["steps"], tensors["codes"]
    if stream.dim() != 1 or stream.dtype != torch.uint8:
        raise GinrError(f"codes of shape {tuple(stream.shape)}, {stream.dtype}: expected uint8 bytes", path)
    if steps.shape != (code_shape[3],) or not steps.is_floating_point() or not bool((steps > 0).all()):
        raise GinrError(
            f"steps of shape {tuple(steps.shape)}: expected {code_shape[3]} positive numbers", path
        )
    if code_shape[0] != _frames(source):
        need = _frames(source)
        raise GinrError(f"{code_shape[0]} frames of latents, the source metadata needs {need}", path)
    if fingerprint is not None and fp != fingerprint:
        raise GinrError(
            f"made by model '{name}' (fingerprint {fp}), not by the model given (fingerprint {fingerprint}): "
            f"decode it with the model that encoded it",
            path,
        )
    if latent_shape is not None and tuple(code_shape[2:]) != tuple(latent_shape):
        raise GinrError(
            f"latents of shape (m, d) = {tuple(code_shape[2:])}, the model needs {tuple(latent_shape)}", path
        )
    try:
        integers = unpack_codes(stream.numpy().tobytes(), code_shape, code_dtype)
    except ValueError as err:
        raise GinrError(str(err), path) from err
    normalization = {"lo": float(norm["lo"]), "hi": float(norm["hi"])}
    return LatentFile(integers, steps.float(), name, fp, source, normalization, tiles, version)


def describe_latent(path: str | Path) -> dict[str, Any]:
    """What `ginr info` shows of a latent file."""
    path = Path(path)
    latent = load_latent(path)
    source = latent.source
    facts = {
        "path": str(path),
        "format": latent.format,
        "model": latent.model_name,
        "fingerprint": latent.fingerprint,
        "source": f"{source['kind']} {source.get('name', '')}".strip(),
        "shape": "x".join(map(str, source["shape"])),
        "channels": source["channels"],
        "dtype": source["dtype"],
        "latents (frames, tiles, m, d)": "x".join(map(str, latent.latents.shape)),
        "tile grid": f"{latent.tiles['tile']} overlap {latent.tiles['overlap']}",
        "size KiB": round(path.stat().st_size / 1024, 1),
        "bits per " + ("pixel" if source["kind"] == "image" else "voxel"): round(
            8 * path.stat().st_size / max(1, math.prod(source["shape"])), 4
        ),
    }
    if "spacing" in source:
        facts["spacing"] = (
            " x ".join(f"{v:g}" for v in source["spacing"]) + f" {source.get('unit', '')}".rstrip()
        )
    return facts
