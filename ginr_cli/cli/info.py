"""`ginr info FILE`: what a model folder holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ginr_cli.cli.common import JsonOption, report_errors


@report_errors
def info(
    path: Annotated[
        str, typer.Argument(help="A latent .safetensors file, a model folder or a shipped model's name.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Show what a latent file or a model folder holds: model, source, shape, spacing, sizes.

    \b
    Examples:
      ginr info scan.safetensors --json
      ginr info image
    """
    from ginr_cli.io.checkpoints import describe_model, find_model
    from ginr_cli.io.latents import describe_latent

    is_file = Path(path).is_file()
    facts = describe_latent(path) if is_file else describe_model(find_model(path))
    if as_json:
        typer.echo(json.dumps(facts))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(Path(facts["path"])), show_header=False)
    for key, value in facts.items():
        table.add_row(key, str(value))
    Console().print(table)
