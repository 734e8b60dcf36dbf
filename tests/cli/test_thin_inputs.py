"""Thin and tiny inputs, down to 1 pixel per axis: whatever the readers accept, `ginr encode` writes a latent
that `ginr decode` turns back into the source's shape. Tiles are clipped to the source, so a thin axis has
a thin tile; the latent check once wanted the overlap below the thinnest tile and refused them."""

import itertools

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from tests.cli.conftest import ANATOMICAL


def _round_trip(ginr, sources, model, tmp_path) -> list:
    encoded = ginr("encode", *sources, "-o", tmp_path / "lat", "--model", model)
    assert encoded.exit_code == 0, encoded.output
    latents = [tmp_path / "lat" / (p.name.split(".")[0] + ".safetensors") for p in sources]
    decoded = ginr("decode", *latents, "-o", tmp_path / "out", "--model", model)
    assert decoded.exit_code == 0, decoded.output
    return [tmp_path / "out" / p.name for p in sources]


def _images(folder, sizes) -> list:
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for h, w in itertools.product(sizes, repeat=2):
        paths.append(folder / f"{h}x{w}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def _volumes(folder, shapes) -> list:
    folder.mkdir()
    rng = np.random.default_rng(0)
    affine = nib.load(ANATOMICAL).affine
    paths = []
    for shape in shapes:
        paths.append(folder / ("x".join(map(str, shape)) + ".nii.gz"))
        nib.save(nib.Nifti1Image(rng.random(shape).astype(np.float32), affine), paths[-1])
    return paths


@pytest.mark.parametrize("codec", [False, True])
def test_every_image_shape_round_trips(ginr, model_2d, codec_2d, codec, tmp_path):
    """Tiny models with 16x16 tiles: every height and width in 1, 2, 3, 15, 16, 17 and 29."""
    sources = _images(tmp_path / "src", (1, 2, 3, 15, 16, 17, 29))
    outputs = _round_trip(ginr, sources, codec_2d if codec else model_2d, tmp_path)
    for src, out in zip(sources, outputs, strict=True):
        with Image.open(src) as a, Image.open(out) as b:
            assert (b.size, b.mode) == (a.size, a.mode), src.name


@pytest.mark.parametrize("codec", [False, True])
def test_every_volume_shape_round_trips(ginr, model_3d, codec_3d, codec, tmp_path):
    """Tiny models with 8^3 tiles: every axis in 1, 2, 7 and 9 (3 and 8 on one axis)."""
    shapes = [*itertools.product((1, 2, 7, 9), repeat=3), (3, 8, 1), (8, 8, 3)]
    sources = _volumes(tmp_path / "src", shapes)
    outputs = _round_trip(ginr, sources, codec_3d if codec else model_3d, tmp_path)
    for src, out, shape in zip(sources, outputs, shapes, strict=True):
        decoded = nib.load(out)
        assert decoded.shape == shape, src.name
        np.testing.assert_allclose(decoded.affine, nib.load(src).affine, atol=1e-5)


def test_the_shipped_models_round_trip_a_slice_a_slab_and_a_strip(ginr, tmp_path):
    """The issue's cases on the shipped models: a 91x109x1 and a 40x44x6 NIfTI, a 3x64 image (and a 1x1)."""
    volumes = _volumes(tmp_path / "v", [(91, 109, 1), (40, 44, 6)])
    for src, out in zip(volumes, _round_trip(ginr, volumes, "volume", tmp_path / "vol"), strict=True):
        assert nib.load(out).shape == nib.load(src).shape
    images = [tmp_path / "strip.png", tmp_path / "dot.png"]
    Image.fromarray(np.full((3, 64, 3), 128, np.uint8)).save(images[0])
    Image.fromarray(np.full((1, 1, 3), 128, np.uint8)).save(images[1])
    for src, out in zip(images, _round_trip(ginr, images, "image", tmp_path / "img"), strict=True):
        with Image.open(src) as a, Image.open(out) as b:
            assert b.size == a.size
