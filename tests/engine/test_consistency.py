import numpy as np
import pytest
from scipy import ndimage

from ginr_cli.engine.consistency import block_means, make_consistent, whole_factors
from ginr_cli.engine.evaluate import thick_slices


@pytest.mark.parametrize(
    ("in_shape", "out_shape", "factors"),
    [
        ((10, 7, 5), (10, 14, 5), (1, 2, 1)),
        ((10, 7, 5), (20, 28, 15), (2, 4, 3)),
        ((10, 7, 5), (10, 15, 5), None),  # x15/7: blocks would straddle input voxels
        ((10, 7, 5), (10, 3, 5), None),  # downscaled
    ],
)
def test_whole_factors_only_where_every_axis_is_a_whole_multiple(in_shape, out_shape, factors):
    assert whole_factors(in_shape, out_shape) == factors


def test_block_means_are_thick_slices_along_one_axis():
    values = np.random.default_rng(0).normal(size=(6, 12, 5))
    np.testing.assert_allclose(block_means(values, (1, 4, 1)), thick_slices(values, 1, 4))


def test_the_output_averages_to_the_input_and_moves_towards_the_truth():
    """Cubic-spline upscaling of thick slices, made consistent: each block averages exactly to its thick
    slice, and the error to the truth falls (the projection can never raise it for such an input)."""
    rng = np.random.default_rng(1)
    truth = ndimage.gaussian_filter(rng.normal(size=(16, 24, 12)), 1.2)
    for axis, factor in [(0, 2), (1, 4), (2, 3)]:
        lr = thick_slices(truth, axis, factor)
        zoom = [t / s for t, s in zip(truth.shape, lr.shape, strict=True)]
        out = ndimage.zoom(lr, zoom, order=3, mode="nearest", grid_mode=True).astype(np.float32)
        before = np.mean((out - truth) ** 2)
        factors = whole_factors(lr.shape, out.shape)
        make_consistent(out, lr, factors)
        np.testing.assert_allclose(thick_slices(out, axis, factor), lr, atol=1e-5)
        assert np.mean((out - truth) ** 2) < before


def test_detail_within_a_block_is_kept_and_a_consistent_output_is_left_alone():
    source = np.array([[1.0, 3.0]], np.float32)
    out = np.array([[0.0, 4.0, 2.0, 2.0]], np.float32)  # block means 2 and 2
    make_consistent(out, source, (1, 2))
    np.testing.assert_array_equal(out, [[-1.0, 3.0, 3.0, 3.0]])  # each block shifted, its contrast kept
    again = out.copy()
    make_consistent(again, source, (1, 2))
    np.testing.assert_array_equal(again, out)


def test_a_view_that_is_not_contiguous_is_refused():
    out = np.zeros((4, 8), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        make_consistent(out, np.zeros((2, 2), np.float32), (2, 2))
