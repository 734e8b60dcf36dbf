"""The one error type for problems a user can fix (bad file, bad option, wrong model)."""

from __future__ import annotations

from pathlib import Path


class GinrError(Exception):
    """A problem the user can fix. The CLI prints it as one line and exits with `exit_code`.

    `path` names the file concerned, when there is one; `str(err)` is the full one-line message.
    """

    exit_code = 1  # an input failed

    def __init__(self, message: str, path: str | Path | None = None):
        self.message = message
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class UsageError(GinrError):
    """The command line itself is wrong (an option value, a missing argument): exit code 2."""

    exit_code = 2
