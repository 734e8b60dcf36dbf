"""Atomic, durable file writes: write to a temporary file in the same folder, fsync it, rename it over the
target, fsync the folder.

An interrupted run leaves either the old file or the new one, never half a file, and after a power cut
never an empty file under the final name; the temporary name starts with '.' and ends with '.part' so it
is easy to recognise and is never taken for an output.

Its writer holds an exclusive lock (flock) on the temporary file until the rename. The lock dies with its
process, so a process killed outright (SIGKILL, power loss) leaves an unlocked temporary file, which the
next write of the same target removes; a temporary file that is still locked belongs to a live writer
(another run writing to the same folder) and is left alone. Where there is no flock (Windows), nothing is
swept.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ginr_cli.errors import GinrError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

TEMP_SUFFIX = ".part"


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on `fd` without waiting; False where another open file holds one."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _sweep(folder: Path, name: str) -> None:
    """Remove the temporary files of `name` that no live process is writing (their lock is free)."""
    if fcntl is None:
        return
    for stale in folder.glob(glob.escape(f".{name}.") + "*" + TEMP_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(stale, os.O_RDONLY)
            try:  # unlink only the file we locked: the name may since have gone to another
                if _try_lock(fd) and os.fstat(fd).st_ino == os.stat(stale).st_ino:
                    stale.unlink()
            finally:
                os.close(fd)


def _locked_temp(folder: Path, name: str) -> tuple[int, Path]:
    """A new temporary file for `name`, open and locked. A sweeper can lock and remove it in the instant
    before we lock it: then the name no longer leads to our file, and we make another."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=folder)
        if fcntl is None:
            return fd, Path(tmp)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(tmp).st_ino:
                return fd, Path(tmp)
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; Windows cannot open a folder)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is synced and renamed to `target`, on error
    removed.

    The temporary name does not end in the target's extension, so writers that choose a format by
    extension must be told the format explicitly.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _sweep(folder, target.name)  # left by a killed run that was writing this target
        fd, tmp = _locked_temp(folder, target.name)
    except OSError as err:
        raise GinrError(f"cannot write here: {err.strerror or err}", target) from err
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        with open(tmp, "rb+") as written:  # the writer may have replaced the file our fd holds
            os.fsync(written.fileno())
        os.replace(tmp, target)
        fsync_folder(folder)
    except OSError as err:
        raise GinrError(f"cannot write: {err.strerror or err}", target) from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.close(fd)  # releases the lock, after the rename or the removal
