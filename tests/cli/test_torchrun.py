"""Batches under torchrun: two CPU ranks (gloo) share a folder. Every input is written exactly once, the
outputs equal a one-process run, one merged summary comes from rank 0, a failing file is reported and the
rest done, and a run killed midway (every process, SIGKILL) is finished by a rerun."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ginr_cli.io.atomic import TEMP_SUFFIX
from tests.cli.conftest import hr_crop
from tests.cli.test_interrupts import outputs, wait_for

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GINR_DEBUG": ""}
NAMES = [f"photo {i}.png" for i in range(6)]


def torchrun(*args) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node 2 -m ginr_cli ARGS`, in a process group of its own."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "ginr_cli", *map(str, args)]
    return subprocess.Popen(
        cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Six photos of different sizes (so balancing by size differs from balancing by count)."""
    folder = tmp_path_factory.mktemp("torchrun") / "photos"
    folder.mkdir()
    for i, name in enumerate(NAMES):
        w, h = 64 + 24 * i, 48 + 8 * (5 - i)
        hr_crop(1 + i % 5, (4 * i, 4 * i, 4 * i + w, 4 * i + h)).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def reference(ginr, photos, model_2d, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "out"
    result = ginr("upscale", photos, out, "--scale", "2", "--model", model_2d, "--batch", "1")
    assert result.exit_code == 0, result.output
    return out


def assert_same_images(folder: Path, reference: Path) -> None:
    assert outputs(folder) == sorted(NAMES)
    for name in NAMES:
        got = np.asarray(Image.open(folder / name), np.int16)
        want = np.asarray(Image.open(reference / name), np.int16)
        assert got.shape == want.shape and np.abs(got - want).max() <= 1, name


def test_two_ranks_write_every_input_once_as_one_process_does(photos, model_2d, reference, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = finish(
        torchrun("upscale", photos, out, "--scale", "2", "--model", model_2d, "--json")
    )
    assert code == 0, stderr
    [line] = stdout.strip().splitlines()  # one summary, from rank 0
    summary = json.loads(line)
    assert summary["done"] == len(NAMES) and summary["failed"] == [] and not summary["interrupted"]
    assert sorted(summary["outputs"]) == sorted(str(out / n) for n in NAMES)  # each exactly once
    assert_same_images(out, reference)


def test_a_failing_file_is_reported_once_and_the_rest_done(photos, model_2d, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in NAMES[:3]:
        (folder / name).write_bytes((photos / name).read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n and then nothing")
    code, stdout, stderr = finish(
        torchrun("upscale", folder, tmp_path / "out", "--scale", "2", "--model", model_2d)
    )
    assert code != 0
    assert stdout.count("upscale: 3 done, 0 skipped, 1 failed") + stderr.count("upscale: 3 done") == 1
    assert outputs(tmp_path / "out") == sorted(NAMES[:3])
    assert "broken.png" in stderr


def test_killed_midway_a_rerun_finishes_the_rest(photos, model_2d, reference, tmp_path):
    out = tmp_path / "out"
    args = ("upscale", photos, out, "--scale", "2", "--model", model_2d, "--batch", "1")
    process = torchrun(*args)
    wait_for(lambda: len(outputs(out)) >= 1, process, timeout=240)
    os.killpg(process.pid, signal.SIGKILL)  # torchrun and both ranks at once
    process.wait(timeout=60)
    assert len(outputs(out)) < len(NAMES)
    code, stdout, stderr = finish(torchrun(*args, "--json"))
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["done"] + summary["skipped"] == len(NAMES) and summary["skipped"] >= 1
    assert not [p for p in out.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    assert_same_images(out, reference)


def test_ctrl_c_stops_every_rank_cleanly(photos, model_2d, tmp_path):
    out = tmp_path / "out"
    process = torchrun("upscale", photos, out, "--scale", "2", "--model", model_2d, "--batch", "1")
    wait_for(lambda: len(outputs(out)) >= 1, process, timeout=240)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl+C does: the whole foreground group
    code, stdout, stderr = finish(process)
    assert code != 0
    assert stderr.count("interrupted: no partial outputs were left") >= 1
    assert "/ginr_cli/" not in stderr  # no rank died with a traceback (torchrun prints its own)
    assert not [p for p in out.iterdir() if p.name.endswith(TEMP_SUFFIX)]
