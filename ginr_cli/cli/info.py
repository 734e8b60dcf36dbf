"""`ginr info PATH`: what an image, a volume, a latent or a model folder holds, and what ginr would do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ginr_cli.cli.common import JsonOption, report_errors


def describe_input(path: Path) -> dict:
    """An image's or a volume's facts, with the model `upscale` would use and what `--scale 2` writes."""
    from ginr_cli.cli.common import DEFAULT_MODELS
    from ginr_cli.cli.upscale import input_kind
    from ginr_cli.engine import targets
    from ginr_cli.errors import GinrError
    from ginr_cli.io.images import describe_image
    from ginr_cli.io.volumes import describe_volume

    kind = input_kind(path, "auto")
    if kind is None:
        raise GinrError("not a file ginr reads: a latent (.safetensors), an image, a NIfTI or a TIFF", path)
    if kind == "image":
        facts = describe_image(path)
        h, w = (int(v) for v in reversed(facts["size upright"].split("x")))
        out_h, out_w = targets.image_shape((h, w), (2.0,))
        frames = f", {facts['frames']} frames" if facts["frames"] > 1 else ""
        wrote = f"{out_w}x{out_h} {facts['format']}{frames}"
    else:
        facts = describe_volume(path)
        shape = [int(v) for v in facts["shape"].split("x")]
        out = targets.volume_shape(shape, (2.0,))
        wrote = f"{'x'.join(map(str, out))} {facts['format']} {facts['dtype']}, voxels half the size"
    facts["upscale model"] = DEFAULT_MODELS[kind]
    facts["upscale --scale 2 writes"] = wrote
    return facts


@report_errors
def info(
    path: Annotated[
        str,
        typer.Argument(
            help="An image, a NIfTI or TIFF volume, a latent .safetensors file, a model folder or a shipped model's name."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Show what a file or a model holds: an image's size, mode, depth, alpha, ICC, orientation, DPI and
    frames; a volume's shape, voxel size, affine and dtype (with what upscale would write); a latent's
    model, source and sizes; a model's architecture.

    \b
    Examples:
      ginr info photo.png
      ginr info scan.safetensors --json
      ginr info image
    """
    from ginr_cli.io.checkpoints import describe_model, find_model
    from ginr_cli.io.latents import describe_latent

    file = Path(path)
    if not file.is_file():
        facts = describe_model(find_model(path))
    elif file.name.lower().endswith(".safetensors"):
        facts = describe_latent(file)
    else:
        facts = describe_input(file)
    if as_json:
        typer.echo(json.dumps(facts))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(Path(facts["path"])), show_header=False)
    for key, value in facts.items():
        table.add_row(key, str(value))
    Console().print(table)
