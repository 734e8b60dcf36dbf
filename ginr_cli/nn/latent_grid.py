"""The latent grid of a codec model: what `ginr encode` stores, its decoding, and the bits it costs.

A codec model (`LatentConfig.grid`) puts one LP before every patch token, so the LP outputs form a grid
over the tile (one vector per patch), and maps each to `width` channels, added to a linear analysis of
the patch's pixels (`LinearAnalysis`, which starts as the patch's DCT): that grid is the latent. It is
stored quantised, `round(y / step)` as integers (`engine/codec.py`), so what training and refinement
optimise is the value of those integers: reconstruction error plus `rate_weight * step^2` times their
bits (the trade-off a uniform quantiser of that step makes, so one model serves every `--quality`).

A value at any point is the sum of two paths. `LinearValues` maps the grid linearly to the pixel grid
(each latent a mix of overlapping basis patterns; it starts as the inverse DCT), sampled linearly between
pixels: so an untrained model is already a DCT codec, which training improves rather than discovers.
A small convolutional synthesis (`local_features.ConvStem`) turns the grid into the feature grid that
`LocalReader` reads at any point, for the decoder's nonlinear correction of the quantisation error,
scaled by the step; it runs at the latent's resolution, so that decoding and refinement stay cheap.
`LaplaceRate` is the entropy model: each channel's integers are taken as a discretised Laplace
distribution of learned location and scale, and an integer's cost is -log2 of its probability, the size
an entropy coder reaches on such data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pixel_shuffle(x: Tensor, rank: int, factor: int = 2) -> Tensor:
    """(b, f * r^k, *g) -> (b, f, *rg), r = factor: channel i * r^k + j of a cell becomes channel i of its
    child j, children in row-major order of their offsets (torch's pixel_shuffle for 2D, extended to 3D)."""
    b, c, *grid = x.shape
    f = c // factor**rank
    x = x.view(b, f, *([factor] * rank), *grid)  # (b, f, r, ..., g0, g1, ...)
    # Interleave each child offset after its grid axis: (b, f, g0, r, g1, r, ...).
    order = [0, 1] + [i for axis in range(rank) for i in (2 + rank + axis, 2 + axis)]
    return x.permute(order).reshape(b, f, *(factor * g for g in grid))


def dct_basis(patch: int, rank: int) -> Tensor:
    """The orthonormal DCT-II of a p^k patch: (p^k frequencies, p^k pixels), pixels in row-major order."""
    n = torch.arange(patch, dtype=torch.float64)
    one = torch.cos(math.pi * (n[None] + 0.5) * n[:, None] / patch) * math.sqrt(2 / patch)  # (freq, pixel)
    one[0] /= math.sqrt(2)
    basis = one
    for _ in range(rank - 1):
        basis = torch.kron(basis, one)
    return basis.float()


def colour_basis(channels: int) -> Tensor:
    """An orthonormal transform of the channels (rows: new channels): for RGB, luma-like (R + G + B) / sqrt 3
    and two colour differences, which decorrelate photos' channels as JPEG's YCbCr does; else identity."""
    if channels != 3:
        return torch.eye(channels)
    rows = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]])
    return rows / rows.norm(dim=1, keepdim=True)


class LinearAnalysis(nn.Module):
    """Pixels (b, c, *spatial) -> the latent grid's linear part (b, w, *g): one convolution with the patch's
    size and stride. It starts as the DCT of each decorrelated channel's patch (`colour_basis`) over
    `step` (w = c * p^k), so that with
    `LinearValues` an untrained codec model is a DCT codec with step `step` (in model units) at every
    frequency; the encoder's output is added to it and learns what the DCT misses. The weights are the
    basis itself and the output is divided by `step`, so they are of the size Adam's steps suit."""

    def __init__(self, rank: int, channels: int, width: int, patch: int, step: float):
        super().__init__()
        conv = nn.Conv2d if rank == 2 else nn.Conv3d
        self.patch, self.step = patch, step
        self.conv = conv(channels, width, patch, stride=patch)
        size = patch**rank
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            basis, colours = dct_basis(patch, rank), colour_basis(channels)  # (freq, pixel), (new, old)
            for c in range(min(channels, width // size)):
                for old in range(channels):
                    block = colours[c, old] * basis.view(size, *([patch] * rank))
                    self.conv.weight[c * size : (c + 1) * size, old] = block

    def forward(self, x: Tensor) -> Tensor:
        pad = [-n % self.patch for n in x.shape[2:]]
        if any(pad):  # as the tokenizer pads: edge values repeated at the far end of each axis
            x = F.pad(x, [q for p in reversed(pad) for q in (0, p)], mode="replicate")
        return self.conv(x) / self.step


class LinearValues(nn.Module):
    """Latent grid (b, w, *g) -> values (b, c, *pg) on the pixel grid, p the patch: a convolution over the
    3^k cells around each patch, each patch's p^k pixels one group of its output channels. A linear
    transform with overlapping basis functions, like a learned lapped transform: the decoder's first
    guess, which the nonlinear path refines, and easy to fit (refining the latents against it is a least
    squares problem). It starts as the inverse of `LinearAnalysis`: the inverse DCT, times `step`."""

    def __init__(self, rank: int, width: int, channels: int, patch: int, step: float):
        super().__init__()
        conv = nn.Conv2d if rank == 2 else nn.Conv3d
        self.rank, self.patch, self.step = rank, patch, step
        self.conv = conv(width, channels * patch**rank, 3, padding=1, padding_mode="replicate")
        size = patch**rank
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            basis, colours = dct_basis(patch, rank), colour_basis(channels)  # (freq, pixel), (new, old)
            centre = (slice(None), slice(None), *([1] * rank))
            for c in range(min(channels, width // size)):
                for old in range(channels):  # output pixel j of channel `old` from frequency i of c
                    rows, cols = slice(old * size, (old + 1) * size), slice(c * size, (c + 1) * size)
                    self.conv.weight[centre][rows, cols] = colours[c, old] * basis.T

    def forward(self, latents: Tensor) -> Tensor:
        return pixel_shuffle(self.conv(latents) * self.step, self.rank, self.patch)


def sample_linear(values: Tensor, coords: Tensor) -> Tensor:
    """values (b, c, *spatial) at coords (b, q, k) in [-1, 1] (axis order), (bi/tri)linearly: (b, q, c).
    Exact at pixel centres, continuous between them."""
    b, q, k = coords.shape
    grid = coords.flip(-1).view(b, *([1] * (k - 1)), q, k).to(values.dtype)  # grid_sample wants x first
    out = F.grid_sample(values, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(b, values.shape[1], q).transpose(1, 2)


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

    def forward(self, values: Tensor, step: float | Tensor = 1.0) -> Tensor:
        """values (..., w), multiples of `step` (or, in training, integers plus noise) -> bits (..., w): the
        probability of the step-wide bin around each value: one density for every step (`--quality`);
        `step` a number or a tensor broadcast against `values`."""
        x = values - self.loc
        scale = self.log_scale.exp()
        p = self._cdf(x + step / 2, scale) - self._cdf(x - step / 2, scale)
        return -torch.log2(p.clamp_min(self.LOW))


# The quantisation steps a codec model is trained for, in its training units: those of `ginr encode
# --quality 5` to `--quality 1` (engine/codec.py's quality_step).
STEP_RANGE = (0.5, 2.0)


def training_steps(batch: int, device: torch.device | str = "cpu") -> Tensor:
    """A quantisation step for each of `batch` samples, log-uniform over STEP_RANGE: (batch,)."""
    lo, hi = (math.log2(s) for s in STEP_RANGE)
    return 2.0 ** torch.empty(batch, device=device).uniform_(lo, hi)


def noisy(latents: Tensor) -> Tensor:
    """Training's stand-in for rounding: uniform noise of one quantisation step (Balle et al., 2017)."""
    return latents + torch.empty_like(latents).uniform_(-0.5, 0.5)


def rounded(latents: Tensor) -> Tensor:
    """Rounding whose gradient passes straight through: refinement sees the values that will be stored."""
    return latents + (torch.round(latents) - latents).detach()
