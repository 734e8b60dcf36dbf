"""Progress for batches: a rich bar (count, rate, ETA) on a terminal, plain lines otherwise, and the
end-of-run summary with every failure listed and the files not read or ignored counted (`-v` names them).
`--json` prints only the summary, as JSON, on stdout.

On a terminal a second bar counts the tiles of the file in progress (with its own ETA), shown once a file
takes more than one batch of tiles: a single large photo or volume can take minutes."""

from __future__ import annotations

import json
import sys

import typer

from ginr_cli.engine.batch import Job, Outcome, Summary, describe_unread


class Reporter:
    def __init__(
        self, total: int, verb: str, quiet: bool = False, verbose: bool = False, as_json: bool = False
    ):
        self.total, self.verb, self.quiet, self.verbose, self.as_json = total, verb, quiet, verbose, as_json
        self.progress = None
        self.tiles_shown = False
        self.tile_label = "  tiles"
        if not quiet and not as_json and sys.stdout.isatty() and total > 0:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[name]}"),
            )
            self.task = self.progress.add_task(verb, total=total, rate="", name="")
            self.tile_task = self.progress.add_task("  tiles", total=None, visible=False, rate="", name="")
            self.progress.start()
        self.elapsed = 0.0

    def _line(self, text: str, err: bool = False) -> None:
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            typer.echo(text, err=err)

    def start(self, index: int, job: Job) -> None:
        if self.progress is not None:
            self.progress.update(self.task, name=job.src.name)
            self.progress.reset(self.tile_task, total=None, visible=False, description="  tiles")
            self.tiles_shown = False
            self.tile_label = "  tiles"

    def tiles(self, done: int, total: int, label: str = "  tiles") -> None:
        """The file in progress has `done` of `total` tiles (or, with another `label`, steps of another
        phase) finished (see tiling.OnTiles)."""
        if self.progress is not None:
            if label != self.tile_label:  # a new phase: its own count and ETA
                self.tile_label = label
                self.progress.reset(self.tile_task, total=total, description=label)
            self.tiles_shown = self.tiles_shown or done < total
            self.progress.update(self.tile_task, completed=done, total=total, visible=self.tiles_shown)

    def end(self, index: int, outcome: Outcome) -> None:
        self.elapsed += outcome.seconds
        if self.progress is not None:
            self.progress.update(self.tile_task, visible=False)
            done = index + 1
            self.progress.update(self.task, advance=1, rate=f"{done / max(self.elapsed, 1e-9):.2f} files/s")
        if outcome.status == "failed":
            self._line(f"failed  {outcome.job.src}: {outcome.message}", err=True)
        elif self.quiet or self.as_json:
            return
        elif outcome.status == "done":
            detail = f" {outcome.result}" if self.verbose and outcome.result is not None else ""
            self._line(
                f"[{index + 1}/{self.total}] {outcome.job.src} -> {outcome.job.dst} ({outcome.seconds:.1f}s){detail}"
            )
        elif self.verbose or self.progress is None:
            self._line(f"[{index + 1}/{self.total}] skipped {outcome.job.dst}: {outcome.message}")

    def finish(self, summary: Summary) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.as_json:
            typer.echo(json.dumps(summary.to_dict()))
            return
        if summary.interrupted:
            typer.echo(
                "interrupted: no partial outputs were left; rerun the same command to finish", err=True
            )
        if not self.quiet:
            passed_over = (
                f"; {describe_unread(summary.unread, summary.ignored)}"
                if summary.unread or summary.ignored
                else ""
            )
            typer.echo(
                f"{self.verb}: {summary.count('done')} done, {summary.count('skipped')} skipped, "
                f"{len(summary.failures)} failed{passed_over}",
                err=bool(summary.failures),
            )
        if self.verbose and not self.quiet:
            for path in summary.unread:
                typer.echo(f"  not read  {path}")
            for path in summary.ignored:
                typer.echo(f"  ignored   {path}")
        for outcome in summary.failures:
            typer.echo(f"  {outcome.job.src}: {outcome.message}", err=True)
