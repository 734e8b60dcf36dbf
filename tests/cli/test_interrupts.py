"""Interruptions of real `ginr` processes: SIGKILL in the middle of a folder leaves no partial output
and a rerun finishes only the rest, to the same bytes; SIGINT stops cleanly with a summary and exit 130;
a training run killed after a checkpoint resumes on the same loss curve."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from safetensors import safe_open

from ginr_cli.io.atomic import TEMP_SUFFIX
from tests.cli.conftest import file_bytes, hr_crop

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GINR_DEBUG": ""}
NAMES = [f"photo {i}.png" for i in range(6)]  # a space in every name, for good measure


def ginr_process(*args) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ginr_cli", *map(str, args)]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll every 5 ms until `condition()`; fail if the process ends first or it takes too long."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the process ended (exit {process.returncode}) before the moment to stop it:\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out waiting for the moment to stop the process")
        time.sleep(0.005)


def outputs(folder: Path) -> list[str]:
    return (
        sorted(p.name for p in folder.iterdir() if not p.name.endswith(TEMP_SUFFIX))
        if folder.exists()
        else []
    )


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Six 128 x 96 photos: each takes a visible fraction of a second to upscale with the tiny model."""
    folder = tmp_path_factory.mktemp("interrupts") / "photos"
    folder.mkdir()
    for i, name in enumerate(NAMES):
        hr_crop(1 + i % 5, (8 * i, 8 * i, 8 * i + 128, 8 * i + 96)).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def reference(ginr, photos, model_2d, tmp_path_factory) -> dict[str, bytes]:
    """The same batch, uninterrupted (in-process, one thread like the subprocesses)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = ginr("upscale", photos, out, "--scale", "2", "--model", model_2d, "--batch", "1")
    assert result.exit_code == 0, result.output
    return file_bytes(out)


def test_sigkill_midway_leaves_no_partial_output_and_a_rerun_finishes_the_rest(
    photos, model_2d, reference, tmp_path
):
    out = tmp_path / "out"
    args = ("upscale", photos, out, "--scale", "2", "--model", model_2d, "--batch", "1")
    process = ginr_process(*args)
    wait_for(lambda: len(outputs(out)) >= 1, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL

    done = outputs(out)
    assert 1 <= len(done) < len(NAMES), done  # stopped midway
    for name in done:  # every file with an output's name is that output, complete
        assert (out / name).read_bytes() == reference[name], name
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    assert all(name.startswith(".") for name in leftovers)  # at most a hidden temporary file
    # as if the kill had come while the next file was being written (it may have: then there are two)
    pending = sorted(set(NAMES) - set(done))[0]
    (out / f".{pending}.k1ll3d{TEMP_SUFFIX}").write_bytes(b"half a file")

    rerun = subprocess.run(
        [sys.executable, "-m", "ginr_cli", *map(str, args), "--json"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["skipped"] == len(done) and summary["done"] == len(NAMES) - len(done)
    assert sorted(Path(p).name for p in summary["outputs"]) == sorted(set(NAMES) - set(done))
    assert file_bytes(out) == reference  # byte for byte, and no temporary file left (the rerun removed it)


def test_sigint_stops_cleanly_with_a_summary_and_exit_130(photos, model_2d, tmp_path):
    out = tmp_path / "out"
    process = ginr_process("upscale", photos, out, "--scale", "2", "--model", model_2d, "--batch", "1")
    wait_for(lambda: len(outputs(out)) >= 1, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    assert "interrupted: no partial outputs were left; rerun the same command to finish" in stderr
    done = outputs(out)
    assert f"upscale: {len(done)} done, 0 skipped, 0 failed" in stdout + stderr
    assert 1 <= len(done) < len(NAMES)
    assert [p.name for p in out.iterdir() if p.name.endswith(TEMP_SUFFIX)] == []
    for name in done:
        with Image.open(out / name) as im:
            im.load()  # complete
            assert im.size == (256, 192)


def losses(run: Path) -> list[tuple[int, float]]:
    with (run / "log.csv").open() as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def test_training_killed_after_a_checkpoint_resumes_on_the_same_loss_curve(ginr, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        hr_crop(1 + i, (0, 0, 64, 56)).save(data / f"p{i}.png")
    options = ["train", "--data", data, "--steps", "8", "--batch", "2", "--queries", "64", "--warmup", "2",
               "--checkpoint-every", "2", "--validate-every", "100", "--log-every", "1", "--seed", "3",
               "--device", "cpu", "-q"]  # fmt: skip

    straight = tmp_path / "straight"
    result = ginr(*options, "--out", straight)
    assert result.exit_code == 0, result.output

    killed = tmp_path / "killed"
    trainer = killed / "checkpoint" / "trainer.safetensors"
    process = ginr_process(*options, "--out", killed)
    wait_for(trainer.exists, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not (killed / "model").exists()  # killed before the end
    with safe_open(str(trainer), framework="pt") as f:
        checkpoint_step = int(f.metadata()["step"])
    assert checkpoint_step in (2, 4, 6)

    resumed = subprocess.run(
        [sys.executable, "-m", "ginr_cli", *map(str, options), "--out", str(killed), "--resume"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert [s for s, _ in losses(killed)] == list(range(1, 9))
    for (s1, l1), (s2, l2) in zip(losses(straight), losses(killed), strict=True):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-4, abs=1e-6), (s1, l1, l2)


def test_ctrl_c_before_the_batch_starts_also_exits_130(ginr, photos, model_2d, tmp_path, monkeypatch):
    from ginr_cli.engine import batch

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "plan_jobs", interrupted)
    result = ginr("upscale", photos, tmp_path / "out", "--model", model_2d)
    assert result.exit_code == 130
    assert result.stderr == "ginr: interrupted\n"
    assert not (tmp_path / "out").exists()
