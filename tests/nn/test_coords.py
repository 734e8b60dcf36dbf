import torch

from ginr_cli.nn.coords import cell_centres, cell_size, cubic_weights, interpolate_at, neighbourhood


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


def test_tricubic_is_exact_on_quadratics_inside_the_volume():
    shape = (9, 10, 8)
    centres = cell_centres(shape, dtype=torch.float64)  # (*shape, 3)

    def quadratic(p):
        return 1 + p[..., 0] - 2 * p[..., 1] ** 2 + 0.5 * p[..., 0] * p[..., 2] + p[..., 2] ** 2

    x = quadratic(centres)[None, None]  # (1, 1, *shape)
    # Query points at least two cells from every edge, where no tap is clamped.
    margin = torch.tensor([4.0 / n for n in shape], dtype=torch.float64)
    coords = (torch.rand(1, 40, 3, dtype=torch.float64) * 2 - 1) * (1 - margin)
    torch.testing.assert_close(interpolate_at(x, coords)[0, :, 0], quadratic(coords[0]))


def test_neighbourhood_at_a_cell_centre_is_that_cell_and_its_neighbours():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    centre = cell_centres((4, 4))[1, 2].view(1, 1, 2)  # cell (1, 2)
    feats = neighbourhood(x, centre, 2)
    assert feats[0, 0, :4].tolist() == [6.0, 7.0, 10.0, 11.0]
    assert feats[0, 0, 4:].tolist() == [0.0, 0.0]
