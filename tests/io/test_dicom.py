"""DICOM series read as volumes: a series written from a real NIfTI volume with known, oblique geometry
comes back voxel for voxel at the same world coordinates, whatever the file order; rescaling, multi-frame
files, and every kind of broken series (one clear error each)."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from ginr_cli.errors import GinrError
from ginr_cli.io.dicom import find_series, is_dicom_file, read_series
from ginr_cli.io.volumes import read_volume
from tests.io.dicom_series import oblique, write_report, write_series

COLIN = Path(__file__).resolve().parents[2] / "examples" / "volumes" / "colin27_2mm.nii.gz"


@pytest.fixture(scope="module")
def scan() -> tuple[np.ndarray, np.ndarray]:
    """A 40x44x24 block of the real Colin27 MRI, its affine turned oblique (17 degrees about x and z)."""
    img = nib.load(COLIN)
    shift = np.eye(4)
    shift[:3, 3] = (20, 30, 30)
    data = np.asarray(img.dataobj).astype(np.float64)[20:60, 30:74, 30:54]
    return data, oblique(img.affine @ shift)


def only_series(folder: Path):
    series, problems = find_series(sorted(folder.iterdir()))
    assert problems == [] and len(series) == 1
    return series[0]


def test_a_series_reads_back_as_its_volume_at_the_same_world_coordinates(scan, tmp_path):
    data, affine = scan
    files = write_series(data, affine, tmp_path / "s", number=4, description="T1 mprage")
    assert all(is_dicom_file(f) for f in files)
    series = only_series(tmp_path / "s")
    assert series.name == "4_T1_mprage" and len(series.files) == data.shape[2]
    vol = read_volume(series)
    np.testing.assert_array_equal(vol.data[0], data)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-4)
    assert vol.kind == "nifti" and vol.dtype == np.int16 and vol.unit == "mm"
    np.testing.assert_allclose(vol.spacing, np.linalg.norm(affine[:3, :3], axis=0), rtol=1e-6)
    assert (vol.sform_code, vol.qform_code) == (1, 1)
    np.testing.assert_allclose(vol.header.get_sform(), affine, atol=1e-4)


def test_rescale_slope_and_intercept_are_applied(scan, tmp_path):
    data, affine = scan
    hu = data * 4 - 1000  # CT-like values: stored + intercept, kept as whole numbers
    write_series(hu, affine, tmp_path / "ct", inter=-1024)
    vol = read_volume(only_series(tmp_path / "ct"))
    np.testing.assert_array_equal(vol.data[0], hu)
    assert vol.dtype == np.int16
    write_series(data * 2.5, affine, tmp_path / "scaled", slope=2.5, inter=0.5)
    vol = read_volume(only_series(tmp_path / "scaled"))
    np.testing.assert_allclose(vol.data[0], np.rint((data * 2.5 - 0.5) / 2.5) * 2.5 + 0.5, rtol=1e-6)
    assert vol.dtype == np.float32  # a fractional slope: not integers any more


def test_an_enhanced_multiframe_file_is_one_series(scan, tmp_path):
    data, affine = scan
    write_series(data, affine, tmp_path / "mf", multiframe=True)
    vol = read_volume(only_series(tmp_path / "mf"))
    np.testing.assert_array_equal(vol.data[0], data)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-4)


def test_series_are_told_apart_and_non_images_named(scan, tmp_path):
    data, affine = scan
    folder = tmp_path / "mixed"
    write_series(data, affine, folder, number=2, description="a")
    write_series(data[:, :, :10], affine, folder, number=5, description="b")
    write_report(folder / "report.dcm")
    (folder / "notes.txt").write_text("not dicom")
    files = [f for f in sorted(folder.iterdir()) if is_dicom_file(f)]
    assert len(files) == data.shape[2] + 10 + 1
    series, problems = find_series(files)
    assert [(s.number, len(s.files)) for s in series] == [(2, data.shape[2]), (5, 10)]
    assert problems == [(folder / "report.dcm", "a DICOM object without an image (SR)")]


def broken(scan, tmp_path, **kwargs):
    data, affine = scan
    write_series(data, affine, tmp_path / "b", **kwargs)
    return only_series(tmp_path / "b")


def test_a_missing_slice_is_refused_naming_the_series(scan, tmp_path):
    series = broken(scan, tmp_path, skip=(9,), number=6, description="dwi")
    with pytest.raises(GinrError, match=r"series 6 'dwi': uneven slice spacing: .*a missing slice") as err:
        read_series(series)
    assert err.value.path == tmp_path / "b"


def test_mixed_orientations_and_repeated_positions_are_refused(scan, tmp_path):
    data, affine = scan
    folder = tmp_path / "tilted"
    files = write_series(data, affine, folder)
    ds = pydicom.dcmread(files[3])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # a coronal localizer filed in an axial series
    ds.save_as(files[3])
    with pytest.raises(GinrError, match="different orientations"):
        read_series(only_series(folder))
    folder = tmp_path / "repeat"
    files = write_series(data, affine, folder)
    ds = pydicom.dcmread(files[3])
    ds.ImagePositionPatient = pydicom.dcmread(files[4]).ImagePositionPatient  # a second echo
    ds.save_as(files[3])
    with pytest.raises(GinrError, match="several slices at one position"):
        read_series(only_series(folder))


def test_unsupported_images_say_why(scan, tmp_path):
    data, affine = scan
    files = write_series(data, affine, tmp_path / "m")
    ds = pydicom.dcmread(files[0])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "MOSAIC"]
    ds.save_as(files[0])
    with pytest.raises(GinrError, match="Siemens mosaic"):
        read_series(only_series(tmp_path / "m"))
    files = write_series(data, affine, tmp_path / "g")
    ds = pydicom.dcmread(files[0])
    del ds.ImagePositionPatient
    ds.save_as(files[0])
    with pytest.raises(GinrError, match="the geometry is unknown"):
        read_series(only_series(tmp_path / "g"))
