"""The Typer app and its commands (one module each).

Exit codes: 0 all done, 1 some inputs failed, 2 bad usage, 130 interrupted. A traceback is shown only
with GINR_DEBUG=1. Commands import torch lazily, so `ginr --help` answers at once.
"""

from __future__ import annotations

import typer

from ginr_cli import __version__
from ginr_cli.cli import decode, encode, evaluate, info, train, upscale

app = typer.Typer(
    name="ginr",
    help="Upscale images and reconstruct volumes at any resolution with Mamba-GINR.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: rich's help renderer alone costs more than our 0.3 s budget
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ginr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Upscale images and reconstruct volumes at any resolution with Mamba-GINR."""
    _quiet_file_libraries()


def _quiet_file_libraries() -> None:
    """tifffile and nibabel log what they find wrong in a damaged file; ginr reports the file as one
    line instead (the full story with GINR_DEBUG=1)."""
    import logging
    import os

    if os.environ.get("GINR_DEBUG") != "1":
        for name in ("tifffile", "nibabel"):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)


app.command("upscale")(upscale.upscale)
app.command("encode")(encode.encode)
app.command("decode")(decode.decode)
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)
app.command("info")(info.info)


def main() -> None:
    """Entry point of the `ginr` script."""
    app()
