"""The codec models' latent grid: per-token LPs, the synthesis, the entropy model and the rounding."""

import math

import pytest
import torch

from ginr_cli.nn.config import PositionConfig, preset
from ginr_cli.nn.ginr import MambaGINR
from ginr_cli.nn.latent_grid import STEP_RANGE, LaplaceRate, noisy, pixel_shuffle, rounded, training_steps
from ginr_cli.nn.position_tokens import LearnablePositions, lp_indices
from tests.conftest import tiny_codec_config, tiny_config, untrained


@pytest.mark.parametrize("rank", [2, 3])
def test_pixel_shuffle_puts_each_channel_at_its_child(rank):
    grid = (3, 2) if rank == 2 else (2, 3, 2)
    f, children = 2, 2**rank
    x = torch.randn(1, f * children, *grid)
    out = pixel_shuffle(x, rank)
    assert out.shape == (1, f, *(2 * g for g in grid))
    for child in range(children):
        offset = [(child >> (rank - 1 - axis)) & 1 for axis in range(rank)]  # row-major, axis 0 first
        for cell in torch.cartesian_prod(*(torch.arange(g) for g in grid)).view(-1, rank).tolist():
            fine = tuple(2 * c + o for c, o in zip(cell, offset, strict=True))
            for channel in range(f):
                assert out[(0, channel, *fine)] == x[(0, channel * children + child, *cell)]
    if rank == 2:
        torch.testing.assert_close(out, torch.nn.functional.pixel_shuffle(x, 2))


def test_per_token_lps_sit_before_every_token_and_come_back_out():
    assert lp_indices(4, 4, "per-token") == [0, 2, 4, 6]
    positions = LearnablePositions(PositionConfig(num_lp=1, placement="per-token"), 8)
    tokens = torch.randn(2, 5, 8)
    seq = positions.interleave(tokens)
    assert seq.shape == (2, 10, 8)
    torch.testing.assert_close(seq[:, 1::2], tokens)
    torch.testing.assert_close(positions.extract_tokens(seq), tokens)
    marked = seq.clone()
    marked[:, 0::2] = torch.arange(5.0)[None, :, None]
    torch.testing.assert_close(positions.extract(marked), torch.arange(5.0)[None, :, None].expand(2, 5, 8))
    with pytest.raises(ValueError, match="num_lp must be 1"):
        LearnablePositions(PositionConfig(num_lp=4, placement="per-token"), 8)


def test_the_laplace_model_is_a_distribution_over_the_integers():
    rate = LaplaceRate(3)
    with torch.no_grad():
        rate.loc.copy_(torch.tensor([0.0, 0.3, -1.0]))
        rate.log_scale.copy_(torch.tensor([0.0, -1.0, 1.5]).log1p())
    for step in (0.5, 1.0, 2.0):
        values = (torch.arange(-400, 401, dtype=torch.float64) * step)[:, None].expand(-1, 3)
        probability = torch.exp2(-rate(values.float(), step).double()).sum(dim=0)
        torch.testing.assert_close(probability, torch.ones(3, dtype=torch.float64), atol=1e-4, rtol=0)
    # a value far in the tail costs its bits, not infinity
    assert torch.isfinite(rate(torch.full((1, 3), 1e4))).all()


def test_rounding_is_exact_forward_and_passes_the_gradient_through():
    x = torch.tensor([0.2, 0.7, -1.6, 2.5], requires_grad=True)
    y = rounded(x)
    assert y.tolist() == torch.round(x).tolist()
    y.sum().backward()
    assert x.grad.tolist() == [1.0] * 4
    spread = noisy(torch.zeros(10000))
    assert spread.abs().max() <= 0.5 and spread.std() > 0.25


@pytest.mark.parametrize("rank", [2, 3])
def test_a_codec_model_encodes_one_latent_per_patch_and_decodes_any_point(rank):
    model = untrained(MambaGINR(tiny_codec_config(rank)))
    side = (
        12 * model.cfg.tokenizer.patch_size
    )  # 12 cells: more than the synthesis' reach of 4 and the reader's 1
    x = torch.randn(2, model.cfg.in_channels, *[side] * rank)
    latents = model.encode(x)
    assert latents.shape == (2, *model.latent_shape([side] * rank))
    assert latents.shape[1] == 12**rank
    coords = torch.rand(2, 50, rank) * 2 - 1
    values = model.decode(latents, coords, shape=[side] * rank)
    assert values.shape == (2, 50, model.cfg.out_channels)
    # one latent changed moves the values near its patch, not those far away
    moved = latents.clone()
    moved[:, 0] += 5.0
    corner = -torch.ones(2, 1, rank) + 0.01
    far = torch.ones(2, 1, rank) - 0.01
    assert not torch.allclose(
        model.decode(moved, corner, shape=[side] * rank), model.decode(latents, corner, shape=[side] * rank)
    )
    torch.testing.assert_close(
        model.decode(moved, far, shape=[side] * rank), model.decode(latents, far, shape=[side] * rank)
    )
    # a tile that is not a multiple of the patch has a grid of its padded size
    small = [side - 1] * rank
    assert model.encode(x[(slice(None), slice(None), *[slice(0, n) for n in small])]).shape[1] == math.prod(
        model.latent_grid(small)
    )


def test_training_pass_of_a_codec_gives_values_and_bits_and_reaches_every_parameter():
    model = untrained(MambaGINR(tiny_codec_config(2)))
    x = torch.randn(2, 3, 16, 16)
    values, bits, steps = model(x, torch.rand(2, 30, 2) * 2 - 1, with_rate=True)
    assert values.shape == (2, 30, 3) and bits.shape == (2,) and (bits > 0).all()
    assert steps.shape == (2,) and ((steps >= STEP_RANGE[0]) & (steps <= STEP_RANGE[1])).all()
    (values.square().mean() + bits.mean()).backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []


def test_training_steps_span_the_qualities_log_uniformly():
    from ginr_cli.engine.codec import QUALITIES, quality_step

    assert STEP_RANGE == (quality_step(max(QUALITIES)), quality_step(min(QUALITIES)))
    torch.manual_seed(0)
    steps = training_steps(20000)
    assert steps.min() >= STEP_RANGE[0] and steps.max() <= STEP_RANGE[1]
    assert abs(float((steps < 1.0).float().mean()) - 0.5) < 0.02  # step 1 (quality 3) splits the log range


def test_the_codec_correction_scales_with_the_step():
    model = untrained(MambaGINR(tiny_codec_config(2)))
    side = model.cfg.input_size
    latents = torch.randn(1, *model.latent_shape([side, side]))
    coords = torch.rand(1, 40, 2) * 2 - 1
    with torch.no_grad():
        one = model.decode(latents, coords, shape=[side, side], step=1.0)
        half = model.decode(latents, coords, shape=[side, side], step=0.5)
        none = model.decode(latents, coords, shape=[side, side], step=0.0)  # the linear path alone
    assert (one - none).abs().max() > 1e-3
    torch.testing.assert_close(half - none, 0.5 * (one - none), atol=1e-5, rtol=1e-4)


def test_codec_configs_are_checked():
    with pytest.raises(ValueError, match="come together"):
        MambaGINR(tiny_config(2, positions=PositionConfig(num_lp=1, placement="per-token")))
    with pytest.raises(ValueError, match="no base"):
        MambaGINR(tiny_codec_config(2).replace(hyponet=tiny_config(2).hyponet))
    for name in ("codec-2d", "codec-3d"):
        assert MambaGINR(preset(name)).cfg.latent.grid


@pytest.mark.parametrize("rank", [2, 3])
def test_an_untrained_codec_decodes_its_linear_values_exactly_at_pixel_centres(rank):
    from ginr_cli.nn.coords import cell_centres

    model = MambaGINR(tiny_codec_config(rank))  # the correction's last layer starts at zero
    side = model.cfg.input_size
    latents = torch.randn(1, *model.latent_shape([side] * rank))
    linear = model.linear_values(latents, [side] * rank)
    assert linear.shape == (1, model.cfg.out_channels, *[side] * rank)
    decoded = model.decode_grid(latents, [side] * rank, shape=[side] * rank)
    torch.testing.assert_close(decoded, linear, atol=1e-5, rtol=1e-5)
    # between centres the linear path is continuous: halfway between two pixels, their mean
    centres = cell_centres([side] * rank).flatten(0, -2)
    between = (centres[:1] + centres[1:2]) / 2
    expected = (linear.flatten(2)[..., 0] + linear.flatten(2)[..., 1]) / 2
    torch.testing.assert_close(model.decode(latents, between[None], shape=[side] * rank)[0], expected)


def test_the_dct_basis_is_orthonormal():
    from ginr_cli.nn.latent_grid import dct_basis

    for patch, rank in ((4, 2), (4, 3), (2, 3)):
        basis = dct_basis(patch, rank)
        torch.testing.assert_close(basis @ basis.T, torch.eye(patch**rank), atol=1e-5, rtol=0)
    torch.testing.assert_close(dct_basis(4, 1)[0], torch.full((4,), 0.5))  # the mean, scaled


@pytest.mark.parametrize("rank", [2, 3])
def test_an_untrained_codec_is_a_dct_codec_that_reconstructs_its_input(rank):
    model = MambaGINR(
        tiny_codec_config(rank).replace(
            latent=tiny_codec_config(rank).latent.__class__(
                grid=True,
                width=(3 if rank == 2 else 1) * (4 if rank == 2 else 2) ** rank,
                synthesis_width=8,
                synthesis_blocks=1,
                init_step=0.05,
            )
        )
    )
    side = model.cfg.input_size
    x = torch.rand(2, model.cfg.in_channels, *[side] * rank) * 2 - 1
    latents = model.encode(x)
    torch.testing.assert_close(
        model.decode_grid(latents, [side] * rank, shape=[side] * rank), x, atol=1e-4, rtol=0
    )
    # rounded, the error is the DCT's: at most half a step in each coefficient
    error = model.decode_grid(latents.round(), [side] * rank, shape=[side] * rank) - x
    assert error.abs().max() < 0.05 * model.cfg.tokenizer.patch_size**rank / 2
    assert error.square().mean() < 0.05**2 / 12 * 1.5
