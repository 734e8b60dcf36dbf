"""The latent file: one `.safetensors` per input.

Tensors:  "latents"  (frames, tiles, m, d), float16 by default (float32 on request).
Metadata: str -> str, JSON under `ginr.*` keys:
    ginr.format         format version (an integer); a newer one than this ginr knows is refused
    ginr.model          {"name", "fingerprint"} of the model that encoded it; decoding needs the same model
    ginr.source         what is needed to write the output like the source: kind ("image" | "nifti" |
                        "tiff"), shape (spatial), channels, dtype, and the kind's geometry and metadata
    ginr.normalization  {"lo", "hi"}: model units back to the source's units
    ginr.tiles          {"shape", "tile", "overlap"}: the tile grid, tiles in raster order (axis 0 slowest)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ginr_cli.errors import GinrError
from ginr_cli.io.atomic import atomic_path

FORMAT_VERSION = 1
KEYS = ("ginr.format", "ginr.model", "ginr.source", "ginr.normalization", "ginr.tiles")
SOURCE_KEYS = ("kind", "shape", "channels", "dtype")


@dataclass
class LatentFile:
    latents: torch.Tensor  # (frames, tiles, m, d)
    model_name: str
    fingerprint: str
    source: dict[str, Any]
    normalization: dict[str, float]  # engine.normalize.Normalization.to_dict()
    tiles: dict[str, Any]  # engine.tiling.TileGrid.to_dict()
    format: int = field(default=FORMAT_VERSION)


def save_latent(path: str | Path, latent: LatentFile, dtype: torch.dtype = torch.float16) -> None:
    metadata = {
        "ginr.format": str(FORMAT_VERSION),
        "ginr.model": json.dumps({"name": latent.model_name, "fingerprint": latent.fingerprint}),
        "ginr.source": json.dumps(latent.source),
        "ginr.normalization": json.dumps(latent.normalization),
        "ginr.tiles": json.dumps(latent.tiles),
    }
    with atomic_path(path) as tmp:
        save_file({"latents": latent.latents.to(dtype).contiguous()}, str(tmp), metadata=metadata)


def read_source_metadata(path: str | Path) -> dict[str, Any]:
    """The `ginr.source` metadata of a latent file, without reading its tensors."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            source = json.loads((f.metadata() or {})["ginr.source"])
        if not isinstance(source, dict) or any(k not in source for k in SOURCE_KEYS):
            raise ValueError("incomplete source metadata")
        return source
    except FileNotFoundError as err:
        raise GinrError("no such file", path) from err
    except KeyError as err:
        raise GinrError(f"not a ginr latent: its metadata lacks {err.args[0]}", path) from err
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        raise GinrError(f"not a readable ginr latent ({err})", path) from err


def load_latent(
    path: str | Path, fingerprint: str | None = None, latent_shape: tuple[int, int] | None = None
) -> LatentFile:
    """Read and validate a latent file. With `fingerprint` (and the model's (m, d) as `latent_shape`), refuse
    a latent made by another model."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            names = list(f.keys())
            tensor = f.get_tensor("latents") if names == ["latents"] else None
    except FileNotFoundError as err:
        raise GinrError("no such file", path) from err
    except (SafetensorError, OSError, ValueError) as err:
        raise GinrError(f"not a readable latent file ({err})", path) from err
    if tensor is None:
        raise GinrError(f"not a ginr latent: expected one tensor 'latents', found {names}", path)
    missing = [k for k in KEYS if k not in metadata]
    if missing:
        raise GinrError(f"not a ginr latent: metadata lacks {', '.join(missing)}", path)
    try:
        version = int(metadata["ginr.format"])
        if version > FORMAT_VERSION:
            raise GinrError(
                f"latent format {version} is newer than this ginr reads ({FORMAT_VERSION}): upgrade ginr",
                path,
            )
        model = json.loads(metadata["ginr.model"])
        name, fp = str(model["name"]), str(model["fingerprint"])
        source = json.loads(metadata["ginr.source"])
        absent = [k for k in SOURCE_KEYS if k not in source]
        if absent:
            raise ValueError(f"source metadata lacks {', '.join(absent)}")
        normalization = {k: float(v) for k, v in json.loads(metadata["ginr.normalization"]).items()}
        if not normalization["hi"] > normalization["lo"]:
            raise ValueError("normalisation range is empty")
        tiles = json.loads(metadata["ginr.tiles"])
        shape, tile, overlap = list(tiles["shape"]), list(tiles["tile"]), int(tiles["overlap"])
        if (
            shape != list(source["shape"])
            or len(tile) != len(shape)
            or not all(isinstance(v, int) and 0 < v for v in shape + tile)
            or not 0 <= overlap < min(tile)
        ):
            raise ValueError(f"tile grid {tiles} does not fit the source shape {source['shape']}")
    except GinrError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # JSONDecodeError is a ValueError
        raise GinrError(f"broken latent metadata: {err}", path) from err
    if tensor.dim() != 4 or not tensor.is_floating_point():
        raise GinrError(
            f"latents of shape {tuple(tensor.shape)}, {tensor.dtype}: expected float (frames, tiles, m, d)",
            path,
        )
    if fingerprint is not None and fp != fingerprint:
        raise GinrError(
            f"made by model '{name}' (fingerprint {fp}), not by the model given (fingerprint {fingerprint}): "
            f"decode it with the model that encoded it",
            path,
        )
    if latent_shape is not None and tuple(tensor.shape[2:]) != tuple(latent_shape):
        raise GinrError(
            f"latents of shape (m, d) = {tuple(tensor.shape[2:])}, the model needs {latent_shape}", path
        )
    return LatentFile(tensor.float(), name, fp, source, normalization, tiles, version)


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
    }
    if "spacing" in source:
        facts["spacing"] = (
            " x ".join(f"{v:g}" for v in source["spacing"]) + f" {source.get('unit', '')}".rstrip()
        )
    return facts
