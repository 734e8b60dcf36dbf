"""The latent grid of a codec model: what `ginr encode` stores, its decoding, and the bits it costs.

A codec model (`LatentConfig.grid`) puts one LP before every patch token, so the LP outputs form a grid
over the tile (one vector per patch), and maps each to `width` channels: that grid is the latent. It is
stored quantised, `round(y / step)` as integers (`engine/codec.py`), so what training and refinement
optimise is the value of those integers: reconstruction error plus `rate_weight` times their bits.

`Synthesis` turns a (de)quantised latent grid into the feature grid that `LocalReader` reads at any
point: convolutions at the latent's resolution, then a sub-pixel convolution to twice that resolution,
so each query reads features at most half a patch away. `LaplaceRate` is the entropy model: each
channel's integers are taken as a discretised Laplace distribution of learned location and scale, and
an integer's cost is -log2 of its probability, the size an entropy coder reaches on such data.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ginr_cli.nn.local_features import ConvStem


def pixel_shuffle(x: Tensor, rank: int) -> Tensor:
    """(b, f * 2^k, *g) -> (b, f, *2g): channel i * 2^k + j of a cell becomes channel i of its child j,
    children in row-major order of their offsets (torch's pixel_shuffle for 2D, extended to 3D)."""
    b, c, *grid = x.shape
    f = c // 2**rank
    x = x.view(b, f, *([2] * rank), *grid)  # (b, f, 2, ..., g0, g1, ...)
    # Interleave each child offset after its grid axis: (b, f, g0, 2, g1, 2, ...).
    order = [0, 1] + [i for axis in range(rank) for i in (2 + rank + axis, 2 + axis)]
    return x.permute(order).reshape(b, f, *(2 * g for g in grid))


class Synthesis(nn.Module):
    """Latent grid (b, w, *g) -> feature grid (b, f, *2g): convolutions, then one sub-pixel step."""

    def __init__(self, rank: int, width: int, features: int, blocks: int):
        super().__init__()
        conv = nn.Conv2d if rank == 2 else nn.Conv3d
        self.rank = rank
        self.body = ConvStem(rank, width, features, blocks)
        self.up = conv(features, features * 2**rank, 3, padding=1, padding_mode="replicate")

    def forward(self, latents: Tensor) -> Tensor:
        return pixel_shuffle(self.up(self.body(latents)), self.rank)


class LaplaceRate(nn.Module):
    """Bits of quantised latents under a per-channel discretised Laplace distribution."""

    LOW = 1e-9  # the least probability an integer gets: bounds its cost at about 30 bits

    def __init__(self, width: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(width))
        self.log_scale = nn.Parameter(torch.zeros(width))

    def _cdf(self, x: Tensor, scale: Tensor) -> Tensor:
        """The Laplace CDF at x (loc removed), written with expm1 so it stays exact in the far tails."""
        return 0.5 - 0.5 * torch.sign(x) * torch.expm1(-x.abs() / scale)

    def forward(self, values: Tensor, step: float = 1.0) -> Tensor:
        """values (..., w), multiples of `step` (or, in training, integers plus noise) -> bits (..., w): the
        probability of the step-wide bin around each value. Training quantises with step 1; a finer or
        coarser step (`ginr encode --quality`) reuses the same density."""
        x = values - self.loc
        scale = self.log_scale.exp()
        p = self._cdf(x + step / 2, scale) - self._cdf(x - step / 2, scale)
        return -torch.log2(p.clamp_min(self.LOW))


def noisy(latents: Tensor) -> Tensor:
    """Training's stand-in for rounding: uniform noise of one quantisation step (Balle et al., 2017)."""
    return latents + torch.empty_like(latents).uniform_(-0.5, 0.5)


def rounded(latents: Tensor) -> Tensor:
    """Rounding whose gradient passes straight through: refinement sees the values that will be stored."""
    return latents + (torch.round(latents) - latents).detach()
