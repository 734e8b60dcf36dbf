"""Output grid sizes from what users type: a scale (one, or one per axis), a size, a width or height,
a target voxel spacing. Every rule keeps the field of view; sizes are rounded and at least 1."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from ginr_cli.errors import GinrError, UsageError
from ginr_cli.io.geometry import output_shape


def parse_floats(text: str, what: str) -> list[float]:
    """'2' -> [2.0]; '1,1,2.5' -> [1.0, 1.0, 2.5]; every value must be positive."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as err:
        raise UsageError(f"{what} must be a number or comma-separated numbers, not {text!r}") from err
    if not values or any(not v > 0 or v != v or v == float("inf") for v in values):
        raise UsageError(f"{what} values must be positive and finite, not {text!r}")
    return values


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080): width x height."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise UsageError(f"--size must be WIDTHxHEIGHT, e.g. 1920x1080, not {text!r}") from err
    if w < 1 or h < 1:
        raise UsageError(f"--size must be positive, not {text!r}")
    return w, h


def per_axis(values: Sequence[float], rank: int, what: str) -> list[float]:
    """One value for every axis, or one per axis. A count that does not fit is this input's failure
    (in a folder of 2D and 3D files, `--scale 1,1,2` fits only the volumes)."""
    if len(values) == 1:
        return list(values) * rank
    if len(values) != rank:
        raise GinrError(f"{what} takes 1 or {rank} values for this {rank}D input, got {len(values)}")
    return list(values)


def scaled_shape(shape: Sequence[int], scales: Sequence[float]) -> tuple[int, ...]:
    """n * s per axis, rounded half up, at least 1 (`io.geometry.output_shape`)."""
    return output_shape(shape, scales)


def image_shape(
    hw: tuple[int, int],
    scale: Sequence[float] | None = None,
    size: tuple[int, int] | None = None,
    width: int | None = None,
    height: int | None = None,
    default: float = 4.0,
) -> tuple[int, int]:
    """Output (h, w) of an image. `scale` is one value or (x, y), like --size's width x height; with
    nothing given, `default` for both axes."""
    h, w = hw
    if size is not None:
        return size[1], size[0]
    if width is not None or height is not None:
        if width is not None and height is not None:
            return height, width
        ratio = width / w if width is not None else height / h
        return scaled_shape((h, w), (ratio, ratio))  # aspect kept
    sx, sy = per_axis(scale or [default], 2, "--scale")
    return scaled_shape((h, w), (sy, sx))


def volume_shape(
    shape: Sequence[int],
    scale: Sequence[float] | None = None,
    spacing: Sequence[float] | None = None,
    source_spacing: Sequence[float] | None = None,
    like_shape: Sequence[int] | None = None,
    default: float = 2.0,
) -> tuple[int, ...]:
    """Output shape of a volume, in the file's axis order: by scale, by target voxel spacing (the field of
    view kept, so n * old / new voxels), or the grid of a reference file."""
    if like_shape is not None:
        return tuple(like_shape)
    if spacing is not None:
        if source_spacing is None:
            raise UsageError("--spacing needs a source with a known voxel size")
        target = per_axis(spacing, len(shape), "--spacing")
        return scaled_shape(shape, [old / new for old, new in zip(source_spacing, target, strict=True)])
    return scaled_shape(shape, per_axis(scale or [default], len(shape), "--scale"))


def check_exclusive(given: dict[str, object]) -> None:
    """Refuse, before any file is read, options that each fix the output size: only one may be given.
    `given` maps option names to their values (None when not given)."""
    named = [name for name, value in given.items() if value is not None]
    if len(named) > 1:
        raise UsageError(f"give only one of {', '.join(named)}: each sets the output size")


def physical_memory() -> int | None:
    """This machine's memory in bytes, where the OS says (POSIX); None elsewhere."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_output_fits(shape: Sequence[int], channels: int, label: str) -> None:
    """Refuse, before any work, an output whose float32 render buffer alone is larger than this machine's
    memory (a typo like --scale 1000): one clear line instead of an out-of-memory failure much later.
    `label` is the output size as the user reads it (WIDTHxHEIGHT for images)."""
    need, total = math.prod(shape) * channels * 4, physical_memory()
    if total is not None and need > total:
        raise GinrError(
            f"the output would be {label} ({need / 2**30:,.1f} GiB as float32), more than this machine's "
            f"{total / 2**30:.1f} GiB of memory: ask for a smaller output"
        )
