"""Experiment: does averaging over flips (self-ensemble, as EDSR+ does) help the fitted volume model?

Thick-slices one volume along AXIS by FACTOR (as `ginr eval` does), fits the shipped `volume` model with
STEPS of `--adapt`, decodes the 8 flips of the input, and prints PSNR / SSIM of the plain output, of the
mean over the 4 in-plane flips, over the 2 flips of the thick axis and over all 8, as one JSON line.

    python scripts/eval_self_ensemble.py data/volumes/subject/robex_t1.nii.gz 1 4 600
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ginr_cli.engine import metrics
from ginr_cli.engine.adapt import adapt
from ginr_cli.engine.evaluate import thick_sliced
from ginr_cli.engine.infer import default_grid, resample
from ginr_cli.engine.tiling import OutputGrid
from ginr_cli.io.checkpoints import find_model, load_model
from ginr_cli.io.volumes import read_volume


def main() -> None:
    path, axis, factor, steps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    device = torch.device("cpu")
    model, _ = load_model(find_model("volume"), device)
    volume = read_volume(path).data[0].astype(np.float64)
    truth, lr, norm, source = thick_sliced(volume, axis, factor)
    net = adapt(model, source, [t / s for t, s in zip(truth.shape, lr.shape, strict=True)], steps, device)
    grid, out_grid = default_grid(net, lr.shape), OutputGrid.full(lr.shape, truth.shape)
    outputs = {}
    for flips in itertools.chain.from_iterable(itertools.combinations(range(3), k) for k in range(4)):
        flipped = np.flip(source, [f + 1 for f in flips]).copy()
        out = resample(net, flipped, out_grid, device, grid=grid)[..., 0]
        outputs[flips] = np.flip(out, flips).copy()

    def score(keys) -> list[float]:
        pred = norm.invert(np.mean([outputs[k] for k in keys], axis=0)).astype(np.float64)
        return list(metrics.volume_scores(pred, truth))

    print(json.dumps({"path": str(path), "axis": axis, "factor": factor, "steps": steps,
                      "single": score([()]), "inplane4": score([k for k in outputs if axis not in k]),
                      "thick2": score([(), (axis,)]), "all8": score(list(outputs))}))  # fmt: skip


if __name__ == "__main__":
    main()
