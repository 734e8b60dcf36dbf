"""Fit the upscaling model to one scan before upscaling it, from the scan alone (self-supervised).

A thick-sliced scan is sharp along its other axes: what thick slicing removes along the slice axis, the
scan shows along the in-plane ones, with its own anatomy, contrast and noise. Training pairs are made from
the input itself (SMORE, Zhao et al. 2020, does this with 2D networks): a crop is averaged over slabs of
the wanted factor along a full-resolution axis, and that axis is turned to where the thick one lies, so
the model learns to undo exactly the degradation it will face, on this scan. The thick axis, turned to
where the sharp one was, is in some samples first resampled to the sharp spacing with a cubic spline, so
that anatomy keeps the size in voxels it has at inference, and in the others left as it is, with the
sharper detail of the real slices (the `volume` card measures each choice and the mix). Where no
axis is at full resolution (every axis upscaled), the thick axis itself is thinned once more (ZSSR,
Shocher et al. 2018). The model passed in is not changed: a fitted copy is returned.
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


def resampled_share(factor: float) -> float:
    """The share of samples whose thick axis is resampled before it is turned: a quarter at x2, half from
    x4 on (chosen on the `volume` card's rows)."""
    return min(0.5, factor / 8)


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


def to_sharp_spacing(volume: torch.Tensor, axis: int, factor: float) -> torch.Tensor:
    """`volume` with `axis` resampled `factor` times finer by a cubic spline, the field of view kept."""
    from scipy import ndimage

    zoom = [factor if d == axis else 1.0 for d in range(volume.dim())]
    fine = ndimage.zoom(volume.numpy(), zoom, order=3, mode="nearest", grid_mode=True)
    return torch.from_numpy(fine.astype(np.float32))


def _sample(volume: torch.Tensor, pair, tile: int, queries: int, rng: np.random.Generator):
    """One training sample from `volume` (*spatial; for a donor other than the thick axis, with the thick
    axis already at the sharp spacing, `to_sharp_spacing`): (input (1, *tile), coords (q, k), cell (k,),
    target (q, 1))."""
    thick, donor, factor = pair
    size = [tile] * volume.dim()
    size[donor] = round(tile * factor)
    start = [int(rng.integers(n - s + 1)) for n, s in zip(volume.shape, size, strict=True)]
    crop = volume[tuple(slice(a, a + s) for a, s in zip(start, size, strict=True))]
    flips = [d for d in range(volume.dim()) if rng.random() < 0.5]
    crop = crop.flip(flips) if flips else crop
    crop = crop.transpose(donor, thick) if donor != thick else crop
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
    # 3D convolutions run faster channels-last on the CPU
    memory = torch.channels_last_3d if model.cfg.rank == 3 else torch.preserve_format
    fitted = copy.deepcopy(model).to(device, memory_format=memory)
    fitted.train()
    optimizer = torch.optim.AdamW(fitted.parameters(), lr=ADAPT_LR, weight_decay=0.0)
    volume = torch.from_numpy(np.ascontiguousarray(source[0], dtype=np.float32))
    short = [max(0, tile - n) for n in volume.shape]  # a thick axis of fewer slices than a tile: repeat
    if any(short):  # its edges, as tiling does
        pad = [p for n in reversed(short) for p in (n // 2, n - n // 2)]
        volume = F.pad(volume[None, None], pad, mode="replicate")[0, 0]
    sharp = {(a, f): to_sharp_spacing(volume, a, f) for a, b, f in pairs if b != a}
    sources = [sharp[(a, f)] if b != a else volume for a, b, f in pairs]
    rng = np.random.default_rng(seed)

    def draw(i: int):  # a sample of pair i, its thick axis resampled or as it is
        return _sample(
            sources[i] if rng.random() < resampled_share(pairs[i][2]) else volume,
            pairs[i],
            tile,
            ADAPT_QUERIES,
            rng,
        )

    with torch.inference_mode(False), torch.enable_grad():
        for step in range(steps):
            for group in optimizer.param_groups:  # cosine decay to a tenth
                group["lr"] = ADAPT_LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
            picks = rng.integers(len(pairs), size=ADAPT_BATCH)
            batch = [draw(i) for i in picks]
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
