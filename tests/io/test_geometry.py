import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ginr_cli.errors import GinrError
from ginr_cli.io.geometry import output_shape, scale_affine, scale_spacing, spacing_to_shape

sizes = st.integers(1, 400)
shapes = st.tuples(sizes, sizes, sizes)
angles = st.floats(-np.pi, np.pi, allow_nan=False)
zooms = st.floats(0.05, 10.0)


def rotation(a: float, b: float, c: float) -> np.ndarray:
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


@st.composite
def affines(draw) -> np.ndarray:
    """Oblique affines with any flips (LPS, RAS, ...), positive zooms and a translation."""
    rot = rotation(draw(angles), draw(angles), draw(angles))
    flips = np.array([draw(st.sampled_from([-1.0, 1.0])) for _ in range(3)])
    z = np.array([draw(zooms) for _ in range(3)])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(flips * z)
    affine[:3, 3] = [draw(st.floats(-300, 300)) for _ in range(3)]
    return affine


def world(affine: np.ndarray, ijk) -> np.ndarray:
    return affine[:3, :3] @ np.asarray(ijk, dtype=np.float64) + affine[:3, 3]


def cosines(affine: np.ndarray) -> np.ndarray:
    rzs = affine[:3, :3]
    return rzs / np.linalg.norm(rzs, axis=0)


@settings(max_examples=200, deadline=None)
@given(affines(), shapes, shapes)
def test_field_of_view_corners_and_centre_stay_put(affine, old, new):
    scaled = scale_affine(affine, old, new)
    tol = dict(rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(world(scaled, [-0.5] * 3), world(affine, [-0.5] * 3), **tol)
    new, old = np.array(new), np.array(old)
    np.testing.assert_allclose(world(scaled, new - 0.5), world(affine, old - 0.5), **tol)  # far corner
    np.testing.assert_allclose(world(scaled, (new - 1) / 2), world(affine, (old - 1) / 2), **tol)  # centre


@settings(max_examples=100, deadline=None)
@given(affines(), shapes, shapes)
def test_orientation_kept_and_zooms_scaled(affine, old, new):
    scaled = scale_affine(affine, old, new)
    np.testing.assert_allclose(cosines(scaled), cosines(affine), atol=1e-12)
    assert nib.aff2axcodes(scaled) == nib.aff2axcodes(affine)
    np.testing.assert_allclose(
        nib.affines.voxel_sizes(scaled), scale_spacing(nib.affines.voxel_sizes(affine), old, new), rtol=1e-12
    )
    np.testing.assert_array_equal(scaled[3], [0, 0, 0, 1])


@settings(max_examples=50, deadline=None)
@given(affines(), shapes)
def test_scale_one_returns_the_affine_exactly(affine, shape):
    scaled = scale_affine(affine, shape, shape)
    np.testing.assert_array_equal(scaled, affine)
    assert scaled is not affine


def test_known_values_and_lps():
    # 4 voxels -> 8 along every axis: s = 0.5, new voxel 0 centred at old voxel -0.25
    lps = np.diag([-2.0, -2.0, 3.0, 1.0])
    lps[:3, 3] = [90, 126, -72]
    expected = lps @ np.array([[0.5, 0, 0, -0.25], [0, 0.5, 0, -0.25], [0, 0, 0.5, -0.25], [0, 0, 0, 1]])
    np.testing.assert_allclose(scale_affine(lps, (4, 4, 4), (8, 8, 8)), expected)
    assert nib.aff2axcodes(scale_affine(lps, (4, 4, 4), (8, 8, 8))) == ("L", "P", "S")
    # per-axis scale (1, 1, 2.5): only the third column changes
    scaled = scale_affine(lps, (10, 10, 10), (10, 10, 25))
    np.testing.assert_array_equal(scaled[:, :2], lps[:, :2])
    np.testing.assert_allclose(scaled[2, 2], 3.0 / 2.5)


def test_scale_affine_any_rank():
    a2 = np.diag([0.5, 0.25, 1.0])
    np.testing.assert_allclose(
        scale_affine(a2, (10, 20), (20, 20)), [[0.25, 0, -0.125], [0, 0.25, 0], [0, 0, 1]]
    )
    with pytest.raises(ValueError):
        scale_affine(np.eye(4), (2, 2), (3, 3))


def test_output_shape():
    assert output_shape((33, 41, 25), 2) == (66, 82, 50)
    assert output_shape((33, 41, 25), (1, 1, 2.5)) == (33, 41, 63)  # 62.5 rounds half up
    assert output_shape((3, 3, 3), 0.01) == (1, 1, 1)
    assert output_shape((10, 10), (0.5, 1.5)) == (5, 15)
    for bad in (0, -1, float("nan"), float("inf"), (1, 2)):
        with pytest.raises(GinrError):
            output_shape((4, 4, 4), bad)


def test_spacing_to_shape():
    assert spacing_to_shape((100, 100, 20), (1, 1, 5), 1) == (100, 100, 100)
    assert spacing_to_shape((181, 217, 181), 1.0, 2.0) == (91, 109, 91)
    # the exact voxel size that keeps the field of view
    exact = scale_spacing((1, 1, 1), (181, 217, 181), (91, 109, 91))
    np.testing.assert_allclose(exact, [181 / 91, 217 / 109, 181 / 91])
    with pytest.raises(GinrError):
        spacing_to_shape((4, 4, 4), (1, 1, 1), (1, 0, 1))
