"""Fitting one file's latents: the encoder's guess refined by gradient steps, the decoder frozen.

The encoder gives every file the latents of the average file; a few steps of Adam on this file's latents
(COIN++ and functa's amortised-then-refined recipe) lower its error plus rate. The latents move in units
of their quantisation step and are rounded in every forward pass (the gradient passes straight through),
so what is optimised is what will be stored: squared error plus `rate_weight * step^2` (as in training)
times the model's estimate of the integers' bits. Each step reads a random share of each tile's pixels,
so a step over a 256^3 volume costs about as much as decoding an eighth of it. `ginr encode` refines
only when asked (`--refine`): with the shipped codecs the model's bit estimate is not the LZMA stream's
size, and refining moves a file along the codec's curve rather than above it (see their cards).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ginr_cli.engine.tiling import TileGrid
from ginr_cli.nn.coords import cell_centres
from ginr_cli.nn.ginr import MambaGINR
from ginr_cli.nn.latent_grid import rounded

OnStep = Callable[[int, int], None]


def refine_latents(
    model: MambaGINR,
    source: np.ndarray,
    grid: TileGrid,
    integers: torch.Tensor,
    step: float,
    steps: int,
    device: torch.device,
    batch: int = 64,
    share: float = 0.125,
    lr: float = 0.05,
    seed: int = 0,
    on_step: OnStep | None = None,
) -> torch.Tensor:
    """Refine a codec model's latents of `source` (c, *spatial), model units.

    integers (tiles, m, w): the latents in units of `step` (not yet rounded), in the grid's raster order.
    Each of the `steps` steps reads `share` of every tile's pixels, `batch` tiles at a time. Returns the
    refined latents in units of `step`, rounded: what is stored."""
    if steps <= 0:
        return integers.round()
    origins = list(grid)
    tile = grid.tile
    k = len(tile)
    count = int(np.prod(tile))
    queries = max(1, min(count, round(share * count)))
    centres = cell_centres(tile, device=device).reshape(count, k)  # (p, k) every pixel of a tile
    cell = torch.tensor([2.0 / n for n in tile], device=device)
    values = torch.from_numpy(
        np.stack(
            [
                source[(slice(None), *(slice(o, o + t) for o, t in zip(origin, tile, strict=True)))]
                for origin in origins
            ]
        )
    ).flatten(2)  # (tiles, c, p)
    latents = integers.clone().to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([latents], lr=lr)
    weight = model.cfg.latent.rate_weight * step**2  # the trade-off training made at this step
    generator = torch.Generator().manual_seed(seed)
    for param in model.parameters():
        param.requires_grad_(False)
    try:
        for i in range(steps):
            for group in optimizer.param_groups:  # cosine decay: the last steps settle the rounding
                group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * i / steps))
            optimizer.zero_grad(set_to_none=True)
            for start in range(0, len(origins), batch):
                rows = slice(start, start + batch)
                b = len(origins[rows])
                picks = torch.stack([torch.randperm(count, generator=generator)[:queries] for _ in range(b)])
                target = torch.gather(values[rows], 2, picks[:, None].expand(-1, values.shape[1], -1))
                target = target.transpose(1, 2).to(device)  # (b, q, c)
                coords = centres[picks.to(device)]  # (b, q, k)
                y = rounded(latents[rows]) * step  # (b, m, w)
                pred = model.decode(y, coords, cell, shape=tile, step=step)  # (b, q, c)
                error = (pred - target).square().mean(dim=(1, 2)).sum()
                bits = model.rate(y, step).sum() / count
                (error + weight * bits).div(len(origins)).backward()
            optimizer.step()
            if on_step is not None:
                on_step(i + 1, steps)
    finally:
        for param in model.parameters():
            param.requires_grad_(True)
    return latents.detach().round().cpu()
