import dataclasses

import pytest
import torch

from ginr_cli.nn.config import PRESETS, GINRConfig
from ginr_cli.nn.coords import cell_centres, cell_size, interpolate_at
from ginr_cli.nn.ginr import MambaGINR
from tests.conftest import tiny_config, untrained


@pytest.mark.parametrize("rank,shape", [(2, (16, 16)), (2, (13, 22)), (3, (8, 8, 8)), (3, (5, 9, 7))])
@pytest.mark.parametrize("mixer", ["mamba", "attention"])
def test_encode_then_decode_at_twice_the_resolution(rank, shape, mixer):
    model = MambaGINR(tiny_config(rank, mixer))
    x = torch.rand(2, model.cfg.in_channels, *shape)
    latents = model.encode(x)
    assert latents.shape == (2, 8, 16)
    out = model.decode_grid(latents, [2 * n for n in shape], shape=shape)
    assert out.shape == (2, model.cfg.out_channels, *[2 * n for n in shape])
    assert torch.isfinite(out).all()


def test_decode_takes_irregular_points_and_chunking_does_not_change_them():
    model = MambaGINR(tiny_config(2)).eval()
    x = torch.rand(1, 3, 16, 16)
    latents = model.encode(x)
    coords = torch.rand(1, 101, 2) * 2 - 1  # scattered points
    whole = model.decode(latents, coords, cell_size((40, 40)))
    chunked = model.decode(latents, coords, cell_size((40, 40)), chunk_size=7)
    assert whole.shape == (1, 101, 3)
    torch.testing.assert_close(chunked, whole)
    # Each point is decoded on its own: a point's value does not depend on the others queried with it.
    torch.testing.assert_close(model.decode(latents, coords[:, 50:51], cell_size((40, 40))), whole[:, 50:51])


def test_the_cell_size_reaches_the_decoder():
    model = untrained(MambaGINR(tiny_config(2))).eval()
    latents = model.encode(torch.rand(1, 3, 16, 16))
    coords = torch.zeros(1, 1, 2)
    assert not torch.allclose(
        model.decode(latents, coords, cell_size((16, 16))), model.decode(latents, coords, cell_size((64, 64)))
    )


def test_forward_equals_encode_then_decode_and_gradients_reach_every_parameter():
    model = untrained(MambaGINR(tiny_config(2)))
    x = torch.rand(2, 3, 14, 16)  # not a multiple of the patch on one axis
    coords = cell_centres((28, 32)).flatten(0, 1).expand(2, -1, -1)
    cell = cell_size((28, 32))
    latents = model.encode(x)
    without_base = model(x, coords, cell, use_base=False)
    torch.testing.assert_close(without_base, model.decode(latents, coords, cell, shape=(14, 16)))
    out = model(x, coords, cell)
    torch.testing.assert_close(
        out, model.decode(latents, coords, cell, shape=(14, 16), base=model.base(x, coords))
    )
    out = out + without_base
    out.square().mean().backward()
    assert model.positions.lps.grad is not None and model.positions.lps.grad.abs().sum() > 0
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


@pytest.mark.parametrize("rank,shape", [(2, (12, 10)), (3, (6, 8, 4))])
def test_an_untrained_decoder_given_a_base_returns_the_interpolated_input(rank, shape):
    model = MambaGINR(tiny_config(rank)).eval()
    x = torch.rand(1, model.cfg.in_channels, *shape)
    up = model.decode_grid(model.encode(x), [2 * n for n in shape], shape=shape, x=x)  # base only
    out_shape = [2 * n for n in shape]
    coords = cell_centres(out_shape).flatten(0, -2)[None]
    expected = interpolate_at(x, coords).transpose(1, 2).reshape(1, -1, *out_shape)  # bicubic or tricubic
    torch.testing.assert_close(up, expected, rtol=1e-4, atol=1e-4)


def test_the_model_learns_a_real_signal():
    # A few steps of fitting one image must lower the reconstruction error a lot: the pieces are wired.
    model = MambaGINR(tiny_config(2))
    y, x = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    image = torch.stack([y, x, (x * y)]).unsqueeze(0)
    coords = cell_centres((16, 16)).flatten(0, 1)[None]
    target = image.flatten(2).transpose(1, 2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = (model(image, coords, use_base=False) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5


def test_wrong_input_shape_is_refused_with_the_expected_shape():
    model = MambaGINR(tiny_config(3))
    with pytest.raises(ValueError, match=r"expected input \(b, 1, \*, \*, \*\)"):
        model.encode(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_round_trip_through_dicts(name):
    cfg = PRESETS[name]
    assert GINRConfig.from_dict(cfg.to_dict()) == cfg
    model = MambaGINR(dataclasses.replace(cfg))
    assert sum(p.numel() for p in model.parameters()) > 0


def test_config_rejects_unknown_keys_by_name():
    data = tiny_config(2).to_dict()
    data["encoder"]["n_layer"] = 3
    with pytest.raises(ValueError, match=r"config\.encoder: unknown key\(s\) n_layer"):
        GINRConfig.from_dict(data)
