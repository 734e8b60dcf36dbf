"""Benchmark: the cost of one step of `ginr upscale --adapt N`, fitting the shipped `volume` model to a
scan thick-sliced by 4 along axis 1 (the fit `ginr eval --adapt` measures).

The scan: data/volumes/subject/robex_t1.nii.gz (scripts/prepare_data.py) where it is there, else
examples/volumes/colin27_2mm.nii.gz. Two fits of different lengths, so the seconds a step leave out the
fixed cost (copying the model, padding the scan); a one-step fit first warms up.

    python scripts/bench_adapt.py            # the table
    python scripts/bench_adapt.py --json     # last line: {"results": [...], ...}
    python scripts/bench_adapt.py --quick    # tiny fits: a smoke run, not a measurement
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ginr_cli.engine import normalize
from ginr_cli.engine.adapt import adapt
from ginr_cli.engine.evaluate import thick_slices
from ginr_cli.io.checkpoints import find_model, load_model
from ginr_cli.io.volumes import read_volume

ROOT = Path(__file__).resolve().parents[1]
SCANS = [ROOT / "data/volumes/subject/robex_t1.nii.gz", ROOT / "examples/volumes/colin27_2mm.nii.gz"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    scan = next(p for p in SCANS if p.exists())
    model, _ = load_model(find_model("volume"))
    volume = read_volume(scan).data[0].astype(np.float64)
    thick = thick_slices(volume[:, : volume.shape[1] // 4 * 4], 1, 4)  # slabs of 4 slices along axis 1
    source = normalize.for_volume(thick).apply(thick.astype(np.float32))[None]
    short, long = (2, 4) if args.quick else (5, 25)
    adapt(model, source, (1, 4, 1), 1, torch.device("cpu"))  # warm-up: kernels loaded, threads started
    seconds = {}
    for steps in (short, long):
        started = time.perf_counter()
        adapt(model, source, (1, 4, 1), steps, torch.device("cpu"))
        seconds[steps] = time.perf_counter() - started
    per_step = (seconds[long] - seconds[short]) / (long - short)
    print(f"{'scan':<24}{'input':>14}{'steps':>8}{'seconds':>10}")
    for steps, s in seconds.items():
        print(f"{scan.name:<24}{'x'.join(map(str, source.shape[1:])):>14}{steps:>8}{s:>10.1f}")
    print(f"seconds a step: {per_step:.2f} (600 steps: {600 * per_step / 60:.1f} minutes)")
    if args.json:
        results = [{"steps": k, "seconds": round(v, 2)} for k, v in seconds.items()]
        print(json.dumps({"scan": scan.name, "threads": torch.get_num_threads(), "results": results,
                          "seconds_per_step": round(per_step, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
