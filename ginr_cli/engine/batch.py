"""Batches of files: which outputs to write where, and a loop that goes on past bad files.

- Outputs keep the input's relative path and name (`suffix` and `ext` may change the name).
- An existing output is skipped unless `overwrite`, so rerunning an interrupted batch resumes it.
- An output is never one of the inputs; a recursive scan does not follow links out of the input folder.
- One file's failure (a GinrError) is recorded and the batch goes on; Ctrl+C stops after cleaning up
  (outputs are written atomically, so nothing half-written is left).
- Nothing in a folder is passed over in silence: files of a type the command does not read are counted by
  extension ("not read"), and system clutter (`is_clutter`) is counted as ignored, never processed nor
  failed. A folder with nothing the command reads is an error before anything is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ginr_cli.errors import GinrError, UsageError
from ginr_cli.io.dicom import is_dicom_file

DOUBLE_SUFFIXES = (".nii.gz",)
CLUTTER_NAMES = ("thumbs.db", "desktop.ini", ".ds_store", "ehthumbs.db")  # Windows and macOS leave these


def is_clutter(path: Path) -> bool:
    """Files the operating system leaves in photo folders: AppleDouble `._*` (macOS metadata, not the
    image its name ends with), Thumbs.db, desktop.ini, .DS_Store."""
    return path.name.startswith("._") or path.name.lower() in CLUTTER_NAMES


def kind_of_name(path: Path) -> str:
    """How an unread file is counted: its extension in lower case, '(no extension)' without one."""
    return split_name(path)[1].lower() or "(no extension)"


def split_name(path: Path) -> tuple[str, str]:
    """('scan', '.nii.gz') for scan.nii.gz; ('photo', '.jpg') for photo.jpg."""
    name = path.name
    for double in DOUBLE_SUFFIXES:
        if name.lower().endswith(double):
            return name[: -len(double)], name[-len(double) :]
    return path.stem, path.suffix


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    problem: str = ""  # why it cannot be done: a file named explicitly that the command does not read
    series: Any = None  # a DICOM series (`io.dicom.Series`) read from the files of `src`, a folder


def _series_jobs(files: list[Path], root: Path, output: Path, suffix: str, ext) -> list[Job]:
    """A job for each DICOM series among `files` (found under `root`), output beside the others of its
    folder; a failing job for each file that is not part of one (no image in it, unreadable)."""
    if not files:
        return []
    from ginr_cli.io.dicom import find_series

    series, problems = find_series(files)
    jobs, taken = [], set()
    for one in series:
        name = one.name
        if (one.folder, name) in taken:  # two studies' series of one number and description in one folder
            name += "_" + one.uid.rsplit(".", 1)[-1][-8:]
        taken.add((one.folder, name))
        dst = output / one.folder.relative_to(root) / (name + suffix + ext(one.folder))
        jobs.append(Job(one.folder, dst, series=one))
    for path, problem in problems:
        jobs.append(Job(path, output / path.relative_to(root).parent / (path.name + suffix), problem))
    return jobs


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        if not recursive:
            dirnames.clear()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                continue  # a link out of the input folder
            yield path


@dataclass
class Plan:
    """A batch's jobs, and the files of its folders that are not jobs: `unread` (a type the command does
    not read) and `ignored` (clutter, `is_clutter`)."""

    jobs: list[Job]
    unread: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)


def plan_jobs(
    inputs: list[Path],
    output: Path,
    accept: Callable[[Path], bool],
    recursive: bool = False,
    suffix: str = "",
    ext: Callable[[Path], str] | None = None,
    dicom: bool = False,
) -> Plan:
    """Jobs for every accepted file of `inputs` (files or folders). `ext(src)` gives the output extension
    (with the dot); by default the input's. A single input file may have an output file path. With
    `dicom`, the DICOM files of each folder are grouped into series, a job each, named after the series
    (`io.dicom`; by default written as .nii.gz). Folders holding nothing to do raise a GinrError."""
    series_ext = ext or (lambda folder: ".nii.gz")
    ext = ext or (lambda src: split_name(src)[1])
    jobs, unread, ignored = [], [], []
    for item in inputs:
        if item.is_dir():
            slices: list[Path] = []
            for src in _walk(item, recursive):
                if is_clutter(src):
                    ignored.append(src)
                elif accept(src):
                    rel = src.relative_to(item).parent
                    jobs.append(Job(src, output / rel / (split_name(src)[0] + suffix + ext(src))))
                elif dicom and is_dicom_file(src):
                    slices.append(src)
                else:
                    unread.append(src)
            jobs += _series_jobs(slices, item, output, suffix, series_ext)
        elif item.exists():
            if dicom and not accept(item) and is_dicom_file(item):  # one file: a multi-frame series
                jobs += _series_jobs([item], item.parent, output, suffix, series_ext)
                continue
            single_file_output = len(inputs) == 1 and not output.is_dir() and split_name(output)[1] != ""
            dst = output if single_file_output else output / (split_name(item)[0] + suffix + ext(item))
            problem = "" if accept(item) else "not a kind of file this command reads (see --help)"
            if is_clutter(item):
                problem = "a file the operating system keeps (macOS ._ metadata, Thumbs.db...), not data"
            jobs.append(Job(item, dst, problem))
        else:
            raise UsageError("no such file or folder", item)
    if not jobs:
        where = inputs[0] if len(inputs) == 1 else None
        raise GinrError(f"nothing here this command reads ({describe_unread(unread, ignored)})", where)
    # Two inputs that would write the same output (a.png and a.webp with --ext png): one result would be
    # lost, or, writing beside the inputs, one input overwritten. Names alone cannot tell which is meant.
    first_to_write: dict[Path, Job] = {}
    for job in jobs:
        other = first_to_write.setdefault(job.dst.resolve(), job)
        if other is not job:
            raise UsageError(
                f"two inputs, {other.src} and {job.src}, would be written to this one output: "
                "rename one or run them separately",
                job.dst,
            )
    # Writing beside the inputs (same folder, a --suffix): files that are some job's output, from an
    # earlier run, are not inputs themselves, so a rerun resumes instead of upscaling the outputs.
    made_by = {job.dst.resolve(): job.src.resolve() for job in jobs}
    jobs = [job for job in jobs if made_by.get(job.src.resolve(), job.src.resolve()) == job.src.resolve()]
    sources = {job.src.resolve() for job in jobs}
    for job in jobs:
        if job.dst.resolve() in sources:
            raise UsageError(
                "this output would overwrite an input: choose another folder, --suffix or --ext", job.dst
            )
    return Plan(jobs, unread, ignored)


def count_unread(unread: list[Path]) -> dict[str, int]:
    """{'.txt': 2, '(no extension)': 1}: the unread files by kind, most first."""
    counts: dict[str, int] = {}
    for path in unread:
        counts[kind_of_name(path)] = counts.get(kind_of_name(path), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def describe_unread(unread: list[Path], ignored: list[Path]) -> str:
    """'not read: .txt 2, .doc 1; ignored: 3 system files', or 'no files' for an empty folder."""
    parts = []
    if unread:
        parts.append("not read: " + ", ".join(f"{k} {n}" for k, n in count_unread(unread).items()))
    if ignored:
        parts.append(f"ignored: {len(ignored)} system file{'s' * (len(ignored) != 1)}")
    return "; ".join(parts) or "no files"


@dataclass
class Outcome:
    job: Job
    status: str  # "done", "skipped" or "failed"
    message: str = ""
    seconds: float = 0.0
    result: Any = None


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False
    unread: list[Path] = field(default_factory=list)  # from the Plan: not jobs, but reported
    ignored: list[Path] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else 1 if self.failures else 0

    def to_dict(self) -> dict:
        return {
            "done": self.count("done"),
            "skipped": self.count("skipped"),
            "failed": [{"input": str(o.job.src), "error": o.message} for o in self.failures],
            "interrupted": self.interrupted,
            "outputs": [str(o.job.dst) for o in self.outcomes if o.status == "done"],
            "not_read": count_unread(self.unread),
            "ignored": len(self.ignored),
            "not_read_files": [str(p) for p in self.unread],
            "ignored_files": [str(p) for p in self.ignored],
            **({"results": results} if (results := self._results()) else {}),
        }

    def _results(self) -> list[dict]:
        """Per-file figures of the commands that report them (encode: size, bits, ratios, PSNR)."""
        return [
            {"input": str(o.job.src), "output": str(o.job.dst), **o.result.to_dict()}
            for o in self.outcomes
            if o.status == "done" and hasattr(o.result, "to_dict")
        ]


def run_jobs(
    jobs: list[Job],
    process: Callable[[Job], Any],
    overwrite: bool = False,
    on_start: Callable[[int, Job], None] | None = None,
    on_end: Callable[[int, Outcome], None] | None = None,
) -> Summary:
    """Run `process` on each job in turn. Ctrl+C (KeyboardInterrupt) anywhere in the loop stops it with
    `summary.interrupted` set; the file being written then leaves nothing behind (atomic writes)."""
    summary = Summary()
    watch = None  # (index, job, its output's identity before it ran)
    try:
        for index, job in enumerate(jobs):
            watch = (index, job, _identity(job.dst))
            if on_start:
                on_start(index, job)
            outcome = _run_one(job, process, overwrite)
            summary.outcomes.append(outcome)
            if on_end:
                on_end(index, outcome)
    except KeyboardInterrupt:
        summary.interrupted = True
        # Ctrl+C between the output's rename and its outcome: the file is complete, so it counts as done
        if watch and watch[0] == len(summary.outcomes) and _identity(watch[1].dst) not in (None, watch[2]):
            summary.outcomes.append(Outcome(watch[1], "done"))
    return summary


def _identity(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of `path`, None where it does not exist: tells a file just written from an old one."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _run_one(job: Job, process: Callable[[Job], Any], overwrite: bool) -> Outcome:
    started = time.perf_counter()
    if job.problem:
        outcome = Outcome(job, "failed", job.problem)
    elif job.dst.exists() and not overwrite:
        outcome = Outcome(job, "skipped", "output exists (use --overwrite to redo it)")
    else:
        try:
            outcome = Outcome(job, "done", result=process(job))
        except UsageError:  # the command line is wrong for every file: stop, exit 2
            raise
        except GinrError as err:
            message = err.message if err.path in (None, job.src) else str(err)
            outcome = Outcome(job, "failed", _one_line(message))
        except MemoryError:
            outcome = Outcome(
                job, "failed", "out of memory: ask for a smaller output or use a smaller --batch"
            )
        except Exception as err:  # a bug, not the file's fault: report it and go on with the batch
            if os.environ.get("GINR_DEBUG") == "1":
                raise
            detail = _one_line(f"{type(err).__name__}: {err}")
            outcome = Outcome(job, "failed", f"unexpected error ({detail}); GINR_DEBUG=1 shows more")
    outcome.seconds = time.perf_counter() - started
    return outcome


def _one_line(text: str) -> str:
    return " ".join(text.split())
