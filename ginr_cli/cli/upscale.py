"""`ginr upscale INPUT OUTPUT`: images and volumes, one file or whole folders, at any scale."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ginr_cli.cli.common import (
    BatchOption,
    DeviceOption,
    DtypeOption,
    JsonOption,
    ModelOption,
    OverwriteOption,
    PrecisionOption,
    QuietOption,
    RecursiveOption,
    VerboseOption,
    report_errors,
)


def input_kind(path: Path, forced: str) -> str | None:
    """'image', 'volume', or None for files ginr does not read."""
    from ginr_cli.io.images import is_image_path
    from ginr_cli.io.volumes import is_volume_path

    if forced != "auto":
        return forced if (is_image_path(path) or is_volume_path(path)) else None
    if is_volume_path(path):
        return "volume"
    return "image" if is_image_path(path) else None


@report_errors
def upscale(
    input: Annotated[
        Path,
        typer.Argument(
            help="An image or volume file (NIfTI, TIFF stack, DICOM), or a folder of them; each DICOM series in a folder is one volume."
        ),
    ],
    output: Annotated[Path, typer.Argument(help="Output folder (or file path when INPUT is one file).")],
    scale: Annotated[
        str | None,
        typer.Option(
            "--scale",
            "-s",
            help="Factor: one (2, 1.5, 3.7) or one per axis, comma-separated: images x,y; volumes in the file's axis order (1,1,2.5).",
        ),
    ] = None,
    size: Annotated[str | None, typer.Option(help="Images: output WIDTHxHEIGHT.")] = None,
    width: Annotated[int | None, typer.Option(min=1, help="Images: output width, aspect kept.")] = None,
    height: Annotated[int | None, typer.Option(min=1, help="Images: output height, aspect kept.")] = None,
    spacing: Annotated[
        str | None, typer.Option(help="Volumes: target voxel size, one or per axis (mm for NIfTI).")
    ] = None,
    like: Annotated[
        Path | None, typer.Option(help="Volumes: produce the grid of this reference NIfTI.")
    ] = None,
    kind: Annotated[
        str, typer.Option(help="auto, image or volume (auto: NIfTI and multi-page TIFF are volumes).")
    ] = "auto",
    suffix: Annotated[str, typer.Option(help="Added to output names, e.g. _x4.")] = "",
    ext: Annotated[
        str,
        typer.Option(
            help="Output format by extension (png, tif, jpg, webp, nii.gz ...), or auto: the input's."
        ),
    ] = "auto",
    quality: Annotated[
        int | None, typer.Option(min=1, max=100, help="JPEG/WebP quality (default: JPEG 95, WebP lossless).")
    ] = None,
    dtype: DtypeOption = "keep",
    adapt: Annotated[
        int,
        typer.Option(
            min=0,
            help="Volumes: gradient steps fitting the model to each scan first, from the scan itself (its sharp axes teach the thick one).",
        ),
    ] = 0,
    ensemble: Annotated[
        bool,
        typer.Option(
            "--ensemble",
            help="Average the model over the flips of each tile (4 for images, 8 for volumes): a little sharper, that many times slower.",
        ),
    ] = False,
    consistency: Annotated[
        bool,
        typer.Option(
            help="Volumes upscaled by whole factors: shift each block of output voxels so that it averages to the input voxel it came from.",
        ),
    ] = True,
    tile: Annotated[int | None, typer.Option(min=4, help="Tile side (default: the model's).")] = None,
    batch: BatchOption = 8,
    max_pixels: Annotated[
        int | None, typer.Option(min=1, help="Refuse larger images (decompression bombs); default 178956970.")
    ] = None,
    recursive: RecursiveOption = False,
    overwrite: OverwriteOption = False,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Upscale (or resample) images and volumes at any scale, with exact geometry.

    \b
    Examples:
      ginr upscale photos/ out/ --scale 4
      ginr upscale scan.nii.gz scan_z.nii.gz --scale 1,1,2.5
    """
    from ginr_cli.cli.common import BatchRun, Models, precision_context
    from ginr_cli.engine import targets
    from ginr_cli.engine.batch import plan_jobs
    from ginr_cli.engine.infer import pick_device
    from ginr_cli.engine.upscale import Target, upscale_file
    from ginr_cli.errors import UsageError

    if dtype not in ("keep", "float32"):
        raise UsageError(f"--dtype must be keep or float32, not {dtype!r}")
    if kind not in ("auto", "image", "volume"):
        raise UsageError(f"--kind must be auto, image or volume, not {kind!r}")
    targets.check_exclusive(
        {
            "--scale": scale,
            "--size": size,
            "--width/--height": width or height,
            "--spacing": spacing,
            "--like": like,
        }
    )
    target = Target(
        scale=tuple(targets.parse_floats(scale, "--scale")) if scale else None,
        size=targets.parse_size(size) if size else None,
        width=width,
        height=height,
        spacing=tuple(targets.parse_floats(spacing, "--spacing")) if spacing else None,
        like=str(like) if like else None,
    )
    out_ext = None if ext == "auto" else "." + ext.lower().lstrip(".")
    plan = plan_jobs(
        [input],
        output,
        lambda p: input_kind(p, kind) is not None,
        recursive,
        suffix,
        ext=(lambda src: out_ext) if out_ext else None,
        dicom=True,
    )
    torch_device = pick_device(device)
    models = Models(model, torch_device)
    batch_run = BatchRun(plan, overwrite, "upscale", quiet, verbose, as_json)
    with precision_context(precision, torch_device):
        batch_run.run(
            lambda job: upscale_file(
                models,
                torch_device,
                job.series or job.src,
                job.dst,
                target,
                "volume" if job.series else input_kind(job.src, kind),
                tile=tile,
                batch=batch,
                max_pixels=max_pixels,
                quality=quality,
                dtype=None if dtype == "keep" else dtype,
                on_tiles=batch_run.reporter.tiles,
                adapt=adapt,
                ensemble=ensemble,
                consistency=consistency,
            )
        )
