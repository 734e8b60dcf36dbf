"""Paths: a recursive scan stays inside its folder, an output is never an input, and file names with
spaces, quotes and non-ASCII characters work end to end."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from tests.cli.conftest import file_bytes, hr_crop

# --- the input folder and the outputs -----------------------------------------------------------------


@pytest.fixture
def folder_with_links(tmp_path) -> Path:
    """in/a.png, in/sub/b.png, and links: to an image outside, to a folder outside, to in/ itself
    (a cycle), and to a.png inside."""
    root, outside = tmp_path / "in", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    for path in (root / "a.png", root / "sub" / "b.png", outside / "secret.png", outside / "deep.png"):
        hr_crop(2, (0, 0, 16, 12)).save(path)
    (root / "secret.png").symlink_to(outside / "secret.png")
    (root / "linked-folder").symlink_to(outside, target_is_directory=True)
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "alias.png").symlink_to(root / "a.png")
    return root


def test_a_recursive_scan_does_not_follow_links_out_of_the_input_folder(
    ginr, folder_with_links, model_2d, tmp_path
):
    out = tmp_path / "out"
    result = ginr("upscale", folder_with_links, out, "-r", "-s", "2", "--model", model_2d, "--json")
    assert result.exit_code == 0, result.output
    assert sorted(file_bytes(out)) == ["a.png", "alias.png", "sub/b.png"]
    assert json.loads(result.stdout)["done"] == 3


def test_an_output_folder_that_links_to_the_input_folder_is_refused(
    ginr, folder_with_links, model_2d, tmp_path
):
    (folder_with_links / "alias.png").unlink()  # else: two inputs for out/alias.png, also refused
    (tmp_path / "out").symlink_to(folder_with_links, target_is_directory=True)
    before = file_bytes(folder_with_links)
    result = ginr(
        "upscale", folder_with_links, tmp_path / "out", "-s", "2", "--model", model_2d, "--overwrite"
    )
    assert result.exit_code == 2
    assert "would overwrite an input" in result.stderr
    assert file_bytes(folder_with_links) == before


@pytest.mark.parametrize("where", ["beside the inputs", "another folder"])
def test_two_inputs_for_one_output_are_refused(ginr, model_2d, tmp_path, where):
    """a.png and a.webp with --ext png: beside the inputs, a.webp's result would overwrite the input a.png."""
    folder = tmp_path / "in"
    folder.mkdir()
    hr_crop(1, (0, 0, 16, 12)).save(folder / "a.png")
    hr_crop(2, (0, 0, 16, 12)).save(folder / "a.webp", lossless=True)
    before = file_bytes(folder)
    out = folder if where == "beside the inputs" else tmp_path / "out"
    result = ginr("upscale", folder, out, "--ext", "png", "--overwrite", "-s", "2", "--model", model_2d)
    assert result.exit_code == 2, result.output
    assert "two inputs" in result.stderr and "a.webp" in result.stderr
    assert file_bytes(folder) == before
    assert out == folder or not out.exists()


# --- file names -----------------------------------------------------------------------------------------

NAMES = ["with space.png", 'it\'s "quoted".jpg', "café 東京 ünï.png", "-starts with a dash.png"]


def test_file_names_with_spaces_quotes_and_non_ascii_work_end_to_end(ginr, model_2d, model_3d, tmp_path):
    folder = tmp_path / "ñame with spaces 'and quotes'"
    folder.mkdir()
    for name in NAMES:
        hr_crop(3, (0, 0, 16, 12)).save(folder / name)
    volume = tmp_path / "volume — ü.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(512, dtype=np.int16).reshape(8, 8, 8), np.eye(4)), volume)

    up = tmp_path / "up 2×"
    result = ginr("upscale", folder, up, "-s", "2", "--model", model_2d, "--kind", "image", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.stdout)["outputs"]) == sorted(str(up / n) for n in NAMES)
    for name in NAMES:
        with Image.open(up / name) as im:
            assert im.size == (32, 24)

    lat = tmp_path / "latents «x»"
    assert ginr("encode", volume, "-o", lat, "--model", model_3d).exit_code == 0
    latent = lat / "volume — ü.safetensors"
    info = ginr("info", latent, "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["source"] == "nifti volume — ü.nii.gz"
    decoded = tmp_path / "décodé"
    result = ginr("decode", latent, "-o", decoded, "--model", model_3d)
    assert result.exit_code == 0, result.output
    assert nib.load(decoded / "volume — ü.nii.gz").shape == (8, 8, 8)
