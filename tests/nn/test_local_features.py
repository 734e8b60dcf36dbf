import itertools

import pytest
import torch

from ginr_cli.nn.config import FeatureConfig
from ginr_cli.nn.coords import cell_centres, cell_size, interpolate_at
from ginr_cli.nn.ginr import MambaGINR
from ginr_cli.nn.local_features import LocalReader
from tests.conftest import tiny_config, untrained


def local_config(rank: int, **changes):
    return tiny_config(rank, features=FeatureConfig(local=True, stem_width=8, stem_blocks=1), **changes)


def read_by_definition(reader: LocalReader, tokens, grid, coords):
    """The reading written out: each query's 2^k surrounding cells (edges clamped), their features
    concatenated in corner order, one linear map, plus the offset term."""
    b, q, k = coords.shape
    features = tokens.view(b, *grid, -1)
    size = torch.tensor(grid, dtype=coords.dtype)
    out = []
    for i in range(b):
        rows = []
        for point in coords[i]:
            pos = (point + 1) / 2 * size - 0.5
            below = pos.floor()
            parts = []
            for corner in itertools.product((0, 1), repeat=k):
                cell = [int(min(max(below[a].item() + corner[a], 0), grid[a] - 1)) for a in range(k)]
                parts.append(features[(i, *cell)])
            h = reader.proj.weight.shape[0] // reader.corners
            # proj maps d -> 2^k * h; corner j's block of rows is its own (d -> h) map.
            weight = reader.proj.weight.view(reader.corners, h, -1)
            bias = reader.proj.bias.view(reader.corners, h).sum(0)
            local = sum(weight[j] @ parts[j] for j in range(reader.corners)) + bias
            rows.append(local + reader.offset.weight @ (pos - below))
        out.append(torch.stack(rows))
    return torch.stack(out)


@pytest.mark.parametrize("rank,grid", [(2, (4, 6)), (3, (3, 4, 2))])
def test_the_reader_equals_its_definition_inside_and_past_the_edges(rank, grid):
    reader = LocalReader(rank, d_model=5, d_hidden=7)
    tokens = torch.randn(2, torch.Size(grid).numel(), 5)
    coords = torch.rand(2, 23, rank) * 2.4 - 1.2  # some points beyond the grid's edge cells
    field = reader.project(tokens, grid)
    torch.testing.assert_close(reader(field, coords), read_by_definition(reader, tokens, grid, coords))


@pytest.mark.parametrize("rank,shape", [(2, (16, 16)), (2, (13, 22)), (3, (8, 8, 8)), (3, (5, 9, 7))])
def test_a_local_model_upscales_through_its_feature_field(rank, shape):
    model = untrained(MambaGINR(local_config(rank))).eval()
    x = torch.rand(2, model.cfg.in_channels, *shape)
    latents, field = model.encode_with_features(x)
    p = model.cfg.tokenizer.patch_size
    assert field.shape[1:-1] == tuple(-(-n // p) for n in shape)
    out_shape = [2 * n for n in shape]
    up = model.decode_grid(latents, out_shape, shape=shape, x=x, field=field)
    assert up.shape == (2, model.cfg.out_channels, *out_shape) and torch.isfinite(up).all()
    # The field matters: another input's features change the output.
    other = model.decode_grid(latents, out_shape, shape=shape, x=x, field=field.flip(0))
    assert not torch.allclose(up, other)


def test_a_local_model_decodes_latents_alone_and_refuses_half_of_its_inputs():
    model = MambaGINR(local_config(2)).eval()
    x = torch.rand(1, 3, 16, 16)
    latents, field = model.encode_with_features(x)
    coords = torch.rand(1, 9, 2) * 2 - 1
    cell = cell_size((32, 32))
    assert model.decode(latents, coords, cell).shape == (1, 9, 3)  # `ginr decode`: no input at hand
    with pytest.raises(ValueError, match="together"):
        model.decode(latents, coords, cell, field=field)
    with pytest.raises(ValueError, match="together"):
        model.decode(latents, coords, cell, base=model.base(x, coords))
    plain = MambaGINR(tiny_config(2))
    with pytest.raises(ValueError, match="no local features"):
        plain.decode(plain.encode(x), coords, cell, base=plain.base(x, coords), field=field)


def test_an_untrained_local_model_returns_the_interpolated_input():
    model = MambaGINR(local_config(2)).eval()
    x = torch.rand(1, 3, 12, 10)
    latents, field = model.encode_with_features(x)
    up = model.decode_grid(latents, (24, 20), shape=(12, 10), x=x, field=field)
    coords = cell_centres((24, 20)).flatten(0, 1)[None]
    expected = interpolate_at(x, coords).transpose(1, 2).reshape(1, 3, 24, 20)
    torch.testing.assert_close(up, expected, rtol=1e-4, atol=1e-4)


def test_local_forward_matches_its_parts_chunks_alike_and_trains_every_parameter():
    model = untrained(MambaGINR(local_config(2)))
    x = torch.rand(2, 3, 14, 16)
    coords = torch.rand(2, 50, 2) * 2 - 1
    cell = cell_size((28, 32))
    latents, field = model.encode_with_features(x)
    base = model.base(x, coords)
    out = model(x, coords, cell)
    torch.testing.assert_close(
        out, model.decode(latents, coords, cell, shape=(14, 16), base=base, field=field)
    )
    chunked = model.decode(latents, coords, cell, shape=(14, 16), base=base, field=field, chunk_size=7)
    torch.testing.assert_close(chunked, out)
    (out + model(x, coords, cell, use_base=False)).square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_local_features_need_the_base():
    from ginr_cli.nn.config import HyponetConfig

    cfg = local_config(2, hyponet=HyponetConfig(d_hidden=16, n_heads=2, n_freqs=4, use_base=False))
    with pytest.raises(ValueError, match="use_base"):
        MambaGINR(cfg)
