import json

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from ginr_cli.engine.consistency import block_means
from ginr_cli.io.geometry import output_shape, scale_affine
from tests.cli.conftest import file_bytes, hr_crop

DONE = ("a.jpg", "b.png", "c.tif")  # the readable files of mixed_folder, all 24x20


def one_error_line(result) -> str:
    """Bad usage: exit 2, nothing on stdout, one line on stderr."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ginr: error: ")
    return lines[0]


@pytest.mark.parametrize(("scale", "size"), [("2", (48, 40)), ("1.5", (36, 30))])
def test_a_folder_with_a_corrupt_file(ginr, mixed_folder, model_2d, tmp_path, scale, size):
    out = tmp_path / "out"
    result = ginr("upscale", mixed_folder, out, "--scale", scale, "--model", model_2d, "--kind", "image")

    assert result.exit_code == 1, result.output
    bad = str(mixed_folder / "d.jpg")
    err = result.stderr.splitlines()
    assert len(err) == 3, result.stderr  # the failure as it happens, the summary, the failure listed again
    assert err[0].startswith(f"failed  {bad}: ")
    assert err[1] == "upscale: 3 done, 0 skipped, 1 failed"
    assert err[2].startswith(f"  {bad}: ")
    assert "d.jpg" not in result.stdout
    assert sorted(p.name for p in out.iterdir()) == list(DONE)  # no d.jpg, no leftover temporary file

    with Image.open(out / "a.jpg") as a, Image.open(out / "b.png") as b, Image.open(out / "c.tif") as c:
        assert (a.size, a.mode, a.format) == (size, "RGB", "JPEG")
        assert (b.size, b.mode) == (size, "RGBA")
        assert (c.size, c.mode) == (size, "I;16")
        alpha = np.asarray(b)[..., 3].astype(int)
    # the alpha ramp (0 at the left, 255 at the right) is resampled, not dropped or flattened
    assert alpha[:, 0].max() < 40 and alpha[:, -1].min() > 215
    assert np.all(np.diff(alpha.mean(axis=0)) >= -1)
    gray = tifffile.imread(out / "c.tif")
    assert gray.dtype == np.uint16 and gray.shape == size[::-1]
    assert gray.max() > 255  # 16-bit values, not 8-bit ones stored in 16 bits


def test_a_second_run_skips_what_is_done(ginr, mixed_folder, model_2d, tmp_path):
    out = tmp_path / "out"
    first = ginr("upscale", mixed_folder, out, "--scale", "2", "--model", model_2d, "--json")
    assert first.exit_code == 1
    before = file_bytes(out)

    again = ginr("upscale", mixed_folder, out, "--scale", "2", "--model", model_2d, "--json")
    assert again.exit_code == 1  # d.jpg still fails
    assert again.stdout.count("\n") == 1 and again.stdout.endswith("\n")  # exactly one JSON line
    summary = json.loads(again.stdout)
    assert summary["done"] == 0 and summary["skipped"] == 3 and summary["outputs"] == []
    assert [f["input"] for f in summary["failed"]] == [str(mixed_folder / "d.jpg")]
    assert summary["interrupted"] is False
    assert file_bytes(out) == before

    redo = ginr("upscale", mixed_folder, out, "--scale", "2", "--model", model_2d, "--json", "--overwrite")
    summary = json.loads(redo.stdout)
    assert summary["done"] == 3 and summary["skipped"] == 0
    assert sorted(summary["outputs"]) == [str(out / name) for name in DONE]


def test_width_alone_keeps_the_aspect(ginr, mixed_folder, model_2d, tmp_path):
    result = ginr("upscale", mixed_folder / "a.jpg", tmp_path / "a.png", "--width", "36", "--model", model_2d)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "a.png") as im:
        assert (im.size, im.mode, im.format) == ((36, 30), "RGB", "PNG")


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--scale", "abc"], "'abc'"),
        (["--scale", "0"], "'0'"),
        (["--scale", "-2"], "'-2'"),
        (["--scale", "nan"], "'nan'"),
        (["--size", "10"], "'10'"),
        (["--size", "0x10"], "'0x10'"),
        (["--kind", "movie"], "'movie'"),
    ],
)
def test_bad_option_values_exit_2_with_one_line(ginr, mixed_folder, model_2d, tmp_path, options, says):
    line = one_error_line(ginr("upscale", mixed_folder, tmp_path / "out", *options, "--model", model_2d))
    assert says in line
    assert not (tmp_path / "out").exists()


def test_scale_and_size_together_are_bad_usage(ginr, mixed_folder, model_2d, tmp_path):
    options = ("--scale", "2", "--size", "10x10", "--model", model_2d)
    line = one_error_line(ginr("upscale", mixed_folder, tmp_path / "out", *options))
    assert "give only one of --scale, --size" in line
    assert not (tmp_path / "out").exists()


def test_a_missing_input_is_bad_usage(ginr, model_2d, tmp_path):
    line = one_error_line(ginr("upscale", tmp_path / "nothing", tmp_path / "out", "--model", model_2d))
    assert f"{tmp_path / 'nothing'}: no such file or folder" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_bad_usage(ginr, mixed_folder, model_2d, tmp_path):
    line = one_error_line(
        ginr(
            "upscale", mixed_folder, tmp_path / "out", "--scale", "2", "--model", model_2d, "--device", "cuda"
        )
    )
    assert "no CUDA device" in line


@pytest.mark.parametrize("same", ["folder", "file"])
def test_an_output_that_would_overwrite_its_input_is_refused(ginr, mixed_folder, model_2d, same):
    before = file_bytes(mixed_folder)
    target = mixed_folder if same == "folder" else mixed_folder / "a.jpg"
    line = one_error_line(ginr("upscale", target, target, "--scale", "2", "--model", model_2d))
    assert "would overwrite an input" in line
    assert file_bytes(mixed_folder) == before  # nothing written, nothing changed


def test_in_place_with_a_suffix_leaves_the_inputs(ginr, mixed_folder, model_2d):
    before = file_bytes(mixed_folder)
    result = ginr(
        "upscale", mixed_folder, mixed_folder, "--suffix", "_x2", "--scale", "2", "--model", model_2d
    )
    assert result.exit_code == 1  # d.jpg
    after = file_bytes(mixed_folder)
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == ["a_x2.jpg", "b_x2.png", "c_x2.tif"]


def test_rerunning_in_place_with_a_suffix_skips_what_is_done(ginr, tmp_path, model_2d):
    folder = tmp_path / "photos"
    folder.mkdir()
    hr_crop(1, (0, 0, 16, 12)).save(folder / "a.png")
    args = ("upscale", folder, folder, "--suffix", "_x2", "--scale", "2", "--model", model_2d, "--json")
    assert ginr(*args).exit_code == 0
    again = ginr(*args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["skipped"] == 1
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_x2.png"]


def test_output_size_follows_the_geometry_rounding_rule(ginr, tmp_path, model_2d):
    hr_crop(1, (0, 0, 16, 15)).save(tmp_path / "a.png")  # 16 x 15: 1.5 x 15 = 22.5, a tie
    result = ginr("upscale", tmp_path / "a.png", tmp_path / "out.png", "--scale", "1.5", "--model", model_2d)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out.png") as im:
        assert im.size[::-1] == output_shape((15, 16), 1.5)


def test_nifti_keeps_its_geometry(ginr, nifti, model_3d, tmp_path):
    out = tmp_path / "out" / "x.nii.gz"
    result = ginr("upscale", nifti, out, "--scale", "1,1,2", "--model", model_3d)
    assert result.exit_code == 0, result.output
    source, made = nib.load(nifti), nib.load(out)
    assert made.shape == (33, 41, 50)
    np.testing.assert_allclose(made.affine, scale_affine(source.affine, source.shape, made.shape), atol=1e-5)
    np.testing.assert_allclose(
        made.header.get_qform(), scale_affine(source.header.get_qform(), source.shape, made.shape), atol=1e-5
    )
    np.testing.assert_allclose(made.header.get_zooms(), (2.0, 2.0, 1.0))
    assert made.affine @ [-0.5, -0.5, -0.5, 1] == pytest.approx(source.affine @ [-0.5, -0.5, -0.5, 1])
    for code in ("sform_code", "qform_code"):
        assert made.header[code] == source.header[code]
    assert made.get_data_dtype().str[1:] == source.get_data_dtype().str[1:] == "i2"
    data = np.asarray(made.dataobj)
    assert data.dtype.str[1:] == "i2" and data.max() > data.min()


def test_adapt_fits_the_model_to_each_scan_and_keeps_the_geometry(ginr, nifti, model_3d, tmp_path):
    plain, fitted = tmp_path / "plain.nii.gz", tmp_path / "fitted.nii.gz"
    weights = (model_3d / "model.safetensors").read_bytes()
    for out, extra in ((plain, ()), (fitted, ("--adapt", "3"))):
        result = ginr(
            "upscale", nifti, out, "--scale", "1,1,2", "--model", model_3d, "--dtype", "float32", *extra
        )
        assert result.exit_code == 0, result.output
    a, b = nib.load(plain), nib.load(fitted)
    assert a.shape == b.shape == (33, 41, 50)
    np.testing.assert_array_equal(a.affine, b.affine)
    assert not np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))  # three steps changed it
    assert (model_3d / "model.safetensors").read_bytes() == weights  # the model on disk is untouched
    result = ginr("eval", nifti, "--scales", "2", "--model", model_3d, "--adapt", "2", "--json")
    assert result.exit_code == 0, result.output


def test_ensemble_averages_the_flips_and_keeps_every_output_grid(ginr, nifti, model_2d, model_3d, tmp_path):
    src = tmp_path / "in.png"
    hr_crop(1, (0, 0, 40, 30)).save(src)
    for model, path, scale, shape in (
        (model_2d, src, "2", (60, 80, 3)),
        (model_3d, nifti, "1,1,2", (33, 41, 50)),
    ):
        outputs = []
        for extra in ((), ("--ensemble",)):
            out = tmp_path / f"{len(extra)}{path.name}"
            args = ("--dtype", "float32") if path == nifti else ()
            result = ginr("upscale", path, out, "--scale", scale, "--model", model, *args, *extra)
            assert result.exit_code == 0, result.output
            data = np.asarray(nib.load(out).dataobj) if path == nifti else np.asarray(Image.open(out))
            assert data.shape == shape
            outputs.append(data.astype(np.float64))
        assert not np.array_equal(*outputs)  # a random model is not flip-invariant: the flips showed
    result = ginr("eval", nifti, "--scales", "2", "--model", model_3d, "--ensemble", "--json")
    assert result.exit_code == 0, result.output
    assert {row["method"] for row in json.loads(result.stdout)["averages"]} == {
        "ginr",
        "trilinear",
        "cubic-spline",
    }


def test_a_volume_upscaled_by_whole_factors_averages_back_to_its_input(ginr, nifti, model_3d, tmp_path):
    """By default each block of output voxels averages to the input voxel it came from; --no-consistency
    leaves the model's output as it is (a random model's is not)."""
    source = nib.load(nifti).get_fdata()
    means = {}
    for flag in ("--consistency", "--no-consistency"):
        out = tmp_path / f"{flag}.nii.gz"
        args = ("--scale", "1,2,2", "--dtype", "float32", "--model", model_3d, flag)
        result = ginr("upscale", nifti, out, *args)
        assert result.exit_code == 0, result.output
        data = nib.load(out).get_fdata()
        assert data.shape == (source.shape[0], 2 * source.shape[1], 2 * source.shape[2])
        means[flag] = block_means(data, (1, 2, 2))
    tolerance = 1e-4 * np.abs(source).max()
    np.testing.assert_allclose(means["--consistency"], source, atol=tolerance)
    assert np.abs(means["--no-consistency"] - source).max() > 100 * tolerance


def test_nifti_dtype_float32_on_request(ginr, nifti, model_3d, tmp_path):
    out = tmp_path / "out" / "x.nii.gz"
    result = ginr("upscale", nifti, out, "--scale", "1,1,2", "--dtype", "float32", "--model", model_3d)
    assert result.exit_code == 0, result.output
    assert nib.load(out).get_data_dtype().str[1:] == "f4"
    bad = ginr("upscale", nifti, tmp_path / "y.nii.gz", "--dtype", "int8", "--model", model_3d)
    assert bad.exit_code == 2 and "--dtype" in bad.output


def test_an_output_too_big_for_memory_is_refused_per_file(ginr, mixed_folder, model_2d, tmp_path):
    """A typo like --scale 100000 (24x20 -> 2.4M x 2M pixels, petabytes as float32) fails each file with
    one line saying why, before any work; nothing is written."""
    out = tmp_path / "out"
    result = ginr("upscale", mixed_folder / "a.jpg", out / "a.png", "--scale", "100000", "--model", model_2d)
    assert result.exit_code == 1, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"failed  {mixed_folder / 'a.jpg'}: the output would be 2400000x2000000 ")
    assert "more than this machine's" in first and "smaller output" in first
    assert not out.exists() or list(out.iterdir()) == []


def test_a_volume_output_too_big_for_memory_is_refused(ginr, nifti, model_3d, tmp_path):
    result = ginr("upscale", nifti, tmp_path / "big.nii.gz", "--scale", "10000", "--model", model_3d)
    assert result.exit_code == 1, result.output
    assert "the output would be 330000x410000x250000 " in result.stderr
    assert not (tmp_path / "big.nii.gz").exists()


def test_decoding_to_an_output_too_big_for_memory_is_refused(ginr, nifti_latent, model_3d, tmp_path):
    result = ginr(
        "decode", nifti_latent, "-o", tmp_path / "big.nii.gz", "--scale", "10000", "--model", model_3d
    )
    assert result.exit_code == 1, result.output
    assert "the output would be 330000x410000x250000 " in result.stderr
    assert not (tmp_path / "big.nii.gz").exists()


def test_verbose_says_once_why_an_installed_mamba_ssm_is_not_used(
    ginr, broken_mamba_ssm, mixed_folder, model_2d, tmp_path
):
    """A build of mamba-ssm for another CUDA falls back to the other scans quietly; `-v` says why, once,
    though a 24x20 image at x2 runs the scan in every layer of several tiles."""
    from ginr_cli.nn import scan

    line = f"mamba-ssm is installed but does not import, so its CUDA scan is off ({broken_mamba_ssm})"
    src = mixed_folder / "a.jpg"
    verbose = ginr("upscale", src, tmp_path / "v.png", "--scale", "2", "--model", model_2d, "-v")
    assert verbose.exit_code == 0, verbose.output
    assert verbose.stderr.splitlines().count(line) == 1, verbose.stderr
    scan._say_why_mamba_ssm_is_off.cache_clear()  # a new process, as it were
    plain = ginr("upscale", src, tmp_path / "p.png", "--scale", "2", "--model", model_2d)
    assert plain.exit_code == 0, plain.output
    assert "mamba-ssm" not in plain.stderr
