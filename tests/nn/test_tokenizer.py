import pytest
import torch

from ginr_cli.nn.config import TokenizerConfig
from ginr_cli.nn.coords import cell_centres, cell_size
from ginr_cli.nn.tokenizer import PatchTokenizer, padded_shape, to_padded_frame


@pytest.mark.parametrize(
    "rank,shape,tokens",
    [(2, (16, 16), 16), (2, (13, 30), 4 * 8), (2, (1, 5), 2), (3, (8, 8, 8), 8), (3, (5, 9, 3), 2 * 3 * 1)],
)
@pytest.mark.parametrize("pos_embed", ["none", "fourier"])
def test_tokens_for_any_size(rank, shape, tokens, pos_embed):
    patch = 4 if rank == 2 else 4
    tok = PatchTokenizer(TokenizerConfig(patch_size=patch, pos_embed=pos_embed), rank, 2, d_model=8)
    out = tok(torch.randn(3, 2, *shape))
    assert out.shape == (3, tokens, 8)


def test_padding_replicates_the_edge_so_a_constant_image_gives_equal_tokens():
    tok = PatchTokenizer(TokenizerConfig(patch_size=4), 2, 1, d_model=8)
    out = tok(torch.full((1, 1, 6, 7), 0.3))
    torch.testing.assert_close(out[0], out[0, :1].expand(4, -1))


def test_padded_frame_maps_source_cells_onto_the_padded_grid():
    shape, patch = (6, 7), 4
    padded = padded_shape(shape, patch)
    assert padded == (8, 8)
    src = cell_centres(shape).flatten(0, -2)
    coords, cell = to_padded_frame(src, cell_size(shape).expand_as(src), shape, patch)
    # Source pixel (i, j) is pixel (i, j) of the padded grid: same centre, same cell size.
    torch.testing.assert_close(coords, cell_centres(padded)[:6, :7].flatten(0, -2))
    torch.testing.assert_close(cell, cell_size(padded).expand_as(cell))
