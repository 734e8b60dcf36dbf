"""`ginr eval` on volumes: the scales it accepts."""


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
