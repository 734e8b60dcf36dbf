"""`ginr decode LATENT... -o OUT`: render latents at any resolution, region or slice."""

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
    QuietOption,
    VerboseOption,
    report_errors,
)


def parse_roi(text: str) -> list[tuple[float, float]]:
    """'10:50,0:64' -> [(10, 50), (0, 64)]: a box in source pixels/voxels, per axis in the file's order."""
    from ginr_cli.errors import UsageError

    try:
        box = [tuple(float(v) for v in part.split(":")) for part in text.split(",")]
    except ValueError as err:
        raise UsageError(f"--roi must look like 10:50,0:64 (start:stop per axis), not {text!r}") from err
    if any(len(r) != 2 or not r[1] > r[0] for r in box):
        raise UsageError(f"--roi ranges must be start:stop with stop > start, not {text!r}")
    return box


@report_errors
def decode(
    latents: Annotated[list[Path], typer.Argument(help="Latent .safetensors files (or folders of them).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output folder (or file path for one latent).")
    ],
    scale: Annotated[
        str | None,
        typer.Option(
            "--scale", "-s", help="Factor, one or per axis (images x,y; volumes in the file's axis order)."
        ),
    ] = None,
    size: Annotated[str | None, typer.Option(help="Images: output WIDTHxHEIGHT.")] = None,
    spacing: Annotated[str | None, typer.Option(help="Volumes: target voxel size, one or per axis.")] = None,
    roi: Annotated[
        str | None,
        typer.Option(help="Only this box, in source pixels per axis (file order): 10:50,0:64[,...]."),
    ] = None,
    slice_: Annotated[
        str | None,
        typer.Option("--slice", help="Volumes: only one slice, AXIS=POSITION in source voxels, e.g. 2=90."),
    ] = None,
    ext: Annotated[str, typer.Option(help="Output format by extension, or auto: the source's.")] = "auto",
    quality: Annotated[int | None, typer.Option(min=1, max=100, help="JPEG/WebP quality.")] = None,
    dtype: DtypeOption = "keep",
    batch: BatchOption = 8,
    overwrite: OverwriteOption = False,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Decode latents to images or volumes at any resolution; --roi and --slice decode only that part.

    \b
    Examples:
      ginr decode scan.safetensors -o scan_1mm.nii.gz --spacing 1
      ginr decode scan.safetensors -o axial.nii.gz --slice 2=90
    """
    from ginr_cli.cli.common import BatchRun, Models
    from ginr_cli.engine import targets
    from ginr_cli.engine.batch import plan_jobs, split_name
    from ginr_cli.engine.codec import decode_file, peek_model, peek_source
    from ginr_cli.engine.infer import pick_device
    from ginr_cli.errors import GinrError, UsageError

    if dtype not in ("keep", "float32"):
        raise UsageError(f"--dtype must be keep or float32, not {dtype!r}")
    targets.check_exclusive({"--scale": scale, "--size": size, "--spacing": spacing})
    scale_v = targets.parse_floats(scale, "--scale") if scale else None
    size_v = targets.parse_size(size) if size else None
    spacing_v = targets.parse_floats(spacing, "--spacing") if spacing else None
    box = parse_roi(roi) if roi else None
    if slice_ is not None:
        try:
            axis_text, position_text = slice_.split("=")
            axis, position = int(axis_text), float(position_text)
        except ValueError as err:
            raise UsageError(f"--slice must be AXIS=POSITION, e.g. 2=90, not {slice_!r}") from err
    out_ext = None if ext == "auto" else "." + ext.lower().lstrip(".")

    def name_for(src: Path) -> str:
        if out_ext:
            return out_ext
        try:
            return split_name(Path(peek_source(src)["name"]))[1]
        except GinrError:  # a broken latent: the job fails with the reason when it runs
            return ".decoded"

    plan = plan_jobs(latents, output, lambda p: p.name.endswith(".safetensors"), ext=name_for)
    torch_device = pick_device(device)
    models = Models(model, torch_device, codec=True)

    def out_shape_of(source: dict) -> tuple[int, ...]:
        shape = source["shape"]
        if source["kind"] == "image":
            return targets.image_shape(tuple(shape), scale_v, size_v, default=1.0)
        return targets.volume_shape(shape, scale_v, spacing_v, source.get("spacing"), default=1.0)

    def run(job):
        kind = peek_source(job.src)["kind"]
        net, fp = models("image" if kind == "image" else "volume", peek_model(job.src))
        plane = None
        if slice_ is not None:
            shape = peek_source(job.src)["shape"]
            if kind == "image" or not 0 <= axis < len(shape) or not -0.5 <= position <= shape[axis] - 0.5:
                raise UsageError(f"--slice {slice_} is outside this {len(shape)}D input of shape {shape}")
            plane = (axis, position)
        kept = None if dtype == "keep" else dtype
        return decode_file(
            net,
            fp,
            torch_device,
            job.src,
            job.dst,
            out_shape_of,
            box,
            plane,
            batch,
            quality,
            kept,
            reporter.tiles,
        )

    batch_run = BatchRun(plan, overwrite, "decode", quiet, verbose, as_json)
    reporter = batch_run.reporter
    batch_run.run(run)
