"""Training samples for arbitrary-scale super-resolution, made the way real low-resolution data arises.

Sample i is drawn from its own generator seeded by (seed, i), so a run is reproducible, resumes exactly,
and splits across DDP ranks by index alone. Each sample is:
    lr      (c, *tile)   the model's input: a high-resolution crop downscaled by a random scale
    coords  (q, k)       random high-resolution cell centres in the crop's [-1, 1] frame
    cell    (k,)         the high-resolution cell size in that frame
    target  (q, c)       the high-resolution values there
Photos are downscaled with antialiased bicubic, one scale for both axes; volumes with thick slices, the
average over each slab (area resampling), with a scale drawn per axis (each axis left at full resolution
half the time: clinical scans are often thick-sliced along one axis only). Values are in model units
(`normalize.Normalization`). Scale 1 is in the range, so latents also learn to reconstruct faithfully.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ginr_cli.engine import normalize
from ginr_cli.errors import GinrError


@dataclass(frozen=True)
class SampleSpec:
    tile: int  # the model's input side
    queries: int  # query points per sample
    scale_min: float = 1.0
    scale_max: float = 4.0


def find_files(folder: str | Path, kind: str) -> list[Path]:
    """Training files of `kind` ("image" or "volume") under `folder`, recursively, sorted."""
    if kind == "image":
        from ginr_cli.io.images import is_image_path as accept
    else:
        from ginr_cli.io.volumes import is_volume_path as accept
    folder = Path(folder)
    if not folder.is_dir():
        raise GinrError("not a folder", folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and accept(p))
    if not files:
        raise GinrError(f"no {kind} files found", folder)
    return files


def load_image_arrays(files: list[Path], channels: int) -> list[torch.Tensor]:
    """Images as float16 tensors (c, h, w) in model units, gray repeated to `channels`."""
    from ginr_cli.io.images import read_image

    arrays = []
    for path in files:
        color = read_image(path, max_pixels=None).color  # (h, w, c) in [0, 1]
        if color.shape[2] != channels:
            color = np.repeat(color[..., :1], channels, axis=2)
        arrays.append(torch.from_numpy(normalize.IMAGE.apply(color)).permute(2, 0, 1).half().contiguous())
    return arrays


def load_volume_arrays(files: list[Path]) -> list[torch.Tensor]:
    """Volumes as float16 tensors (1, d0, d1, d2) in model units, each normalised by its own range."""
    from ginr_cli.io.volumes import read_volume

    arrays = []
    for path in files:
        for frame in read_volume(path).data:  # (d0, d1, d2) per frame
            norm = normalize.for_volume(frame)
            arrays.append(torch.from_numpy(norm.apply(frame).astype(np.float32))[None].half().contiguous())
    return arrays


class SuperResolutionSamples(torch.utils.data.Dataset):
    """`length` samples from `arrays` (each (c, *spatial)); sample i depends only on (seed, i)."""

    def __init__(self, arrays: list[torch.Tensor], spec: SampleSpec, length: int, seed: int = 0):
        self.arrays, self.spec, self.length, self.seed = arrays, spec, length, seed
        self.rank = arrays[0].dim() - 1
        small = [tuple(a.shape[1:]) for a in arrays if min(a.shape[1:]) < spec.tile]
        if small:
            raise GinrError(f"training needs inputs of at least {spec.tile} per side; got {small[0]}")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        array = self.arrays[rng.integers(len(self.arrays))]
        spatial = array.shape[1:]
        t = self.spec.tile
        # A scale per axis for volumes, one for both axes of a photo; never a crop larger than the input.
        draws = rng.uniform(self.spec.scale_min, self.spec.scale_max, size=self.rank if self.rank == 3 else 1)
        if self.rank == 3:  # each axis kept at full resolution half the time: scans are often thick-sliced
            draws[rng.random(3) < 0.5] = 1.0  # along one axis only
        scales = np.broadcast_to(draws, (self.rank,))
        hr = [min(n, max(t, round(t * s))) for n, s in zip(spatial, scales, strict=True)]
        start = [int(rng.integers(n - h + 1)) for n, h in zip(spatial, hr, strict=True)]
        crop = array[(slice(None), *(slice(a, a + h) for a, h in zip(start, hr, strict=True)))].float()
        crop = self._augment(crop, rng)
        hr = list(crop.shape[1:])
        if self.rank == 2:
            lr = F.interpolate(crop[None], size=(t, t), mode="bicubic", antialias=True, align_corners=False)[
                0
            ]
        else:
            lr = F.interpolate(crop[None], size=(t, t, t), mode="area")[0]
        total = int(np.prod(hr))
        picks = rng.choice(total, size=self.spec.queries, replace=total < self.spec.queries)
        index_nd = np.unravel_index(picks, hr)
        coords = np.stack([(2 * i + 1) / n - 1 for i, n in zip(index_nd, hr, strict=True)], axis=-1)
        target = crop.flatten(1)[:, torch.from_numpy(picks)].T  # (q, c)
        return {
            "lr": lr.contiguous(),
            "coords": torch.from_numpy(coords.astype(np.float32)),
            "cell": torch.tensor([2.0 / n for n in hr], dtype=torch.float32),
            "target": target.contiguous(),
        }

    def _augment(self, crop: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Random flips of each spatial axis (and a transpose for square 2D crops)."""
        dims = [d + 1 for d in range(self.rank) if rng.random() < 0.5]
        if dims:
            crop = crop.flip(dims)
        if self.rank == 2 and crop.shape[1] == crop.shape[2] and rng.random() < 0.5:
            crop = crop.transpose(1, 2)
        return crop
