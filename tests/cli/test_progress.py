"""Progress inside a file: every command that tiles reports its tiles, and on a terminal a second bar shows
them while a file takes more than one batch."""

import sys

import nibabel as nib
import numpy as np

from ginr_cli.cli.progress import Reporter
from ginr_cli.engine.batch import Job, Outcome
from tests.cli.conftest import ANATOMICAL


def record_tiles(monkeypatch) -> list[tuple[int, int]]:
    counts: list[tuple[int, int]] = []
    monkeypatch.setattr(Reporter, "tiles", lambda self, done, total: counts.append((done, total)))
    return counts


def assert_one_run_to_the_end(counts):
    dones = [d for d, _ in counts]
    totals = {t for _, t in counts}
    assert len(counts) > 1 and len(totals) == 1 and dones == sorted(set(dones)) and dones[-1] == totals.pop()


def test_upscale_encode_and_decode_count_their_tiles(
    ginr, mixed_folder, model_2d, model_3d, tmp_path, monkeypatch
):
    counts = record_tiles(monkeypatch)
    result = ginr(
        "upscale", mixed_folder / "a.jpg", tmp_path / "a.png", "--scale", 2, "--batch", 2, "--model", model_2d
    )
    assert result.exit_code == 0, result.output
    assert_one_run_to_the_end(counts)

    # A 4D volume: its two frames count as one run of tiles.
    data = np.asanyarray(nib.load(ANATOMICAL).dataobj)[:14, :12, :10]
    nib.save(nib.Nifti1Image(np.stack([data, data[::-1]], -1), np.eye(4)), tmp_path / "t.nii.gz")
    for command in (
        ("upscale", tmp_path / "t.nii.gz", tmp_path / "t2.nii.gz", "--scale", 1),
        ("encode", tmp_path / "t.nii.gz", "-o", tmp_path / "latents"),
        ("decode", tmp_path / "latents" / "t.safetensors", "-o", tmp_path / "t3.nii.gz"),
    ):
        counts.clear()
        result = ginr(*command, "--batch", 3, "--model", model_3d)
        assert result.exit_code == 0, result.output
        assert_one_run_to_the_end(counts)
        assert counts[-1][1] % 2 == 0


def test_the_tile_bar_shows_only_while_a_file_takes_more_than_one_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    jobs = [Job(tmp_path / f"{n}.png", tmp_path / "out" / f"{n}.png") for n in ("big", "small")]
    reporter = Reporter(len(jobs), "upscale")
    bar = reporter.progress.tasks[reporter.tile_task]

    reporter.start(0, jobs[0])
    reporter.tiles(8, 24)
    assert bar.visible and (bar.completed, bar.total) == (8, 24)
    reporter.tiles(24, 24)
    assert bar.visible and bar.finished
    reporter.end(0, Outcome(jobs[0], "done"))
    assert not bar.visible

    reporter.start(1, jobs[1])  # one batch: done at the first count, no bar
    reporter.tiles(3, 3)
    assert not bar.visible
    reporter.end(1, Outcome(jobs[1], "done"))
    reporter.progress.stop()
