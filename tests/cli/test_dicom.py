"""DICOM in, on the command line: a series made from a real MRI volume with oblique geometry is upscaled
and encoded exactly as the same volume read from NIfTI (same world coordinates, same voxels), a folder of
several series gives one output each, named after the series, and a broken series is one line while the
rest goes on."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.io.dicom_series import write_report, write_series
from tests.io.test_dicom import scan  # noqa: F401  (the fixture: a real MRI block, oblique)


@pytest.fixture
def scans(scan, tmp_path) -> tuple[Path, Path]:  # noqa: F811
    """The same volume as one NIfTI file and as a folder of two series, a broken one and a report."""
    data, affine = scan
    nifti = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.int16), affine), nifti)
    folder = tmp_path / "dicom"
    write_series(data, affine, folder / "study", number=3, description="T1 axial")
    write_series(data[:, :, :12], affine, folder / "study", number=4, description="T1 short")
    write_series(data, affine, folder / "broken", number=8, skip=(5,))
    write_report(folder / "study" / "SR0001")
    return nifti, folder


def test_a_series_upscales_at_the_world_coordinates_of_its_nifti(ginr, scans, model_3d, tmp_path):
    nifti, folder = scans
    args = ("--scale", "1,1,2", "--model", model_3d, "--json")
    res = ginr("upscale", nifti, tmp_path / "ref.nii.gz", *args)
    assert res.exit_code == 0, res.output
    res = ginr("upscale", folder, tmp_path / "out", "-r", *args)
    assert res.exit_code == 1, res.output  # the broken series and the report
    summary = json.loads(res.stdout)
    out = tmp_path / "out" / "study"
    assert sorted(summary["outputs"]) == [str(out / "3_T1_axial.nii.gz"), str(out / "4_T1_short.nii.gz")]
    failed = {f["input"]: f["error"] for f in summary["failed"]}
    assert set(failed) == {str(folder / "broken"), str(folder / "study" / "SR0001")}
    assert "series 8 't1 test': uneven slice spacing" in failed[str(folder / "broken")]
    assert all("\n" not in message for message in failed.values())
    ref, got = nib.load(tmp_path / "ref.nii.gz"), nib.load(out / "3_T1_axial.nii.gz")
    assert got.shape == ref.shape == (40, 44, 48)
    np.testing.assert_allclose(got.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(got.dataobj), np.asarray(ref.dataobj))
    assert got.get_data_dtype() == np.int16 and got.header.get_xyzt_units()[0] == "mm"


def test_a_series_encodes_and_decodes_as_its_nifti(ginr, scans, codec_3d, tmp_path):
    nifti, folder = scans
    series = folder / "study"
    res = ginr("encode", nifti, "-o", tmp_path / "ref.safetensors", "--model", codec_3d)
    assert res.exit_code == 0, res.output
    res = ginr("encode", series, "-o", tmp_path / "lat", "--model", codec_3d, "--json")
    assert res.exit_code == 1, res.output  # the report in the folder
    results = json.loads(res.stdout)["results"]
    [one] = [r for r in results if r["output"].endswith("3_T1_axial.safetensors")]
    assert one["source_bytes"] == sum(p.stat().st_size for p in series.iterdir() if p.name.startswith("IM3_"))
    latents = {"ref": tmp_path / "ref.safetensors", "dcm": tmp_path / "lat" / "3_T1_axial.safetensors"}
    for name, latent in latents.items():
        res = ginr("decode", latent, "-o", tmp_path / "dec" / name, "--model", codec_3d)
        assert res.exit_code == 0, res.output
    ref = nib.load(tmp_path / "dec" / "ref" / "ref.nii.gz")
    got = nib.load(tmp_path / "dec" / "dcm" / "3_T1_axial.nii.gz")
    np.testing.assert_allclose(got.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(got.dataobj), np.asarray(ref.dataobj))


def test_one_multiframe_file_is_a_volume(ginr, scan, model_3d, tmp_path):  # noqa: F811
    data, affine = scan
    [path] = write_series(data, affine, tmp_path / "mf", multiframe=True, number=9, description="enh")
    res = ginr("upscale", path, tmp_path / "out", "--scale", "1,1,2", "--model", model_3d)
    assert res.exit_code == 0, res.output
    assert nib.load(tmp_path / "out" / "9_enh.nii.gz").shape == (40, 44, 48)
