"""`ginr encode INPUT... -o OUT`: images and volumes to compact `.safetensors` latents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ginr_cli.cli.common import (
    BatchOption,
    DeviceOption,
    JsonOption,
    ModelOption,
    OverwriteOption,
    QuietOption,
    RecursiveOption,
    VerboseOption,
    report_errors,
)


@report_errors
def encode(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Image or volume files, or folders of them; each DICOM series in a folder is one volume."
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output folder (or .safetensors path for one input).")
    ],
    kind: Annotated[str, typer.Option(help="auto, image or volume.")] = "auto",
    quality: Annotated[
        int, typer.Option(min=1, max=5, help="1 (smallest) to 5 (most faithful): the quantisation step.")
    ] = 3,
    refine: Annotated[
        int,
        typer.Option(
            min=0,
            help="Gradient steps fitting the latents to each file, the decoder frozen (default 0: with the "
            "shipped codecs they only trade size for fidelity along the --quality curve).",
        ),
    ] = 0,
    check: Annotated[
        bool, typer.Option("--check", help="Decode back at scale 1 and report the PSNR.")
    ] = False,
    tile: Annotated[int | None, typer.Option(min=4, help="Tile side (default: the model's).")] = None,
    batch: BatchOption = 8,
    max_pixels: Annotated[
        int | None, typer.Option(min=1, help="Refuse larger images (decompression bombs).")
    ] = None,
    recursive: RecursiveOption = False,
    overwrite: OverwriteOption = False,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Encode images or volumes to latents: one .safetensors per input; prints sizes and ratios.

    \b
    Examples:
      ginr encode scan.nii.gz -o scan.safetensors --check
      ginr encode photos/ -o latents/ --quality 2 --json
    """
    from ginr_cli.cli.common import BatchRun, Models
    from ginr_cli.cli.upscale import input_kind
    from ginr_cli.engine.batch import plan_jobs
    from ginr_cli.engine.codec import encode_file
    from ginr_cli.engine.infer import pick_device

    plan = plan_jobs(
        inputs,
        output,
        lambda p: input_kind(p, kind) is not None,
        recursive,
        ext=lambda src: ".safetensors",
        dicom=True,
    )
    torch_device = pick_device(device)
    models = Models(model, torch_device, codec=True)

    def run(job):
        which = "volume" if job.series else input_kind(job.src, kind)
        net, fp = models(which)
        return encode_file(
            net,
            fp,
            torch_device,
            job.series or job.src,
            job.dst,
            which,
            tile,
            batch,
            check,
            max_pixels,
            reporter.tiles,
            quality,
            refine,
            lambda done, total: reporter.tiles(done, total, "  refine"),
        )

    batch_run = BatchRun(plan, overwrite, "encode", quiet, True if not quiet else verbose, as_json)
    reporter = batch_run.reporter
    batch_run.run(run)
