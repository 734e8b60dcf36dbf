"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

An interrupted run leaves either the old file or the new one, never half a file; the temporary name
starts with '.' and ends with '.part' so it is easy to recognise and is never taken for an output.
A process killed outright (SIGKILL, power loss) cannot remove its temporary file: the next write of
the same target removes it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ginr_cli.errors import GinrError

TEMP_SUFFIX = ".part"


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is renamed to `target`, on error removed.

    The temporary name does not end in the target's extension, so writers that choose a format by
    extension must be told the format explicitly.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(glob.escape(f".{target.name}.") + "*" + TEMP_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()  # left by a killed run that was writing this target
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=folder)
        os.close(fd)
    except OSError as err:
        raise GinrError(f"cannot write here: {err.strerror or err}", target) from err
    tmp = Path(tmp_name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, target)
    except OSError as err:
        raise GinrError(f"cannot write: {err.strerror or err}", target) from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
