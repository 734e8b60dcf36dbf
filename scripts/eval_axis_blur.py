"""Experiment: is the fitted volume model sharper along the thick axis than the scan itself was?

Thick-slices one volume along AXIS by FACTOR (as `ginr eval` does), fits the shipped `volume` model with
STEPS of `--adapt`, and prints as one JSON line, for its output and for cubic-spline interpolation: PSNR
against the truth after a Gaussian blur of sigma 0 to 1 voxel along AXIS, and the share of power above half
Nyquist along AXIS (as `axis_sharpness.py` measures it) beside the truth's. If blurring the output brings
it closer to the truth, the fit restores detail that axis never held: what it learns on the sharp axes
does not transfer to a natively blurrier one.

    python scripts/eval_axis_blur.py data/volumes/subject/robex_t1.nii.gz 1 2 600
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from axis_sharpness import high_band_share
from fitted_case import fitted_case
from scipy import ndimage

from ginr_cli.engine import metrics
from ginr_cli.engine.infer import resample

SIGMAS = (0.0, 0.25, 0.4, 0.55, 0.7, 1.0)


def main() -> None:
    path, axis, factor, steps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    device = torch.device("cpu")
    case = fitted_case(path, axis, factor, steps, device)
    truth, lr, norm = case.truth, case.lr, case.norm
    out = resample(case.net, case.source, case.out_grid, device, grid=case.grid)
    outputs = {
        "ginr": norm.invert(out[..., 0]).astype(np.float64),
        "cubic-spline": ndimage.zoom(lr, case.zoom, order=3, mode="nearest", grid_mode=True),
    }
    low, high = np.percentile(truth, [0.5, 99.5])

    def share(v: np.ndarray) -> float:  # in percent, on the scale axis_sharpness.py uses
        return round(100 * high_band_share((v - low) / (high - low), axis, 0.5), 3)

    result = {"path": str(path), "axis": axis, "factor": factor, "steps": steps, "truth_share": share(truth)}
    for name, pred in outputs.items():
        blurred = {s: ndimage.gaussian_filter1d(pred, s, axis=axis) if s else pred for s in SIGMAS}
        result[name] = {
            "share": share(pred),
            "psnr_by_sigma": {s: round(metrics.volume_scores(b, truth)[0], 3) for s, b in blurred.items()},
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
