"""Output grid sizes from what users type: a scale (one, or one per axis), a size, a width or height,
a target voxel spacing. Every rule keeps the field of view; sizes are rounded and at least 1."""

from __future__ import annotations

from collections.abc import Sequence

from ginr_cli.errors import UsageError


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
    if len(values) == 1:
        return list(values) * rank
    if len(values) != rank:
        raise UsageError(f"{what} takes 1 or {rank} values for this input, got {len(values)}")
    return list(values)


def scaled_shape(shape: Sequence[int], scales: Sequence[float]) -> tuple[int, ...]:
    return tuple(max(1, round(n * s)) for n, s in zip(shape, scales, strict=True))


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
    given = sum(v is not None for v in (scale, size)) + (width is not None or height is not None)
    if given > 1:
        raise UsageError("give only one of --scale, --size, or --width/--height")
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
    if sum(v is not None for v in (scale, spacing, like_shape)) > 1:
        raise UsageError("give only one of --scale, --spacing or --like")
    if like_shape is not None:
        return tuple(like_shape)
    if spacing is not None:
        if source_spacing is None:
            raise UsageError("--spacing needs a source with a known voxel size")
        target = per_axis(spacing, len(shape), "--spacing")
        return scaled_shape(shape, [old / new for old, new in zip(source_spacing, target, strict=True)])
    return scaled_shape(shape, per_axis(scale or [default], len(shape), "--scale"))
