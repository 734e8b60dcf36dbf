"""Refining one file's latents with the decoder frozen."""

import os

import nibabel as nib
import numpy as np
import torch

from ginr_cli.engine import normalize
from ginr_cli.engine.infer import default_grid, encode_tiles
from ginr_cli.engine.refine import refine_latents
from ginr_cli.nn.ginr import MambaGINR
from tests.conftest import tiny_codec_config, untrained

ANATOMICAL = os.path.join(os.path.dirname(nib.__file__), "tests", "data", "anatomical.nii")


def _objective(model, source, grid, integers, step):
    """Squared error over every voxel plus the rate term, as refinement counts them."""
    errors, bits = [], 0.0
    with torch.no_grad():
        for i, origin in enumerate(grid):
            tile = source[(slice(None), *(slice(o, o + t) for o, t in zip(origin, grid.tile, strict=True)))]
            y = integers[i : i + 1] * step
            pred = model.decode_grid(y, grid.tile, shape=grid.tile, step=step)[0].numpy()
            errors.append(np.mean((pred - tile) ** 2))
            bits += float(model.rate(y, step).sum()) / np.prod(grid.tile)
    return float(np.mean(errors)) + model.cfg.latent.rate_weight * step**2 * bits / len(errors)


def test_refinement_lowers_error_plus_rate_of_what_is_stored():
    torch.manual_seed(0)
    model = untrained(MambaGINR(tiny_codec_config(3))).eval()
    volume = np.asarray(nib.load(ANATOMICAL).dataobj).astype(np.float32)[:16, :16, :16]
    source = normalize.for_volume(volume).apply(volume)[None].astype(np.float32)
    grid = default_grid(model, source.shape[1:])
    assert grid.overlap == 0
    step = 0.5
    start = encode_tiles(model, source, grid, torch.device("cpu")) / step
    seen = []
    refined = refine_latents(
        model,
        source,
        grid,
        start,
        step,
        40,
        torch.device("cpu"),
        share=0.5,
        lr=0.1,
        on_step=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (40, 40) and len(seen) == 40
    assert torch.equal(refined, refined.round()) and refined.shape == start.shape
    before = _objective(model, source, grid, start.round(), step)
    after = _objective(model, source, grid, refined, step)
    assert after < 0.7 * before
    assert all(p.requires_grad for p in model.parameters())  # the model is left as it was found


def test_the_quality_ladder_halves_the_step_squared():
    from ginr_cli.engine.codec import quality_step

    assert quality_step(3) == 1.0
    steps = [quality_step(q) for q in (1, 2, 3, 4, 5)]
    assert all(abs(a / b - 2**0.5) < 1e-12 for a, b in zip(steps, steps[1:], strict=False))
