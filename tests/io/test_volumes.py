import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile

from ginr_cli.errors import GinrError
from ginr_cli.io.geometry import output_shape
from ginr_cli.io.volumes import is_volume_path, read_volume, tiff_is_stack, write_volume

NIB_DATA = Path(nib.__file__).parent / "tests" / "data"
ANATOMICAL = NIB_DATA / "anatomical.nii"  # 33x41x25 int16 (big-endian), sform/qform code 2
EXAMPLE_4D = NIB_DATA / "example4d.nii.gz"  # 128x96x24x2 int16, TR 2000 ms
CH2 = Path("/usr/share/mricron/templates/ch2.nii.gz")  # 181x217x181 uint8, sform code 4, qform 0
CORNER = [-0.5, -0.5, -0.5, 1.0]


def save_nifti(path, data, affine, dtype=None, sform=2, qform=1, slope=None, inter=None) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(dtype or data.dtype)
    img.header.set_sform(affine, code=sform)
    img.header.set_qform(affine, code=qform)
    img.header.set_xyzt_units("mm", "sec")
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    nib.save(img, path)
    return Path(path)


def oblique_lps() -> np.ndarray:
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([-1.5, -1.5, 3.0])  # LPS, oblique
    affine[:3, 3] = [80, 100, -60]
    return affine


def assert_same_file_geometry(a: Path, b: Path):
    ia, ib = nib.load(a), nib.load(b)
    np.testing.assert_array_equal(ib.affine, ia.affine)
    np.testing.assert_array_equal(ib.header.get_sform(), ia.header.get_sform())
    np.testing.assert_allclose(ib.header.get_qform(), ia.header.get_qform(), atol=1e-5)
    for key in ("sform_code", "qform_code", "xyzt_units", "intent_code", "descrip", "pixdim"):
        np.testing.assert_array_equal(ib.header[key], ia.header[key])
    assert ib.get_data_dtype() == ia.get_data_dtype()


# --- NIfTI round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("src", [ANATOMICAL, EXAMPLE_4D, CH2], ids=["anatomical", "example4d", "ch2"])
def test_nifti_round_trip_at_scale_one(tmp_path, src):
    if not src.exists():
        pytest.skip(f"{src} not installed (Debian mricron-data)")
    vol = read_volume(src)
    assert vol.data.dtype == np.float32 and vol.data.ndim == 4
    out = write_volume(tmp_path / src.name, vol.data, vol)
    np.testing.assert_array_equal(nib.load(out).get_fdata(), nib.load(src).get_fdata())
    np.testing.assert_array_equal(read_volume(out).data, vol.data)
    assert_same_file_geometry(src, out)
    assert not list(tmp_path.glob(".*part"))


def test_4d_frames_and_time_step(tmp_path):
    vol = read_volume(EXAMPLE_4D)
    assert vol.data.shape == (2, 128, 96, 24) and vol.axes == "XYZT"
    np.testing.assert_array_equal(vol.data[1], nib.load(EXAMPLE_4D).get_fdata()[..., 1])
    new = output_shape(vol.spatial_shape, (0.5, 0.5, 1))
    out = write_volume(tmp_path / "half.nii.gz", np.zeros((2, *new), np.float32), vol)
    img = nib.load(out)
    assert img.shape == (64, 48, 24, 2)
    np.testing.assert_allclose(img.header.get_zooms(), [4.0, 4.0, 2.2, 2000.0], rtol=1e-5)
    assert img.header.get_xyzt_units() == ("mm", "sec")


def test_single_slice_is_a_volume(tmp_path):
    path = save_nifti(tmp_path / "slice.nii", np.arange(12, dtype=np.int16).reshape(3, 4, 1), np.eye(4))
    vol = read_volume(path)
    assert vol.data.shape == (1, 3, 4, 1)


def test_int16_slope_inter_does_not_drift(tmp_path):
    raw = np.random.default_rng(0).integers(-3000, 3000, (6, 5, 4)).astype(np.int16)
    src = save_nifti(tmp_path / "ct.nii", raw, np.eye(4), slope=2.0, inter=-1024.0)
    vol = read_volume(src)
    assert (vol.slope, vol.inter, vol.dtype) == (2.0, -1024.0, np.int16)
    np.testing.assert_array_equal(vol.data[0], raw * 2.0 - 1024)
    path = src
    for i in range(3):  # repeated round trips: identical raw values and scaling
        path = write_volume(tmp_path / f"rt{i}.nii", read_volume(path).data, vol)
        img = nib.load(path)
        np.testing.assert_array_equal(img.dataobj.get_unscaled(), raw)
        assert (img.dataobj.slope, img.dataobj.inter) == (2.0, -1024.0)
    # values between grid points round to the slope's grid; out-of-range values clip
    noisy = vol.data + 0.9
    noisy[0, 0, 0, 0] = 1e9
    img = nib.load(write_volume(tmp_path / "noisy.nii", noisy, vol))
    expected = raw.copy()
    expected[0, 0, 0] = np.iinfo(np.int16).max
    np.testing.assert_array_equal(img.dataobj.get_unscaled(), expected)


def test_float32_output_and_integer_clipping(tmp_path):
    src = save_nifti(tmp_path / "u8.nii.gz", np.full((4, 4, 4), 7, np.uint8), np.eye(4))
    vol = read_volume(src)
    data = np.linspace(-10, 300.4, 64, dtype=np.float32).reshape(1, 4, 4, 4)
    img = nib.load(write_volume(tmp_path / "f.nii.gz", data, vol, dtype="float32"))
    assert img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), data[0])
    img = nib.load(write_volume(tmp_path / "u.nii.gz", data, vol))
    assert img.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), np.clip(np.rint(data[0]), 0, 255))


@pytest.mark.parametrize("codes", [(4, 1), (2, 0), (0, 1)])
def test_lps_oblique_affine_and_codes_survive(tmp_path, codes):
    affine = oblique_lps()
    data = np.random.default_rng(1).random((5, 6, 7)).astype(np.float32)
    src = save_nifti(tmp_path / "obl.nii", data, affine, sform=codes[0], qform=codes[1])
    vol = read_volume(src)
    out = write_volume(tmp_path / "obl_out.nii", vol.data, vol)
    assert_same_file_geometry(src, out)
    np.testing.assert_allclose(nib.load(out).affine, affine, atol=1e-5)
    assert nib.aff2axcodes(nib.load(out).affine) == nib.aff2axcodes(affine)


def test_resampled_grid_keeps_field_of_view(tmp_path):
    affine = oblique_lps()
    src = save_nifti(tmp_path / "obl.nii", np.zeros((6, 5, 4), np.float32), affine, sform=4, qform=1)
    vol = read_volume(src)
    new = output_shape(vol.spatial_shape, (1, 1, 2.5))
    assert new == (6, 5, 10)
    img = nib.load(write_volume(tmp_path / "up.nii", np.zeros((1, *new), np.float32), vol))
    assert img.shape == new
    np.testing.assert_allclose(img.header.get_zooms(), [1.5, 1.5, 3.0 / 2.5], rtol=1e-6)
    for form in (img.header.get_sform(), img.header.get_qform()):
        np.testing.assert_allclose(form @ CORNER, affine @ CORNER, atol=1e-4)
        np.testing.assert_allclose(form @ [5.5, 4.5, 9.5, 1], affine @ [5.5, 4.5, 3.5, 1], atol=1e-4)
    assert nib.aff2axcodes(img.affine) == nib.aff2axcodes(affine)
    assert (int(img.header["sform_code"]), int(img.header["qform_code"])) == (4, 1)


def test_real_volume_resampled_grid(tmp_path):
    vol = read_volume(ANATOMICAL)
    new = output_shape(vol.spatial_shape, (1, 1, 2.5))
    img = nib.load(write_volume(tmp_path / "up.nii.gz", np.zeros((1, *new), np.float32), vol))
    src = nib.load(ANATOMICAL)
    assert img.shape == (33, 41, 63)
    fov = np.array(img.header.get_zooms()) * img.shape
    np.testing.assert_allclose(fov, np.array(src.header.get_zooms()) * src.shape, rtol=1e-6)
    np.testing.assert_allclose(img.affine @ CORNER, src.affine @ CORNER, atol=1e-4)


# --- TIFF -----------------------------------------------------------------------------------------


def save_tiff(path, data, spacing=(2.5, 0.5, 0.5), unit="um", axes="ZYX") -> Path:
    z, y, x = spacing
    meta = {"spacing": z, "unit": unit, "axes": axes}
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / x, 1 / y), metadata=meta)
    return Path(path)


@pytest.fixture
def stack() -> np.ndarray:
    """A real volume as a TIFF stack: anatomical.nii's data in ZYX, uint16."""
    data = np.asanyarray(nib.load(ANATOMICAL).dataobj).transpose(2, 1, 0)
    return (data - data.min()).astype(np.uint16)


def test_tiff_round_trip_keeps_and_scales_voxel_size(tmp_path, stack):
    src = save_tiff(tmp_path / "stack.tif", stack)
    assert tiff_is_stack(src) and is_volume_path(src)
    vol = read_volume(src)
    assert vol.data.shape == (1, *stack.shape) and vol.axes == "ZYX"
    np.testing.assert_allclose(vol.spacing, (2.5, 0.5, 0.5))
    assert vol.unit == "um" and vol.dtype == np.uint16
    same = read_volume(write_volume(tmp_path / "same.tif", vol.data, vol))
    np.testing.assert_array_equal(same.data, vol.data)
    np.testing.assert_allclose(same.spacing, vol.spacing, rtol=1e-6)
    new = output_shape(vol.spatial_shape, (2, 1, 0.5))
    assert new == (50, 41, 17)
    out = write_volume(tmp_path / "up.tiff", np.zeros((1, *new), np.float32), vol)
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZYX" and tif.series[0].dtype == np.uint16
    up = read_volume(out)
    np.testing.assert_allclose(up.spacing, (1.25, 0.5, 0.5 * 33 / 17), rtol=1e-6)
    assert up.unit == "um"


@pytest.mark.parametrize("axes", ["TZYX", "ZCYX"])
def test_tiff_frame_axis_round_trip(tmp_path, axes):
    data = np.random.default_rng(2).random((2, 3, 4, 5)).astype(np.float32)  # axes order as in `axes`
    vol = read_volume(save_tiff(tmp_path / "h.tif", data, axes=axes))
    assert vol.axes == axes and vol.data.shape[0] == data.shape[axes.index("T" if "T" in axes else "C")]
    out = read_volume(write_volume(tmp_path / "o.tif", vol.data, vol))
    assert out.axes == axes
    np.testing.assert_array_equal(out.data, vol.data)


def test_tiff_ome_and_plain_pages(tmp_path):
    data = np.random.default_rng(3).random((3, 4, 5))
    meta = {"axes": "ZYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.3, "PhysicalSizeZ": 1.5}
    tifffile.imwrite(tmp_path / "ome.tif", data, ome=True, metadata=meta)
    vol = read_volume(tmp_path / "ome.tif")
    assert vol.dtype == np.float64 and vol.spacing == (1.5, 0.3, 0.2) and vol.unit == "µm"
    out = read_volume(write_volume(tmp_path / "ome_out.tif", vol.data, vol))  # float64: OME, not ImageJ
    np.testing.assert_allclose(out.spacing, vol.spacing)
    assert out.dtype == np.float64
    tifffile.imwrite(tmp_path / "pages.tif", (data * 100).astype(np.int32), photometric="minisblack")
    plain = read_volume(tmp_path / "pages.tif")
    assert plain.data.shape == (1, 3, 4, 5) and plain.spacing == (1.0, 1.0, 1.0) and plain.unit == "pixel"


def test_not_a_stack(tmp_path):
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((4, 5), np.uint8))
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((4, 5, 3), np.uint8))
    (tmp_path / "fake.tif").write_text("not a tiff")
    for name in ("one.tif", "rgb.tif", "fake.tif"):
        assert not is_volume_path(tmp_path / name)
        with pytest.raises(GinrError, match=name):
            read_volume(tmp_path / name)
    assert is_volume_path(tmp_path / "x.nii.gz") and not is_volume_path(tmp_path / "x.png")


# --- bad inputs -------------------------------------------------------------------------------------


def bad_files(folder: Path) -> dict[str, Path]:
    raw, gz = ANATOMICAL.read_bytes(), EXAMPLE_4D.read_bytes()
    corrupt = bytearray(gz)
    corrupt[len(gz) // 2 : len(gz) // 2 + 200] = bytes(200)
    files = {
        "zero.nii": b"",
        "text.nii": b"hello, world\n" * 50,
        "truncated.nii": raw[: len(raw) // 2],
        "header_only.nii": raw[:352],
        "truncated.nii.gz": gz[: len(gz) // 2],
        "corrupt.nii.gz": bytes(corrupt),
        "not_gzip.nii.gz": raw,
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    # a gzip whose header claims more voxels than it holds
    hdr = nib.load(ANATOMICAL).header.copy()
    hdr.set_data_shape((64, 64, 64))
    (folder / "short.nii.gz").write_bytes(gzip.compress(hdr.binaryblock + raw[348:]))
    save_nifti(folder / "flat.nii", np.zeros((4, 5), np.float32), np.eye(4))
    save_nifti(folder / "five.nii", np.zeros((2, 2, 2, 1, 3), np.float32), np.eye(4))
    nan = np.ones((3, 3, 3), np.float32)
    nan[1, 1, 1], nan[0, 0, 0] = np.nan, np.inf
    save_nifti(folder / "nan.nii.gz", nan, np.eye(4))
    return {p.name: p for p in folder.iterdir()} | {"missing.nii": folder / "missing.nii"}


def test_bad_inputs_raise_ginr_error_naming_the_file(tmp_path):
    files = bad_files(tmp_path)
    assert len(files) == 12
    for path in files.values():
        with pytest.raises(GinrError) as info:
            read_volume(path)
        msg = str(info.value)
        assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    assert "2D" in str(pytest.raises(GinrError, read_volume, files["flat.nii"]).value)
    assert "5D" in str(pytest.raises(GinrError, read_volume, files["five.nii"]).value)
    assert "2 of 27" in str(pytest.raises(GinrError, read_volume, files["nan.nii.gz"]).value)
    assert "truncated" in str(pytest.raises(GinrError, read_volume, files["header_only.nii"]).value)


def test_write_refuses_bad_data(tmp_path):
    vol = read_volume(ANATOMICAL)
    data = vol.data.copy()
    data[0, 1, 2, 3] = np.nan
    with pytest.raises(GinrError, match="1 of"):
        write_volume(tmp_path / "nan.nii", data, vol)
    with pytest.raises(GinrError, match="nifti"):
        write_volume(tmp_path / "x.tif", vol.data, vol)
    with pytest.raises(GinrError, match="dtype"):
        write_volume(tmp_path / "x.nii", vol.data, vol, dtype="int8")
    assert list(tmp_path.iterdir()) == []
