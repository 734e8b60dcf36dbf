import itertools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ginr_cli.engine.tiling import (
    OutputGrid,
    TileGrid,
    _tile_shares,
    axis_origins,
    frame_progress,
    plan_tiles,
    stitch,
)
from ginr_cli.io.latents import check_tiles


def interpolating_render(source: np.ndarray, grid):
    """A decoder that is exactly linear interpolation of the tile it was given (source: (*spatial, c))."""

    def render(origins, coords, cells):
        values = []
        for origin, xy in zip(origins, coords, strict=True):
            tile = source[tuple(slice(o, o + t) for o, t in zip(origin, grid.tile, strict=True))]
            values.append(interpolate(tile, xy))
        return values

    return render


def interpolate(array: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """array (*spatial, c), coords (q, k) in [-1, 1] (axis order) -> (q, c), bi/trilinear, border clamp."""
    k = coords.shape[1]
    x = torch.from_numpy(np.moveaxis(array, -1, 0))[None].double()  # (1, c, *spatial)
    g = (
        torch.from_numpy(coords[:, ::-1].copy()).double().view(1, *([1] * (k - 1)), -1, k)
    )  # grid_sample: x first
    out = F.grid_sample(x, g, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(array.shape[-1], -1).T.numpy()


def global_interpolation(source, out_shape):
    out = OutputGrid.full(source.shape[:-1], out_shape)
    mesh = np.meshgrid(
        *[p / n * 2 - 1 for p, n in zip(out.positions, source.shape, strict=False)], indexing="ij"
    )
    coords = np.stack([m.ravel() for m in mesh], -1)
    return interpolate(source, coords).reshape(*out_shape, source.shape[-1])


@pytest.mark.parametrize(
    "shape,out_shape,tile,overlap",
    [
        ((70, 53), (140, 106), 16, 4),  # x2
        ((70, 53), (105, 80), 16, 8),  # x1.5, not a whole number of output pixels per tile
        ((9, 40), (37, 151), 16, 4),  # an axis smaller than one tile, odd scales
        ((1, 50), (3, 150), 16, 4),  # a 1xN image
        ((21, 18, 25), (42, 18, 63), 8, 4),  # a volume, per-axis scale (2, 1, 2.5)
    ],
)
def test_stitched_interpolation_equals_untiled_interpolation(shape, out_shape, tile, overlap):
    rng = np.random.default_rng(0)
    source = rng.random((*shape, 2))
    grid = plan_tiles(shape, tile, overlap)
    out = OutputGrid.full(shape, out_shape)
    tiled = stitch(grid, out, interpolating_render(source, grid), channels=2, batch=3)
    np.testing.assert_allclose(tiled, global_interpolation(source, out_shape), atol=1e-5)


def test_output_is_the_same_whatever_the_tile_batch_and_streams_in_order():
    rng = np.random.default_rng(1)
    source = rng.random((50, 45, 3))
    grid = plan_tiles(source.shape[:2], 16, 6)
    out = OutputGrid.full(source.shape[:2], (120, 90))
    reference = stitch(grid, out, interpolating_render(source, grid), channels=3, batch=1)
    for batch in (100, 5, 2):
        slabs = []
        stitch(
            grid,
            out,
            interpolating_render(source, grid),
            3,
            batch,
            sink=lambda s, v, into=slabs: into.append((s, v)),
        )
        starts = [s for s, _ in slabs]
        assert starts == sorted(starts) and starts[0] == 0
        assert sum(v.shape[0] for _, v in slabs) == 120
        np.testing.assert_allclose(np.concatenate([v for _, v in slabs]), reference, atol=1e-6)
    # With small batches the band accumulated at any time is a tile row or two, not the image.
    assert max(v.shape[0] for _, v in slabs) <= 2 * 16 * 120 / 50


def test_tile_progress_counts_each_decoded_tile_once_batch_by_batch():
    source = np.random.default_rng(3).random((50, 45, 1))
    grid = plan_tiles(source.shape[:2], 16, 6)
    out = OutputGrid.full(source.shape[:2], (100, 90))
    rendered, counts = [], []

    def render(origins, coords, cells):
        rendered.extend(origins)
        return interpolating_render(source, grid)(origins, coords, cells)

    def count(done, total):
        counts.append((done, total))

    stitch(grid, out, render, 1, batch=4, on_tiles=count)
    total = len(rendered)
    assert total == len(set(rendered)) == len(grid) == 20  # 5x4 tiles, each decodes some output
    assert counts == [(4, 20), (8, 20), (12, 20), (16, 20), (20, 20)]
    # Several frames tiled alike count as one run over all of them.
    counts.clear()
    for frame in range(3):
        stitch(grid, out, render, 1, batch=5, on_tiles=frame_progress(count, frame, 3))
    assert counts == [(20 * frame + done, 60) for frame in range(3) for done in (5, 10, 15, 20)]


def test_origins_cover_the_axis_and_end_flush():
    assert axis_origins(10, 16, 4) == [0]
    assert axis_origins(16, 16, 4) == [0]
    assert axis_origins(40, 16, 4) == [0, 12, 24]
    assert axis_origins(41, 16, 4) == [0, 12, 24, 25]
    with pytest.raises(ValueError):
        plan_tiles((10, 10), 8, 8)


def test_roi_box_equals_the_same_region_of_the_full_output():
    rng = np.random.default_rng(2)
    source = rng.random((40, 40, 1))
    grid = plan_tiles((40, 40), 16, 4)
    full = stitch(grid, OutputGrid.full((40, 40), (80, 80)), interpolating_render(source, grid), 1)
    # Source box [10, 30) x [5, 25) at scale 2 is output rows 20..60, cols 10..50.
    roi = stitch(grid, OutputGrid.box((10, 5), (30, 25), (40, 40)), interpolating_render(source, grid), 1)
    np.testing.assert_allclose(roi, full[20:60, 10:50], atol=1e-6)


def test_a_plan_holds_short_arrays_of_its_own():
    """Planning a wide output keeps, per tile, only its own short 1D arrays: views into the full-width
    position arrays kept 160 KB per tile alive, 6.7 GB for a 6000x4000 image at x2 (found by the memory
    benchmark)."""
    grid = plan_tiles((40, 3000), 32, 8)
    out = OutputGrid.full(grid.shape, (80, 6000))
    shares = _tile_shares(grid, out)
    assert len(shares) == len(grid)
    for share in shares:
        for axis in share.axes:
            for array in (axis.weights, axis.coords):
                assert array.base is None and array.size <= 2 * 32 * 2


def test_only_the_blending_ramps_are_decoded_twice():
    """A sample is decoded by two tiles only inside the middle quarter of their overlap, where both weigh
    it: along an axis of 200 pixels (tiles of 32, overlap 8, so 2 pixels of ramp per seam at scale 1)."""
    grid = plan_tiles((1, 200), 32, 8)
    shares = _tile_shares(grid, OutputGrid.full(grid.shape, grid.shape))
    seams = len(grid) - 1
    decoded = sum(share.axes[1].hi - share.axes[1].lo for share in shares)
    assert decoded == 200 + 2 * seams
    for left, right in zip(shares, shares[1:], strict=False):
        a, b = left.axes[1], right.axes[1]
        assert a.hi - b.lo == 2  # the shared samples...
        assert np.all((a.weights[b.lo - a.lo :] > 0) & (a.weights[b.lo - a.lo :] < 1))  # ...each in a ramp


@pytest.mark.parametrize("rank,tile,overlap", [(2, 48, 6), (2, 16, 4), (3, 32, 8), (3, 8, 4), (3, 8, 0)])
def test_every_grid_of_a_readable_shape_passes_the_latent_check_and_plans_again_alike(rank, tile, overlap):
    """Any shape a reader accepts, down to 1 pixel per axis: its grid (the shipped models' tiles and
    overlaps, and the tiny test models') is what `load_latent` accepts, and `from_dict` plans it again
    the same. The check once required the overlap below the thinnest tile, so a 91x109x1 NIfTI or a
    3-pixel-high image encoded and was then refused as broken."""
    sizes = sorted({1, 2, 3, overlap, overlap + 1, tile - 1, tile, tile + 1, 2 * tile - overlap + 1} - {0})
    for shape in itertools.product(sizes, repeat=rank):
        grid = plan_tiles(shape, tile, overlap)
        check_tiles(grid.to_dict(), list(shape))
        again = TileGrid.from_dict(json.loads(json.dumps(grid.to_dict())))
        assert again == grid, shape
        assert all(1 <= t <= n for t, n in zip(grid.tile, shape, strict=True))


def test_a_grid_stored_with_an_overlap_wider_than_its_one_tile_still_plans():
    """Earlier versions stored the model's overlap for a source smaller than a tile (a 1x1 image: tile
    [1, 1], overlap 6); one tile has no overlap, so such a latent still decodes."""
    stored = {"shape": [1, 1], "tile": [1, 1], "overlap": 6}
    check_tiles(stored, [1, 1])
    grid = TileGrid.from_dict(stored)
    assert grid.tile == (1, 1) and grid.overlap == 0 and list(grid) == [(0, 0)]
    for broken in (
        {"shape": [40, 3], "tile": [32, 3], "overlap": 32},  # two tiles along axis 0 cannot overlap wholly
        {"shape": [12, 16], "tile": [16, 16], "overlap": 0},  # a tile wider than the source
        {"shape": [12, 16], "tile": [12, 16], "overlap": -1},
    ):
        with pytest.raises(ValueError, match="does not fit"):
            check_tiles(broken, broken["shape"])
