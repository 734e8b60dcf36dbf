"""The `ginr` command line: a Typer app with one module per command."""

from ginr_cli.cli.app import main

__all__ = ["main"]
