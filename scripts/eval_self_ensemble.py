"""Experiment: does averaging over flips (self-ensemble, as EDSR+ does) help the fitted volume model?

Thick-slices one volume along AXIS by FACTOR (as `ginr eval` does), fits the shipped `volume` model with
STEPS of `--adapt`, decodes the 8 flips of the input, and prints PSNR / SSIM of the plain output, of the
mean over the 4 in-plane flips, over the 2 flips of the thick axis and over all 8, as one JSON line.

    python scripts/eval_self_ensemble.py data/volumes/subject/robex_t1.nii.gz 1 4 600
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from fitted_case import fitted_case

from ginr_cli.engine import metrics
from ginr_cli.engine.infer import flip_sets, resample


def main() -> None:
    path, axis, factor, steps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    device = torch.device("cpu")
    case = fitted_case(path, axis, factor, steps, device)
    source, truth, norm = case.source, case.truth, case.norm
    outputs = {}
    for flips in flip_sets(3):
        flipped = np.flip(source, [f + 1 for f in flips]).copy()
        out = resample(case.net, flipped, case.out_grid, device, grid=case.grid)[..., 0]
        outputs[flips] = np.flip(out, flips).copy()

    def score(keys) -> list[float]:
        pred = norm.invert(np.mean([outputs[k] for k in keys], axis=0)).astype(np.float64)
        return list(metrics.volume_scores(pred, truth))

    print(json.dumps({"path": str(path), "axis": axis, "factor": factor, "steps": steps,
                      "single": score([()]), "inplane4": score([k for k in outputs if axis not in k]),
                      "thick2": score([(), (axis,)]), "all8": score(list(outputs))}))  # fmt: skip


if __name__ == "__main__":
    main()
