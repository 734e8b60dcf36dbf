"""Atomic writes: durable (file and folder synced around the rename), and a write never removes the
temporary file of another live writer of the same folder, only those of killed ones."""

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from ginr_cli.io import atomic
from ginr_cli.io.atomic import TEMP_SUFFIX, atomic_path

# A second run writing `target`: it takes its temporary file, writes, says so in `ready`, and renames
# only once `go` exists (or never, when killed first).
WRITER = """
import sys, time
from pathlib import Path
from ginr_cli.io.atomic import atomic_path

target, ready, go = map(Path, sys.argv[1:])
with atomic_path(target) as tmp:
    tmp.write_text("from the other run")
    ready.write_text(tmp.name)
    while not go.exists():
        time.sleep(0.02)
"""


def _start_writer(tmp_path, target):
    ready, go = tmp_path / "ready", tmp_path / "go"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), str(ready), str(go)], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not ready.exists() or not ready.read_text():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
        time.sleep(0.02)
    return process, target.parent / ready.read_text(), go


def test_two_runs_writing_one_folder_keep_each_others_temporary_files(tmp_path):
    target = tmp_path / "out" / "a.png"
    other, other_tmp, go = _start_writer(tmp_path, target)
    with atomic_path(target) as tmp:  # this run sweeps the folder while the other is mid-write
        tmp.write_text("from this run")
    assert other_tmp.exists() and target.read_text() == "from this run"
    with atomic_path(tmp_path / "out" / "b.png") as tmp:  # and writes another file there
        tmp.write_text("b")
    go.touch()
    _, stderr = other.communicate(timeout=60)
    assert other.returncode == 0, stderr  # its rename found its file: before, it failed "cannot write"
    assert target.read_text() == "from the other run"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.png", "b.png"]


def test_the_temporary_file_of_a_killed_run_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "a.png"
    other, other_tmp, _ = _start_writer(tmp_path, target)
    other.send_signal(signal.SIGKILL)
    other.communicate(timeout=60)
    assert other_tmp.exists()  # a killed run cannot clean up
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)) == []
    assert target.read_text() == "new"


def test_the_file_is_synced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        fsync(fd)

    def spy_replace(src, dst):
        events.append("rename")
        replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", spy_fsync)
    monkeypatch.setattr(atomic.os, "replace", spy_replace)
    with atomic_path(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"data")
    assert events == ["fsync file", "rename", "fsync folder"]
    assert (tmp_path / "a.bin").read_bytes() == b"data"


def test_a_failed_write_leaves_neither_target_nor_temporary_file(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []
