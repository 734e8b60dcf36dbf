"""`ginr encode` and `decode` with codec models (a latent grid): sizes, qualities, refinement, regions."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from safetensors import safe_open

from ginr_cli.engine import metrics
from ginr_cli.engine.codec import quality_step

EXAMPLE_PHOTO = Path(__file__).resolve().parents[2] / "examples" / "images" / "cups.jpg"


def _encode(ginr, src, dst, model, *extra):
    result = ginr("encode", src, "-o", dst, "--model", model, "--json", *extra)
    assert result.exit_code == 0, result.output
    (facts,) = json.loads(result.stdout)["results"]
    return facts


def test_encode_json_reports_the_real_size_bits_and_ratios(ginr, nifti, codec_3d, tmp_path):
    dst = tmp_path / "a.safetensors"
    facts = _encode(ginr, nifti, dst, codec_3d, "--check", "--refine", "5")
    voxels = 33 * 41 * 25
    assert facts["input"] == str(nifti) and facts["output"] == str(dst)
    assert facts["bytes"] == dst.stat().st_size
    assert facts["bits_per_voxel"] == pytest.approx(8 * dst.stat().st_size / voxels, abs=1e-4)
    assert facts["raw_bytes"] == voxels * 2  # int16
    assert facts["ratio_to_source"] == pytest.approx(nifti.stat().st_size / dst.stat().st_size, abs=1e-3)
    assert np.isfinite(facts["psnr"])
    with safe_open(str(dst), framework="pt") as f:  # quality 3: every channel at the trained step
        assert f.get_tensor("steps").tolist() == [quality_step(3)] * 4


def test_a_lower_quality_makes_a_smaller_file(ginr, nifti, codec_3d, tmp_path):
    sizes = [
        _encode(ginr, nifti, tmp_path / f"q{q}.safetensors", codec_3d, "--quality", q, "--refine", "0")[
            "bytes"
        ]
        for q in (1, 3, 5)
    ]
    assert sizes[0] < sizes[1] < sizes[2]
    bad = ginr("encode", nifti, "-o", tmp_path / "x.safetensors", "--model", codec_3d, "--quality", "6")
    assert bad.exit_code == 2 and not (tmp_path / "x.safetensors").exists()


def test_refinement_raises_the_psnr_of_what_is_stored(ginr, nifti, codec_3d, tmp_path):
    plain = _encode(ginr, nifti, tmp_path / "a.safetensors", codec_3d, "--check", "--refine", "0")
    fitted = _encode(ginr, nifti, tmp_path / "b.safetensors", codec_3d, "--check", "--refine", "30")
    assert fitted["psnr"] > plain["psnr"] + 1.0


def test_a_codec_latent_decodes_at_any_scale_and_region_alike(ginr, nifti, codec_3d, tmp_path):
    latent = tmp_path / "a.safetensors"
    _encode(ginr, nifti, latent, codec_3d, "--refine", "2")
    full, box = tmp_path / "full.nii.gz", tmp_path / "box.nii.gz"
    for out, extra in ((full, []), (box, ["--roi", "8:24,0:41,5:15"])):
        result = ginr("decode", latent, "-o", out, "--model", codec_3d, "--scale", "2", *extra)
        assert result.exit_code == 0, result.output
    whole, part = nib.load(full), nib.load(box)
    assert whole.shape == (66, 82, 50)
    np.testing.assert_allclose(part.get_fdata(), whole.get_fdata()[16:48, :, 10:30], atol=1e-3)
    np.testing.assert_allclose(part.affine[:3, 3], whole.affine[:3, :3] @ [16, 0, 10] + whole.affine[:3, 3])


def test_an_image_through_a_codec_model_keeps_size_mode_and_alpha(ginr, mixed_folder, codec_2d, tmp_path):
    from PIL import Image

    files = [mixed_folder / n for n in ("a.jpg", "b.png", "c.tif")]
    result = ginr("encode", *files, "-o", tmp_path / "lat", "--model", codec_2d, "--refine", "3")
    assert result.exit_code == 0, result.output
    result = ginr("decode", tmp_path / "lat", "-o", tmp_path / "dec", "--model", codec_2d)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "dec" / "b.png") as im:
        assert im.mode == "RGBA" and im.size == (24, 20)
    with Image.open(tmp_path / "dec" / "c.tif") as im:
        assert im.size == (24, 20) and im.mode.startswith("I;16")


def test_eval_codec_measures_real_files_beside_the_classic_codecs(ginr, nifti, codec_3d, tmp_path):
    plot = tmp_path / "rd.png"
    args = ("eval", nifti, "--codec", "--qualities", "1,3", "--refine", "0", "--model", codec_3d)
    result = ginr(*args, "--json", "--plot", plot)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = {row["quality"]: row for row in report["summary"]}
    assert sorted(rows) == [1, 3] and rows[1]["bits"] < rows[3]["bits"]
    ours = {p["setting"]: p for p in report["items"] if p["method"] == "ginr"}
    encoded = _encode(ginr, nifti, tmp_path / "q3.safetensors", codec_3d, "--quality", "3", "--refine", "0")
    assert ours["3"]["bits"] == pytest.approx(encoded["bits_per_voxel"], abs=1e-3)  # the real file's size
    # and the real decoded file's fidelity: what `ginr decode` writes (rounded, clipped to the dtype)
    decoded = ginr("decode", tmp_path / "q3.safetensors", "-o", tmp_path / "q3.nii.gz", "--model", codec_3d)
    assert decoded.exit_code == 0, decoded.output
    truth = np.asarray(nib.load(nifti).dataobj).astype(np.float64)
    written = np.asarray(nib.load(tmp_path / "q3.nii.gz").dataobj).astype(np.float64)
    assert ours["3"]["psnr"] == pytest.approx(metrics.volume_scores(written, truth)[0], abs=1e-6)
    methods = {p["method"] for p in report["items"]}
    assert methods == {"ginr", "slice-jpeg", "down2-spline", "gzip"}
    assert rows[3]["gzip_bits"] > 0 and "slice-jpeg_psnr" in rows[3]
    assert plot.stat().st_size > 0
    table = ginr(*args)
    assert table.exit_code == 0 and "slice-jpeg_psnr" in table.stdout and "gzip: " in table.stdout


def test_eval_codec_scores_a_gray_photo_as_its_truth_is_kept(ginr, codec_2d, tmp_path):
    from PIL import Image

    from ginr_cli.engine import rate_distortion as rd

    gray = tmp_path / "gray.png"
    Image.open(EXAMPLE_PHOTO).convert("L").crop((0, 0, 40, 32)).save(gray)
    result = ginr("eval", gray, "--codec", "--qualities", "3", "--model", codec_2d, "--json")
    assert result.exit_code == 0, result.output
    ours = [p for p in json.loads(result.stdout)["items"] if p["method"] == "ginr"]
    truth = rd.load_truth(gray, "image")
    assert truth.shape == (32, 40, 3) and len(ours) == 1 and 10 < ours[0]["psnr"] < 80
