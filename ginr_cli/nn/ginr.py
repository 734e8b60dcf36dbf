"""Mamba-GINR: the one place where tokenizer, position tokens, encoder and hyponet meet.

Shape glossary (used in the comments of every tensor line):
    b batch    c channels    k spatial rank (2 images, 3 volumes)
    n patch tokens    m LP tokens    l = n + m sequence length
    d model width     q query points   w latent grid width (codec models)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ginr_cli.nn.config import GINRConfig
from ginr_cli.nn.coords import cell_centres, cell_size, interpolate_at, neighbourhood
from ginr_cli.nn.encoder import Encoder
from ginr_cli.nn.hyponet import Hyponet
from ginr_cli.nn.latent_grid import (
    LaplaceRate,
    LinearAnalysis,
    LinearValues,
    noisy,
    rounded,
    sample_linear,
    training_steps,
)
from ginr_cli.nn.local_features import ConvStem, LocalReader
from ginr_cli.nn.position_tokens import LearnablePositions
from ginr_cli.nn.tokenizer import PatchTokenizer, to_padded_frame

# Query points decoded per call of the hyponet: bounds activation memory whatever the output size.
DECODE_CHUNK = 32768


class MambaGINR(nn.Module):
    def __init__(self, cfg: GINRConfig):
        super().__init__()
        if cfg.rank not in (2, 3):
            raise ValueError(f"rank must be 2 or 3, got {cfg.rank}")
        self.cfg = cfg
        d = cfg.encoder.d_model
        local = cfg.features.local
        if local and not cfg.hyponet.use_base:
            raise ValueError("local features come with the base: set hyponet.use_base")
        width = cfg.features.stem_width
        self.stem = ConvStem(cfg.rank, cfg.in_channels, width, cfg.features.stem_blocks) if local else None
        self.tokenizer = PatchTokenizer(cfg.tokenizer, cfg.rank, width if local else cfg.in_channels, d)
        self.positions = LearnablePositions(cfg.positions, d)
        self.encoder = Encoder(cfg.encoder)
        self.support = 4  # the 4^k cells cubic interpolation weighs: the decoder can learn at least that
        base_features = cfg.out_channels + cfg.in_channels * self.support**cfg.rank + cfg.rank
        self.reader = LocalReader(cfg.rank, d, cfg.hyponet.d_hidden) if local else None
        lat, grid = cfg.latent, cfg.latent.grid
        if grid != (cfg.positions.placement == "per-token"):
            raise ValueError("a latent grid (latent.grid) and per-token LPs come together")
        if grid and (local or cfg.hyponet.use_base):
            raise ValueError("a latent grid is decoded from itself alone: no base, no local features")
        # A codec model (nn/latent_grid.py): latents = a linear analysis of each patch + the LP outputs
        # mapped to `width` channels; values = a linear synthesis + a correction read from a nonlinear one.
        # The LP part starts at zero and the linear maps as the DCT: an untrained codec is a DCT codec.
        patch, step = cfg.tokenizer.patch_size, lat.init_step
        self.analysis = LinearAnalysis(cfg.rank, cfg.in_channels, lat.width, patch, step) if grid else None
        self.to_latent = nn.Linear(d, lat.width) if grid else None
        if self.to_latent is not None:
            nn.init.zeros_(self.to_latent.weight)
            nn.init.zeros_(self.to_latent.bias)
        self.to_values = LinearValues(cfg.rank, lat.width, cfg.out_channels, patch, step) if grid else None
        self.synthesis = (
            ConvStem(cfg.rank, lat.width, lat.synthesis_width, lat.synthesis_blocks) if grid else None
        )
        self.grid_reader = LocalReader(cfg.rank, lat.synthesis_width, cfg.hyponet.d_hidden) if grid else None
        self.rate = LaplaceRate(lat.width) if grid else None
        d_latent = lat.width if grid else d
        self.hyponet = Hyponet(cfg.hyponet, cfg.rank, d_latent, cfg.out_channels, base_features)

    def encode(self, x: Tensor) -> Tensor:
        """x (b, c, *spatial) -> LP latents (b, m, d). Any spatial size; the tokenizer pads to the patch."""
        return self.encode_with_features(x)[0]

    def encode_with_features(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """x (b, c, *spatial) -> (LP latents (b, m, d), local feature field (b, *grid, f) or None).

        The field is the encoder's output for every patch token, projected for `LocalReader`; None for a
        model without local features. Latents alone are what `ginr encode` stores."""
        if x.dim() != 2 + self.cfg.rank or x.shape[1] != self.cfg.in_channels:
            raise ValueError(
                f"expected input (b, {self.cfg.in_channels}, {', '.join('*' * self.cfg.rank)}), "
                f"got {tuple(x.shape)}"
            )
        h = x if self.stem is None else self.stem(x)  # (b, c', *spatial)
        tokens = self.tokenizer(h)  # (b, n, d)
        seq = self.positions.interleave(tokens)  # (b, l, d)
        seq = self.encoder(seq)  # (b, l, d)
        latents = self.positions.extract(seq)  # (b, m, d)
        if self.to_latent is not None:  # (b, m, w): the latent grid, in raster order
            direct = self.analysis(x).flatten(2).transpose(1, 2)  # (b, m, w)
            return direct + self.to_latent(latents), None
        if self.reader is None:
            return latents, None
        p = self.cfg.tokenizer.patch_size
        grid = tuple(-(-n // p) for n in x.shape[2:])
        return latents, self.reader.project(self.positions.extract_tokens(seq), grid)  # (b, *grid, f)

    def decode(
        self,
        latents: Tensor,
        coords: Tensor,
        cell: Tensor | None = None,
        shape: Sequence[int] | None = None,
        base: Tensor | None = None,
        field: Tensor | None = None,
        chunk_size: int = DECODE_CHUNK,
        step: float | Tensor = 1.0,
    ) -> Tensor:
        """latents (b, m, d), coords (b, q, k) in [-1, 1] -> values (b, q, c).

        `cell` (b, q, k), (b, k) or (k,): the side of one output cell in [-1, 1] units, so the decoder
        knows the output resolution; by default the cell of an input of `cfg.input_size`.
        `shape`: the spatial shape the latents were encoded from; needed when it was not a multiple of
        the patch, to map the coordinates into the padded frame the encoder saw.
        `base` (b, q, f): from `self.base(x, coords)`, when the decoder should refine the input's
        interpolation (upscaling); None to decode from the latents alone.
        `field` (b, *grid, f): from `encode_with_features`, for a model with local features; given with
        the base, or neither.
        Queries are decoded `chunk_size` at a time, so memory is bounded whatever q is.
        `step` (a number or (b,)): a codec model's quantisation step, in its training units; its nonlinear
        correction, of the size of the quantisation error, is scaled by it.
        """
        b, q, k = coords.shape
        if cell is None:
            cell = cell_size([self.cfg.input_size] * k, device=coords.device, dtype=coords.dtype)
        if cell.dim() == 2:  # (b, k)
            cell = cell[:, None]
        cell = cell.to(coords.dtype).expand(b, q, k)  # (b, q, k)
        if shape is not None:
            coords, cell = to_padded_frame(coords, cell, shape, self.cfg.tokenizer.patch_size)
        if self.reader is not None and (base is None) != (field is None):
            raise ValueError("a model with local features takes the base and the feature field together")
        if self.reader is None and field is not None:
            raise ValueError("this model has no local features; it takes no feature field")
        latents = latents.to(coords.dtype)
        field = None if field is None else field.to(coords.dtype)
        reader, linear = self.reader, None
        if self.synthesis is not None:  # a codec model: its linear values, corrected by reading its synthesis
            if field is not None or base is not None:
                raise ValueError("a codec model decodes from its latent grid alone")
            tile = shape or [self.cfg.input_size] * k
            field, reader = self.grid_field(latents, tile), self.grid_reader
            linear = self.linear_values(latents, tile)  # (b, c, *padded tile)
            step = torch.as_tensor(step, dtype=coords.dtype, device=coords.device).reshape(-1, 1, 1)
        chunks = []
        for i in range(0, q, chunk_size):
            points = coords[:, i : i + chunk_size]  # (b, q', k)
            local = None if field is None else reader(field, points)  # (b, q', h)
            values = self.hyponet(
                points,
                cell[:, i : i + chunk_size],
                latents,
                None if base is None else base[:, i : i + chunk_size].to(coords.dtype),
                local,
            )  # (b, q', c)
            chunks.append(values if linear is None else sample_linear(linear, points) + step * values)
        return torch.cat(chunks, dim=1)  # (b, q, c)

    def latent_shape(self, tile: Sequence[int]) -> tuple[int, int]:
        """(m, d) of the latents of one tile of extents `tile`: a codec model has one LP per patch."""
        if self.to_latent is None:
            return self.positions.cfg.num_lp, self.cfg.encoder.d_model
        return math.prod(self.latent_grid(tile)), self.cfg.latent.width

    def latent_grid(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The latent grid of a codec model for a tile of `shape`: one cell per patch."""
        p = self.cfg.tokenizer.patch_size
        return tuple(-(-n // p) for n in shape)

    def grid_field(self, latents: Tensor, shape: Sequence[int]) -> Tensor:
        """A codec model's latents (b, m, w) of a tile of `shape` -> the field its reader reads:
        (b, *g, 2^k * h), g the latent grid."""
        grid = self.latent_grid(shape)
        b, m, w = latents.shape
        if m != math.prod(grid):
            raise ValueError(f"{m} latents for a latent grid of {grid}")
        x = latents.transpose(1, 2).reshape(b, w, *grid)  # (b, w, *g)
        features = self.synthesis(x)  # (b, f, *g)
        return self.grid_reader.project(features.flatten(2).transpose(1, 2), features.shape[2:])

    def linear_values(self, latents: Tensor, shape: Sequence[int]) -> Tensor:
        """A codec model's linear path: latents (b, m, w) of a tile of `shape` -> values on its padded
        pixel grid (b, c, *padded)."""
        grid = self.latent_grid(shape)
        b, _, w = latents.shape
        return self.to_values(latents.transpose(1, 2).reshape(b, w, *grid))

    def decode_grid(
        self,
        latents: Tensor,
        out_shape: Sequence[int],
        shape: Sequence[int] | None = None,
        x: Tensor | None = None,
        field: Tensor | None = None,
        step: float = 1.0,
    ) -> Tensor:
        """Render the whole field on a regular grid of `out_shape` cells: (b, c, *out_shape).
        Given the input `x` (and, for a model with local features, its `field`), the decoder refines its
        interpolation (when the model uses a base). `step`: a codec model's quantisation step."""
        b = latents.shape[0]
        coords = cell_centres(out_shape, device=latents.device).flatten(0, -2).expand(b, -1, -1)  # (b, q, k)
        cell = cell_size(out_shape, device=latents.device)  # (k,)
        base = self.base(x, coords)
        values = self.decode(
            latents, coords, cell, shape=shape, base=base, field=field, step=step
        )  # (b, q, c)
        return values.transpose(1, 2).reshape(b, -1, *out_shape)  # (b, c, *out_shape)

    def base(self, x: Tensor | None, coords: Tensor) -> Tensor | None:
        """The decoder's base at coords (b, q, k): x interpolated there, then the input cells around each
        point and its offset among them: (b, q, f). None without x or use_base."""
        if x is None or not self.cfg.hyponet.use_base:
            return None
        values = interpolate_at(x, coords)  # (b, q, c)
        if self.cfg.in_channels != self.cfg.out_channels:
            raise ValueError("a base needs as many input as output channels")
        return torch.cat([values, neighbourhood(x, coords, self.support)], dim=-1)  # (b, q, f)

    def forward(
        self,
        x: Tensor,
        coords: Tensor,
        cell: Tensor | None = None,
        use_base: bool = True,
        with_rate: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """x (b, c, *spatial), coords (b, q, k) -> values (b, q, c); use_base: refine x's interpolation
        (with the local features, where the model has them); else decode from the latents alone.
        A codec model decodes its latent grid quantised as training quantises it, and with `with_rate`
        returns its bits and quantisation steps too (see `compress`)."""
        if self.to_latent is not None:
            values, bits, steps = self.compress(x, coords, cell)
            return (values, bits, steps) if with_rate else values
        latents, field = self.encode_with_features(x)
        base = self.base(x, coords) if use_base else None
        field = field if base is not None else None
        return self.decode(latents, coords, cell, shape=x.shape[2:], base=base, field=field)

    def compress(
        self, x: Tensor, coords: Tensor, cell: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """A codec model's training pass: x (b, c, *spatial) -> (values at coords (b, q, c), bits per pixel
        or voxel of its latent grid (b,), quantisation steps (b,)). Each sample is quantised with its own
        step, drawn from those of `ginr encode --quality` (`training_steps`), so that every quality is one
        the model was trained for. The decoder sees the latents rounded, as they will be stored (the
        gradient passing straight through); the rate is that of the latents plus uniform noise of one
        step, a differentiable stand-in for the rounded ones (Balle et al., 2017)."""
        steps = training_steps(x.shape[0], x.device)  # (b,)
        latents = self.encode(x) / steps[:, None, None]  # (b, m, w) in units of each step
        s = steps[:, None, None]
        bits = self.rate(noisy(latents) * s, s).sum(dim=(1, 2)) / math.prod(x.shape[2:])  # (b,)
        values = self.decode(rounded(latents) * s, coords, cell, shape=x.shape[2:], step=steps)
        return values, bits, steps
