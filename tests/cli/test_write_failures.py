"""Failures on write: a read-only output folder, a disk that fills up in the middle of a file or at the
final rename. The error names the output, the input is untouched, no temporary file remains, exit 1,
and the other files of the batch are done."""

import errno
import os

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from ginr_cli.io import atomic, volumes
from ginr_cli.io.atomic import TEMP_SUFFIX
from tests.cli.conftest import file_bytes, hr_crop

FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def inputs(tmp_path):
    """good.png and doomed.png (its write will fail)."""
    folder = tmp_path / "in"
    folder.mkdir()
    hr_crop(1, (0, 0, 16, 12)).save(folder / "good.png")
    hr_crop(2, (0, 0, 16, 12)).save(folder / "doomed.png")
    return folder


def check_failed_write(result, inputs, before, out, doomed: list[str], reason: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed  ")]
    assert len(failed) == len(doomed), result.stderr
    for name, line in zip(sorted(doomed), sorted(failed), strict=True):
        # the output is named, with the reason
        assert line.startswith(f"failed  {inputs / name}: {out / name}: ") and reason in line, line
    assert file_bytes(inputs) == before  # the inputs are untouched
    written = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not any(name.endswith(TEMP_SUFFIX) for name in written), written  # no temporary file
    assert not set(doomed) & set(written)


def half_then_full(write):
    """A writer that puts half a file on disk, then finds the disk full."""

    def failing(*args, **kwargs):
        write(*args, **kwargs)
        tmp = next(a for a in args if isinstance(a, os.PathLike | str) and str(a).endswith(TEMP_SUFFIX))
        with open(tmp, "r+b") as f:
            f.truncate(os.path.getsize(tmp) // 2)
        raise FULL

    return failing


def test_the_disk_fills_up_while_writing(ginr, inputs, model_2d, model_3d, tmp_path, monkeypatch):
    out = tmp_path / "out"
    before = file_bytes(inputs)
    save = Image.Image.save

    def save_or_fill_up(self, fp, *args, **kwargs):
        write = half_then_full(save) if "doomed" in str(fp) else save
        return write(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_or_fill_up)
    result = ginr("upscale", inputs, out, "-s", "2", "--model", model_2d)
    check_failed_write(result, inputs, before, out, ["doomed.png"], os.strerror(errno.ENOSPC))
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]  # the other file is done

    volume = tmp_path / "scans" / "doomed.nii.gz"
    volume.parent.mkdir()
    nib.save(nib.Nifti1Image(np.arange(512, dtype=np.int16).reshape(8, 8, 8), np.eye(4)), volume)
    before = file_bytes(volume.parent)
    monkeypatch.setattr(volumes, "_write_nifti", half_then_full(volumes._write_nifti))
    result = ginr("upscale", volume, tmp_path / "vol", "-s", "2", "--model", model_3d)
    check_failed_write(
        result, volume.parent, before, tmp_path / "vol", ["doomed.nii.gz"], os.strerror(errno.ENOSPC)
    )


def test_the_disk_is_full_at_the_final_rename(ginr, inputs, model_2d, tmp_path, monkeypatch):
    out = tmp_path / "out"
    before = file_bytes(inputs)
    replace = os.replace

    def replace_or_full(src, dst):
        if "doomed" in str(dst):
            raise FULL
        return replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_or_full)
    result = ginr("upscale", inputs, out, "-s", "2", "--model", model_2d)
    monkeypatch.undo()
    check_failed_write(
        result, inputs, before, out, ["doomed.png"], f"cannot write: {os.strerror(errno.ENOSPC)}"
    )
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]


def test_an_output_folder_that_cannot_be_written(ginr, inputs, model_2d, tmp_path, monkeypatch):
    """Simulated (as root, chmod does not stop writes): creating the temporary file is refused."""
    out = tmp_path / "out"
    out.mkdir()
    before = file_bytes(inputs)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    result = ginr("upscale", inputs / "good.png", out, "-s", "2", "--model", model_2d)
    monkeypatch.undo()
    check_failed_write(
        result, inputs, before, out, ["good.png"], f"cannot write here: {os.strerror(errno.EACCES)}"
    )
    assert list(out.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_output_folder(ginr, inputs, model_2d, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    before = file_bytes(inputs)
    out.chmod(0o555)
    try:
        result = ginr("upscale", inputs / "good.png", out, "-s", "2", "--model", model_2d)
    finally:
        out.chmod(0o755)
    check_failed_write(result, inputs, before, out, ["good.png"], "cannot write here")
