import numpy as np
import pytest
import torch
from scipy import ndimage

from ginr_cli.nn.coords import (
    _cells_by_index,
    _cells_by_window,
    cell_centres,
    cell_size,
    interpolate_at,
    neighbourhood,
)


def cubic_weights(t: torch.Tensor, a: float = -0.75) -> torch.Tensor:
    """PyTorch's bicubic kernel weights for the 4 taps around fractional offset t: (..., 4)."""
    d = torch.stack([t + 1, t, 1 - t, 2 - t], dim=-1)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return torch.where(d <= 1, near, far)


def test_cell_centres_and_sizes_follow_align_corners_false():
    centres = cell_centres((2, 4))
    torch.testing.assert_close(centres[..., 1][0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    torch.testing.assert_close(cell_size((2, 4)), torch.tensor([1.0, 0.5]))


def test_the_2d_neighbourhood_holds_exactly_what_bicubic_weighs():
    x = torch.rand(2, 3, 7, 9, dtype=torch.float64)
    coords = (torch.rand(2, 50, 2, dtype=torch.float64) * 2 - 1) * 0.99
    feats = neighbourhood(x, coords, 4)  # (b, q, 3 * 16 + 2)
    values, frac = feats[..., :48].view(2, 50, 3, 4, 4), feats[..., 48:]
    wy, wx = cubic_weights(frac[..., 0], -0.75), cubic_weights(frac[..., 1], -0.75)  # (b, q, 4)
    mixed = torch.einsum("bqcij,bqi,bqj->bqc", values, wy, wx)
    torch.testing.assert_close(mixed, interpolate_at(x, coords))


def test_the_3d_neighbourhood_holds_what_trilinear_weighs():
    x = torch.rand(1, 1, 5, 6, 4, dtype=torch.float64)
    coords = torch.rand(1, 30, 3, dtype=torch.float64) * 2 - 1
    feats = neighbourhood(x, coords, 2)
    values, t = feats[..., :8].view(1, 30, 2, 2, 2), feats[..., 8:]
    w = [torch.stack([1 - t[..., i], t[..., i]], -1) for i in range(3)]
    mixed = torch.einsum("bqijk,bqi,bqj,bqk->bq", values, *w)[..., None]
    grid = coords.flip(-1).view(1, 1, 1, 30, 3)
    trilinear = torch.nn.functional.grid_sample(x, grid, padding_mode="border", align_corners=False)
    torch.testing.assert_close(mixed, trilinear.view(1, 1, 30).transpose(1, 2))


@pytest.mark.parametrize("shape, support", [((4, 3), 4), ((3, 1, 5), 4), ((2, 3, 2), 2), ((1, 1), 4)])
def test_the_neighbourhood_is_the_clamped_cells_around_each_query(shape, support):
    """Against a query-by-query lookup, with queries at, near and far past the edges (2.5 grid widths):
    neighbourhood, and both ways it has to find the cells (it picks one by the number of queries)."""
    k = len(shape)
    x = torch.rand(2, 2, *shape, dtype=torch.float64)
    coords = torch.rand(2, 40, k, dtype=torch.float64) * 5 - 2.5
    coords[:, :4] = torch.tensor([-1.0, 1.0, -0.999, 0.999], dtype=torch.float64)[:, None]
    feats = neighbourhood(x, coords, support)
    pos = (coords + 1) / 2 * torch.tensor(shape) - 0.5
    first = pos.floor().long() - (support // 2 - 1)
    by_index, by_window = (lookup(x, first, support) for lookup in (_cells_by_index, _cells_by_window))
    for bi in range(2):
        for qi in range(40):
            steps = [(first[bi, qi, a] + torch.arange(support)).clamp(0, shape[a] - 1) for a in range(k)]
            cells = x[bi][(slice(None), *torch.meshgrid(*steps, indexing="ij"))].flatten()  # c-major
            offset = pos[bi, qi] - pos[bi, qi].floor()
            exact = dict(rtol=0, atol=0)
            torch.testing.assert_close(feats[bi, qi], torch.cat([cells, offset]), **exact)
            torch.testing.assert_close(by_index[bi, qi], cells, **exact)
            torch.testing.assert_close(by_window[bi, qi], cells, **exact)


@pytest.mark.parametrize("shape", [(12, 13, 11), (1, 5, 3)])
def test_volumes_interpolate_through_their_samples(shape):
    x = torch.rand(1, 2, *shape, dtype=torch.float64)
    centres = cell_centres(shape, dtype=torch.float64).flatten(0, -2)[None]
    back = interpolate_at(x, centres).transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(back, x, atol=1e-4, rtol=0)  # the prefilter is truncated at 1e-5


def test_volumes_are_scipys_cubic_spline():
    x = torch.rand(1, 1, 12, 13, 11, dtype=torch.float64)
    out_shape = (12, 13, 22)
    coords = cell_centres(out_shape, dtype=torch.float64).flatten(0, -2)[None]
    ours = interpolate_at(x, coords)[0, :, 0].reshape(out_shape).numpy()
    zoom = [o / i for o, i in zip(out_shape, x.shape[2:], strict=True)]
    ref = ndimage.zoom(x[0, 0].numpy(), zoom, order=3, mode="reflect", grid_mode=True)
    np.testing.assert_allclose(ours[1:-1, 1:-1, 2:-2], ref[1:-1, 1:-1, 2:-2], atol=1e-4)
    np.testing.assert_allclose(ours, ref, atol=1e-2)  # the outermost cells clamp, where scipy mirrors


def test_neighbourhood_at_a_cell_centre_is_that_cell_and_its_neighbours():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    centre = cell_centres((4, 4))[1, 2].view(1, 1, 2)  # cell (1, 2)
    feats = neighbourhood(x, centre, 2)
    assert feats[0, 0, :4].tolist() == [6.0, 7.0, 10.0, 11.0]
    assert feats[0, 0, 4:].tolist() == [0.0, 0.0]
