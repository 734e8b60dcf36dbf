"""`ginr encode` and `ginr decode`: round trips, geometry, regions and slices, refusals."""

import math
import re

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image
from safetensors.torch import load_file, save_file

from tests.cli.conftest import CORNER

REPORT = re.compile(
    r"latent (?P<latent>[\d.]+) KiB \((?P<bits>[\d.]+) bits a (pixel|voxel)\), "
    r"source file (?P<source>[\d.]+) KiB, "
    r"raw (?P<raw>[\d.]+) KiB \((?P<ratio>[\d.]+)x (?P<way>smaller|larger)\)"
    r"(, PSNR at scale 1: (?P<psnr>-?[\d.]+) dB)?"
)


@pytest.fixture
def image_latents(ginr, mixed_folder, model_2d, tmp_path):
    """a.jpg (RGB), b.png (RGBA) and c.tif (16-bit gray) encoded to tmp_path/lat, with --check."""
    files = [mixed_folder / n for n in ("a.jpg", "b.png", "c.tif")]
    result = ginr("encode", *files, "-o", tmp_path / "lat", "--model", model_2d, "--check")
    assert result.exit_code == 0, result.output
    return result


def test_encode_reports_sizes_ratio_and_psnr(image_latents, mixed_folder, tmp_path):
    lines = [line for line in image_latents.stdout.splitlines() if "KiB" in line]
    assert len(lines) == 3, image_latents.stdout
    for line, name, channels in zip(lines, "abc", (3, 4, 1), strict=True):
        latent = tmp_path / "lat" / f"{name}.safetensors"
        assert f"-> {latent} " in line
        facts = REPORT.search(line)
        assert facts, line
        assert float(facts["latent"]) == pytest.approx(latent.stat().st_size / 1024, abs=0.05)
        assert float(facts["bits"]) == pytest.approx(8 * latent.stat().st_size / (24 * 20), abs=0.001)
        source = mixed_folder / {"a": "a.jpg", "b": "b.png", "c": "c.tif"}[name]
        assert float(facts["source"]) == pytest.approx(source.stat().st_size / 1024, abs=0.05)
        bytes_per_sample = 2 if name == "c" else 1
        raw = 24 * 20 * channels * bytes_per_sample
        assert float(facts["raw"]) == pytest.approx(raw / 1024, abs=0.05)
        ratio = raw / latent.stat().st_size
        assert facts["way"] == ("smaller" if ratio >= 1 else "larger")
        assert float(facts["ratio"]) == pytest.approx(ratio if ratio >= 1 else 1 / ratio, abs=0.006)
        assert math.isfinite(float(facts["psnr"]))
    assert image_latents.stdout.splitlines()[-1] == "encode: 3 done, 0 skipped, 0 failed"


def test_check_psnr_is_the_psnr_of_the_decode(ginr, image_latents, mixed_folder, model_2d, tmp_path):
    reported = float(REPORT.search(image_latents.stdout.splitlines()[2])["psnr"])  # c.tif, lossless 16-bit
    result = ginr("decode", tmp_path / "lat" / "c.safetensors", "-o", tmp_path / "c.tif", "--model", model_2d)
    assert result.exit_code == 0, result.output
    truth = tifffile.imread(mixed_folder / "c.tif") / 65535.0
    decoded = tifffile.imread(tmp_path / "c.tif") / 65535.0
    mse = np.mean((decoded - truth) ** 2)
    assert reported == pytest.approx(10 * math.log10(1 / mse), abs=0.02)


def test_decode_gives_the_source_size_and_mode(ginr, image_latents, model_2d, tmp_path):
    latents = sorted((tmp_path / "lat").glob("*.safetensors"))
    assert [p.name for p in latents] == ["a.safetensors", "b.safetensors", "c.safetensors"]
    x1 = ginr("decode", *latents, "-o", tmp_path / "x1", "--model", model_2d)
    x2 = ginr("decode", *latents, "-o", tmp_path / "x2", "--model", model_2d, "--scale", "2")
    assert x1.exit_code == 0 and x2.exit_code == 0, x1.output + x2.output
    expected = {"a.jpg": ("RGB", "JPEG"), "b.png": ("RGBA", "PNG"), "c.tif": ("I;16", "TIFF")}
    for folder, size in (("x1", (24, 20)), ("x2", (48, 40))):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == sorted(expected)
        for name, (mode, fmt) in expected.items():
            with Image.open(tmp_path / folder / name) as im:
                assert (im.size, im.mode, im.format) == (size, mode, fmt), (folder, name)
    assert tifffile.imread(tmp_path / "x1" / "c.tif").dtype == np.uint16


def test_an_image_region_is_the_same_region_of_the_full_decode(ginr, image_latents, model_2d, tmp_path):
    latent = tmp_path / "lat" / "b.safetensors"
    full = ginr("decode", latent, "-o", tmp_path / "full.png", "--model", model_2d, "--scale", "2")
    roi = ginr(
        "decode",
        latent,
        "-o",
        tmp_path / "roi.png",
        "--model",
        model_2d,
        "--scale",
        "2",
        "--roi",
        "4:12,8:20",
    )
    assert full.exit_code == 0 and roi.exit_code == 0, full.output + roi.output
    whole = np.asarray(Image.open(tmp_path / "full.png")).astype(int)
    part = np.asarray(Image.open(tmp_path / "roi.png")).astype(int)
    assert part.shape == (16, 24, 4)  # rows 4:12 and columns 8:20 of the source, at twice the resolution
    np.testing.assert_allclose(part, whole[8:24, 16:40], atol=1)


def test_nifti_decode_at_scale_1_returns_the_source_geometry(nifti, nifti_decoded):
    source, made = nib.load(nifti), nib.load(nifti_decoded["x1"])
    assert made.shape == source.shape == (33, 41, 25)
    np.testing.assert_array_equal(made.affine, source.affine)
    np.testing.assert_array_equal(made.header.get_qform(), source.header.get_qform())
    for code in ("sform_code", "qform_code"):
        assert made.header[code] == source.header[code]
    assert made.get_data_dtype().str[1:] == source.get_data_dtype().str[1:]


def test_nifti_decode_at_scale_2_keeps_the_corner_of_the_field_of_view(nifti, nifti_decoded):
    source, made = nib.load(nifti), nib.load(nifti_decoded["x2"])
    assert made.shape == (66, 82, 50)
    np.testing.assert_allclose(made.affine @ CORNER, source.affine @ CORNER, atol=1e-5)
    np.testing.assert_allclose(made.header.get_zooms(), np.array(source.header.get_zooms()) / 2)
    assert made.get_data_dtype().str[1:] == source.get_data_dtype().str[1:]


def test_nifti_region_is_the_same_region_of_the_full_decode(
    ginr, nifti_latent, nifti_decoded, model_3d, tmp_path
):
    out = tmp_path / "roi.nii.gz"
    result = ginr(
        "decode", nifti_latent, "-o", out, "--model", model_3d, "--scale", "2", "--roi", "4:20,0:41,0:25"
    )
    assert result.exit_code == 0, result.output
    full, roi = nib.load(nifti_decoded["x2"]), nib.load(out)
    assert roi.shape == (32, 82, 50)
    # integer outputs are rounded to the source dtype: one unit of tolerance
    np.testing.assert_allclose(np.asarray(roi.dataobj), np.asarray(full.dataobj)[8:40], atol=1)
    np.testing.assert_allclose(roi.affine @ [0, 0, 0, 1], full.affine @ [8, 0, 0, 1], atol=1e-5)
    np.testing.assert_allclose(roi.affine[:3, :3], full.affine[:3, :3])


def test_nifti_slice_is_the_same_slice_of_the_full_decode(
    ginr, nifti_latent, nifti_decoded, model_3d, tmp_path
):
    out = tmp_path / "slice.nii.gz"
    result = ginr("decode", nifti_latent, "-o", out, "--model", model_3d, "--slice", "2=10")
    assert result.exit_code == 0, result.output
    full, plane = nib.load(nifti_decoded["x1"]), nib.load(out)
    assert plane.shape == (33, 41, 1)
    np.testing.assert_allclose(np.asarray(plane.dataobj), np.asarray(full.dataobj)[:, :, 10:11], atol=1)
    np.testing.assert_allclose(plane.affine @ [3, 5, 0, 1], full.affine @ [3, 5, 10, 1], atol=1e-5)


def test_a_latent_of_another_model_is_refused(ginr, nifti_latent, other_model_3d, tmp_path):
    out = tmp_path / "dec"
    result = ginr("decode", nifti_latent, "-o", out, "--model", other_model_3d)
    assert result.exit_code == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed  ")]
    assert len(failed) == 1 and str(nifti_latent) in failed[0] and "fingerprint" in failed[0]
    assert not out.exists() or not any(out.iterdir())


def test_a_latent_with_broken_metadata_is_refused_by_name(ginr, image_latents, model_2d, tmp_path):
    broken = tmp_path / "broken.safetensors"
    save_file(load_file(tmp_path / "lat" / "a.safetensors"), broken, metadata={"ginr.format": "1"})
    result = ginr("decode", broken, "-o", tmp_path / "dec", "--model", model_2d)
    assert result.exit_code == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed  ")]
    assert len(failed) == 1 and failed[0].startswith(f"failed  {broken}: ")
    assert "latent" in failed[0]

    info = ginr("info", broken)
    assert info.exit_code == 1 and info.stdout == ""
    assert info.stderr.startswith(f"ginr: error: {broken}: ") and info.stderr.count("\n") == 1
