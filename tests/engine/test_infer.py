import numpy as np
import pytest
import torch

from ginr_cli.engine.infer import default_grid, encode_tiles, flip_sets, latent_render, resample
from ginr_cli.engine.tiling import OutputGrid, stitch
from ginr_cli.nn.coords import cell_centres, interpolate_at
from ginr_cli.nn.ginr import MambaGINR
from tests.conftest import tiny_config, untrained

CPU = torch.device("cpu")


def test_an_untrained_model_upscales_to_seamless_global_bicubic():
    # The decoder starts as its base, so tiled upscaling must equal one bicubic pass over the whole image.
    model = MambaGINR(tiny_config(2)).eval()
    rng = np.random.default_rng(0)
    source = rng.random((3, 37, 50)).astype(np.float32)
    grid = default_grid(model, source.shape[1:], tile=16, overlap=8)
    out = resample(model, source, OutputGrid.full((37, 50), (74, 100)), CPU, grid=grid, batch=3)
    coords = cell_centres((74, 100)).flatten(0, 1)[None]
    expected = interpolate_at(torch.from_numpy(source)[None], coords)[0].reshape(74, 100, 3).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("rank,shape,out_shape", [(2, (30, 41), (45, 62)), (3, (12, 9, 17), (12, 18, 34))])
def test_tiled_output_does_not_depend_on_the_tile_batch(rank, shape, out_shape):
    model = untrained(MambaGINR(tiny_config(rank))).eval()
    source = np.random.default_rng(1).random((model.cfg.in_channels, *shape)).astype(np.float32)
    out = OutputGrid.full(shape, out_shape)
    one = resample(model, source, out, CPU, batch=1)
    many = resample(model, source, out, CPU, batch=7)
    assert one.shape == (*out_shape, model.cfg.out_channels)
    np.testing.assert_allclose(many, one, atol=1e-5)


def test_decoding_stored_latents_equals_decoding_fresh_ones_without_base():
    model = untrained(MambaGINR(tiny_config(2))).eval()
    source = np.random.default_rng(2).random((3, 20, 33)).astype(np.float32)
    grid = default_grid(model, (20, 33))
    latents = encode_tiles(model, source, grid, CPU, batch=2)
    assert latents.shape == (len(grid), 8, 16)
    out = OutputGrid.full((20, 33), (40, 66))
    a = stitch(grid, out, latent_render(model, latents, grid, CPU), 3, batch=4)
    b = stitch(grid, out, latent_render(model, latents.half().float(), grid, CPU), 3, batch=1)
    assert a.shape == (40, 66, 3)
    np.testing.assert_allclose(a, b, atol=5e-2)  # fp16 storage changes little


def test_a_gray_source_runs_through_a_colour_model():
    model = untrained(MambaGINR(tiny_config(2))).eval()
    source = np.random.default_rng(3).random((1, 16, 16)).astype(np.float32)
    out = resample(model, source, OutputGrid.full((16, 16), (32, 32)), CPU)
    assert out.shape == (32, 32, 1)


@pytest.mark.parametrize("rank,shape,out_shape", [(2, (16, 16), (24, 40)), (3, (8, 8, 8), (8, 16, 12))])
def test_the_ensemble_of_one_tile_is_the_mean_over_the_flipped_inputs_flipped_back(rank, shape, out_shape):
    model = untrained(MambaGINR(tiny_config(rank))).eval()
    source = np.random.default_rng(4).random((model.cfg.in_channels, *shape)).astype(np.float32)
    out = OutputGrid.full(shape, out_shape)
    ensemble = resample(model, source, out, CPU, ensemble=True)
    flips = flip_sets(rank)
    assert len(flips) == 2**rank
    flipped = [np.flip(source, [1 + a for a in axes]).copy() for axes in flips]
    singles = [np.flip(resample(model, f, out, CPU), axes) for f, axes in zip(flipped, flips, strict=True)]
    np.testing.assert_allclose(ensemble, np.mean(singles, axis=0), atol=1e-5)
    assert np.abs(ensemble - singles[0]).max() > 1e-3  # the flips do change a random model's output


def test_the_ensemble_does_not_depend_on_the_tile_batch():
    model = untrained(MambaGINR(tiny_config(2))).eval()
    source = np.random.default_rng(5).random((3, 30, 41)).astype(np.float32)
    out = OutputGrid.full((30, 41), (45, 62))
    one = resample(model, source, out, CPU, batch=1, ensemble=True)
    many = resample(model, source, out, CPU, batch=7, ensemble=True)
    np.testing.assert_allclose(many, one, atol=1e-5)
