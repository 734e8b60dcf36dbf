"""`ginr eval` on volumes: the scales it accepts, and thin volumes scored."""

import json
import math

import nibabel as nib
import numpy as np

from tests.cli.conftest import ANATOMICAL


def test_a_fractional_volume_scale_is_refused_not_truncated(ginr, nifti, model_3d):
    """A slab is a whole number of slices: --scales 2.5 once ran as 2 and was reported as 2."""
    result = ginr("eval", nifti, "--scales", "2,2.5", "--model", model_3d)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "ginr: error: --scales 2.5: volumes are thick-sliced by whole factors (2, 3, 4...)"
    ]


def test_a_scale_beyond_the_slices_fails_that_volume_with_one_line(ginr, nifti, model_3d):
    result = ginr("eval", nifti, "--scales", "30", "--model", model_3d)  # 25 slices along axis 2
    assert result.exit_code == 1, result.output
    assert result.stderr == f"ginr: error: {nifti}: --scales 30: only 25 slices along axis 2\n"


def test_a_volume_thinner_than_the_ssim_window_is_scored(ginr, model_3d, tmp_path):
    """40x44x6: six slices, fewer than SSIM's 11-wide window, once crashed the evaluation."""
    path = tmp_path / "thin.nii.gz"
    smooth = np.cumsum(np.random.default_rng(0).random((40, 44, 6)), axis=0).astype(np.float32)
    nib.save(nib.Nifti1Image(smooth, nib.load(ANATOMICAL).affine), path)
    result = ginr("eval", path, "--scales", "2", "--model", model_3d, "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)["items"]
    assert [s["method"] for s in items] == ["ginr", "trilinear", "cubic-spline"]
    assert all(math.isfinite(s["psnr"]) and -1 <= s["ssim"] <= 1 for s in items)


def test_consistency_can_only_bring_ginr_closer_to_the_truth(ginr, nifti, model_3d):
    """ginr's thick-slice means set to the input's (the default) never lower its PSNR; with an untrained
    model (a B-spline base plus a random correction) they raise it. --no-consistency scores the raw output."""
    psnr = {}
    for flag in ("--consistency", "--no-consistency"):
        result = ginr("eval", nifti, "--scales", "2,4", "--model", model_3d, flag, "--json")
        assert result.exit_code == 0, result.output
        psnr[flag] = {
            r["scale"]: r["psnr"] for r in json.loads(result.stdout)["averages"] if r["method"] == "ginr"
        }
    for scale in (2, 4):
        assert psnr["--consistency"][scale] > psnr["--no-consistency"][scale] + 0.1
