"""The evaluation case the volume experiments share: one volume thick-sliced along an axis (as `ginr eval`
does) and the shipped `volume` model fitted to it (as `--adapt` does)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ginr_cli.engine.adapt import adapt
from ginr_cli.engine.evaluate import thick_sliced
from ginr_cli.engine.infer import default_grid
from ginr_cli.engine.tiling import OutputGrid
from ginr_cli.io.checkpoints import find_model, load_model
from ginr_cli.io.volumes import read_volume
from ginr_cli.nn.ginr import MambaGINR


@dataclass
class FittedCase:
    truth: np.ndarray  # the volume, cropped to a multiple of the factor
    lr: np.ndarray  # its thick slices
    norm: object  # their normalisation
    source: np.ndarray  # the normalised input the model reads (1, *spatial)
    zoom: list[float]  # per axis, truth over thick slices
    net: MambaGINR  # the fitted model
    grid: object  # the tile grid over the input
    out_grid: OutputGrid  # the output grid, the truth's shape


def fitted_case(path: Path, axis: int, factor: int, steps: int, device: torch.device) -> FittedCase:
    """`path` thick-sliced by `factor` along `axis`, and the `volume` model fitted to it with `steps`."""
    model, _ = load_model(find_model("volume"), device)
    volume = read_volume(path).data[0].astype(np.float64)
    truth, lr, norm, source = thick_sliced(volume, axis, factor)
    zoom = [t / s for t, s in zip(truth.shape, lr.shape, strict=True)]
    net = adapt(model, source, zoom, steps, device)
    grid, out_grid = default_grid(net, lr.shape), OutputGrid.full(lr.shape, truth.shape)
    return FittedCase(truth, lr, norm, source, zoom, net, grid, out_grid)
