"""Experiment: what does data consistency (`engine/consistency.py`) add to the fitted volume model?

Thick-slices one volume along AXIS by FACTOR (as `ginr eval` does), fits the shipped `volume` model with
STEPS of `--adapt` (0: the model as shipped), and prints as one JSON line the PSNR / SSIM of its output
and of its 8-flip self-ensemble (`--ensemble`), each as rendered and made consistent with the thick slices,
beside cubic-spline interpolation as rendered and made consistent. One fit serves all six.

    python scripts/eval_consistency.py data/volumes/subject/robex_t1.nii.gz 1 4 600
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from fitted_case import fitted_case
from scipy import ndimage

from ginr_cli.engine import metrics
from ginr_cli.engine.consistency import make_consistent, whole_factors
from ginr_cli.engine.infer import resample


def main() -> None:
    path, axis, factor, steps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    device = torch.device("cpu")
    case = fitted_case(path, axis, factor, steps, device)
    factors = whole_factors(case.lr.shape, case.truth.shape)

    def render(ensemble: bool) -> np.ndarray:
        out = resample(case.net, case.source, case.out_grid, device, grid=case.grid, ensemble=ensemble)
        return case.norm.invert(out[..., 0])

    outputs = {
        "cubic-spline": ndimage.zoom(case.lr, case.zoom, order=3, mode="nearest", grid_mode=True),
        "ginr": render(False),
        "ginr --ensemble": render(True),
    }
    scores = {}
    for name, out in outputs.items():
        out = np.ascontiguousarray(out, dtype=np.float64)
        scores[name] = list(metrics.volume_scores(out, case.truth))
        make_consistent(out, case.lr, factors)
        scores[name + ", consistent"] = list(metrics.volume_scores(out, case.truth))
    print(json.dumps({"path": str(path), "axis": axis, "factor": factor, "steps": steps, "scores": scores}))


if __name__ == "__main__":
    main()
