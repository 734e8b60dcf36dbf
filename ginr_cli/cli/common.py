"""What every command shares: error reporting, output options and device choice."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from ginr_cli.errors import GinrError

F = TypeVar("F", bound=Callable)

JsonOption = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Print more detail.")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="A shipped model's name or a model folder. Default: chosen by the input's kind."
    ),
]
DeviceOption = Annotated[
    str, typer.Option("--device", help="auto (CUDA when present), cpu, cuda, cuda:N or mps.")
]


def report_errors(command: F) -> F:
    """Turn a GinrError into one line on stderr and its exit code; a traceback only with GINR_DEBUG=1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GinrError as err:
            if os.environ.get("GINR_DEBUG") == "1":
                raise
            print(f"ginr: error: {err}", file=sys.stderr)
            raise typer.Exit(err.exit_code) from None

    return wrapper  # type: ignore[return-value]
