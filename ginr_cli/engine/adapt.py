"""Fit the upscaling model to one scan before upscaling it, from the scan alone (self-supervised).

A thick-sliced scan is sharp along its other axes: what thick slicing removes along the slice axis, the
scan shows along the in-plane ones, with its own anatomy, contrast and noise. Training pairs are made from
the input itself (SMORE, Zhao et al. 2020, does this with 2D networks): a crop is averaged over slabs of
the wanted factor along a full-resolution axis, and that axis is turned to where the thick one lies, so
the model learns to undo exactly the degradation it will face, on this scan. The thick axis, turned to
where the sharp one was, is first resampled to the sharp spacing, so that anatomy keeps the size in voxels
it has at inference (the `volume` card measures both). Where no axis is at full resolution (every axis
upscaled), the thick axis itself is thinned once more (ZSSR, Shocher et al. 2018). The model passed in
is not changed: a fitted copy is returned.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ginr_cli.nn.ginr import MambaGINR

ADAPT_LR = 5e-4
ADAPT_BATCH = 4
ADAPT_QUERIES = 4096


def plan_axes(shape: Sequence[int], scales: Sequence[float], tile: int) -> list[tuple[int, int, float]]:
    """The (thick axis, donor axis, factor) pairs to learn from: each upscaled axis with each axis at full
    resolution long enough to crop `tile * factor` from (or with itself when there is none). Other axes
    shorter than a tile are padded (`adapt`)."""
    thick = [a for a, s in enumerate(scales) if s > 1.01]
    full = [b for b, s in enumerate(scales) if abs(s - 1) <= 0.01]
    pairs = []
    for a in thick:
        need = round(tile * scales[a])
        donors = [b for b in full if shape[b] >= need] or ([a] if shape[a] >= need else [])
        pairs += [(a, b, float(scales[a])) for b in donors]
    return pairs


def _sample(volume: torch.Tensor, pair, tile: int, queries: int, rng: np.random.Generator):
    """One training sample from `volume` (*spatial): (input (1, *tile), coords (q, k), cell (k,),
    target (q, 1))."""
    thick, donor, factor = pair
    size = [tile] * volume.dim()
    size[donor] = round(tile * factor)
    if donor != thick:  # fewer thick slices, stretched below to the sharp spacing they will stand in for
        size[thick] = max(2, round(tile / factor))
    start = [int(rng.integers(n - s + 1)) for n, s in zip(volume.shape, size, strict=True)]
    crop = volume[tuple(slice(a, a + s) for a, s in zip(start, size, strict=True))]
    flips = [d for d in range(volume.dim()) if rng.random() < 0.5]
    crop = crop.flip(flips) if flips else crop
    if donor != thick:
        stretched = list(crop.shape)
        stretched[thick] = tile
        crop = F.interpolate(crop[None, None], size=stretched, mode="trilinear", align_corners=False)[0, 0]
        crop = crop.transpose(donor, thick)
    low = F.interpolate(crop[None, None].float(), size=[tile] * volume.dim(), mode="area")[0]
    picks = rng.choice(crop.numel(), size=queries, replace=crop.numel() < queries)
    index = np.unravel_index(picks, crop.shape)
    coords = np.stack([(2 * i + 1) / n - 1 for i, n in zip(index, crop.shape, strict=True)], axis=-1)
    cell = torch.tensor([2.0 / n for n in crop.shape], dtype=torch.float32)
    target = crop.flatten()[torch.from_numpy(picks)][:, None].float()
    return low, torch.from_numpy(coords.astype(np.float32)), cell, target


def adapt(
    model: MambaGINR,
    source: np.ndarray,
    scales: Sequence[float],
    steps: int,
    device: torch.device,
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
) -> MambaGINR:
    """A copy of `model` fitted to `source` (1, *spatial, model units) for upscaling by `scales` (one per
    axis), with `steps` gradient steps; `model` itself when there is nothing to learn from (no axis
    upscaled, or the scan smaller than a tile)."""
    tile = model.cfg.input_size
    pairs = plan_axes(source.shape[1:], scales, tile)
    if steps <= 0 or not pairs or model.cfg.latent.grid:
        return model
    fitted = copy.deepcopy(model).to(device)
    fitted.train()
    optimizer = torch.optim.AdamW(fitted.parameters(), lr=ADAPT_LR, weight_decay=0.0)
    volume = torch.from_numpy(np.ascontiguousarray(source[0], dtype=np.float32))
    short = [max(0, tile - n) for n in volume.shape]  # a thick axis of fewer slices than a tile: repeat
    if any(short):  # its edges, as tiling does
        pad = [p for n in reversed(short) for p in (n // 2, n - n // 2)]
        volume = F.pad(volume[None, None], pad, mode="replicate")[0, 0]
    rng = np.random.default_rng(seed)
    with torch.inference_mode(False), torch.enable_grad():
        for step in range(steps):
            for group in optimizer.param_groups:  # cosine decay to a tenth
                group["lr"] = ADAPT_LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
            batch = [
                _sample(volume, pairs[rng.integers(len(pairs))], tile, ADAPT_QUERIES, rng)
                for _ in range(ADAPT_BATCH)
            ]
            x, coords, cell, target = (torch.stack(parts).to(device) for parts in zip(*batch, strict=True))
            loss = F.l1_loss(fitted(x, coords, cell, use_base=True).float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(fitted.parameters(), 1.0)
            optimizer.step()
            if on_step is not None:
                on_step(step + 1, steps)
    fitted.eval()
    return fitted
