"""What every command shares: error reporting, output options and device choice."""

from __future__ import annotations

import contextlib
import functools
import logging
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
    """Turn a GinrError into one line on stderr and its exit code; a traceback only with GINR_DEBUG=1.
    Ctrl+C outside a batch's own handling (loading, planning) exits 130 too, not click's 'Aborted!' 1.
    With `-v` (a command's `verbose`), the package's INFO log lines show on stderr while it runs."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with _info_logs(bool(kwargs.get("verbose"))):
                return command(*args, **kwargs)
        except GinrError as err:
            if os.environ.get("GINR_DEBUG") == "1":
                raise
            print(f"ginr: error: {err}", file=sys.stderr)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            print("ginr: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _info_logs(verbose: bool):
    """INFO lines of the `ginr_cli` loggers (what was chosen, and why) on stderr for the command's run;
    warnings show without it, through logging's last-resort handler, as the same bare lines."""
    if not verbose:
        yield
        return
    logger, handler = logging.getLogger("ginr_cli"), logging.StreamHandler(sys.stderr)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


PrecisionOption = Annotated[
    str, typer.Option("--precision", help="auto (fp32 on CPU, bf16 on CUDA), fp32, bf16, fp16.")
]
DtypeOption = Annotated[
    str, typer.Option("--dtype", help="Volumes: output data type, keep (the source's) or float32.")
]
BatchOption = Annotated[int, typer.Option("--batch", min=1, help="Tiles encoded at once (bounds memory).")]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Redo outputs that already exist.")]
RecursiveOption = Annotated[bool, typer.Option("--recursive", "-r", help="Also process subfolders.")]

DEFAULT_MODELS = {"image": "image", "volume": "volume"}
DEFAULT_CODECS = {"image": "image-codec", "volume": "volume-codec"}  # encode and decode


class Models:
    """Loads the model for each kind of input on first use: `--model` if given, else the shipped default."""

    def __init__(self, choice: str | None, device, codec: bool = False):
        self.choice, self.device, self.loaded = choice, device, {}
        self.defaults = DEFAULT_CODECS if codec else DEFAULT_MODELS

    def __call__(self, kind: str, recorded: str | None = None):
        """The model for `kind`: --model, else `recorded` (the model a latent names) when it is a shipped
        model, else the default."""
        from ginr_cli.errors import GinrError
        from ginr_cli.io.checkpoints import find_model, load_model, shipped_models

        name = self.choice or (recorded if recorded in shipped_models() else self.defaults[kind])
        if name not in self.loaded:
            self.loaded[name] = load_model(find_model(name), self.device)
        model, fp = self.loaded[name]
        if model.cfg.rank != (2 if kind == "image" else 3):
            raise GinrError(
                f"model '{model.cfg.name}' is for {'images' if model.cfg.rank == 2 else 'volumes'}, not {kind}s"
            )
        return model, fp


def precision_context(precision: str, device):
    """Autocast for bf16/fp16; fp32 (the CPU default) runs as is."""
    import contextlib

    import torch

    from ginr_cli.errors import UsageError

    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise UsageError(f"--precision must be auto, fp32, bf16 or fp16, not {precision!r}")
    return torch.autocast(device.type, dtype=dtypes[precision])


class BatchRun:
    """A batch in this process, or this rank's share of it under torchrun (`engine.shard`): its progress
    `reporter`, then `run(process)`, which prints one summary (rank 0's, merged) and exits with its code."""

    def __init__(self, plan, overwrite: bool, verb: str, quiet: bool, verbose: bool, as_json: bool):
        from ginr_cli.cli.progress import Reporter
        from ginr_cli.engine import shard

        self.plan = plan  # engine.batch.Plan: every rank plans alike, so rank 0's unread files are all
        self.ranks = shard.current()
        shard.join(self.ranks)
        self.part = shard.share(plan.jobs, self.ranks, overwrite)
        self.overwrite = overwrite
        lead = self.ranks.rank == 0  # the other ranks print only their failures as they happen
        self.reporter = Reporter(len(self.part.jobs), verb, quiet or not lead, verbose, as_json and lead)

    def run(self, process) -> None:
        from ginr_cli.engine import shard
        from ginr_cli.engine.batch import run_jobs

        summary = run_jobs(self.part.jobs, process, self.overwrite, self.reporter.start, self.reporter.end)
        merged = shard.gather(summary, self.part, self.ranks)
        shard.leave(self.ranks)
        if merged is None:  # rank 0 reports for everyone
            raise typer.Exit(0)
        merged.unread, merged.ignored = self.plan.unread, self.plan.ignored
        self.reporter.finish(merged)
        raise typer.Exit(merged.exit_code)
