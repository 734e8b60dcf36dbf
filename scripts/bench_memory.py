"""Benchmark: peak memory (RSS) and wall time of `ginr` on big inputs, against a stated budget.

Each step is a separate `python -m ginr_cli ...` process, measured with `/usr/bin/time -v` (GNU time:
maximum resident set size, elapsed wall time) or, where that is not installed, with
`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss` of a wrapper that runs only that process.

    (a) ginr upscale   a generated 6000x4000 RGB photo-like PNG, --scale 2 (-> 12000x8000)
    (b) ginr encode    a generated smooth 256^3 int16 NIfTI
        ginr decode    its latent at --scale 2 (-> 512^3, written uncompressed)

Budget: BUDGET_GIB below, peak RSS per step. Memory is bounded because tiles are encoded and decoded a
batch at a time, the output is stitched one band of tiles at a time (`engine.tiling.stitch`) and written
without full-size float copies; what remains is the output itself (float32 while it is rendered, then the
file's dtype) and the input. For (a): the 12000x8000x3 float32 output, 1.1 GiB, and the 8-bit file image,
0.3 GiB; for (b): the 512^3 float32 output, 0.5 GiB, plus the frame stacked for writing and the int16 file
array, 0.75 GiB; then torch and the model (the measured peaks: scripts/results/memory*.json).

    python scripts/bench_memory.py                       # full size, with the shipped models
    python scripts/bench_memory.py --image-model DIR --volume-model DIR   # model folders (or presets)
    python scripts/bench_memory.py --quick               # (or --small) 600x400 and 32^3: a smoke run
    python scripts/bench_memory.py --image 2000x3000 --volume 96   # other sizes (the full ones are slow)
    python scripts/bench_memory.py --json                # last line: {"results": [...], ...}
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

BUDGET_GIB = {"upscale image": 4.0, "encode volume": 4.0, "decode volume": 4.0}
FULL = {"image": (4000, 6000), "volume": 256}  # image (h, w); volume side
QUICK = {"image": (400, 600), "volume": 32}
TIME = "/usr/bin/time"


def make_image(path: Path, hw: tuple[int, int]) -> None:
    """A photo-like RGB PNG: smooth colour fields plus fine texture, made a band of rows at a time."""
    from PIL import Image

    h, w = hw
    rng = np.random.default_rng(0)
    x = np.linspace(0, 6 * np.pi, w, dtype=np.float32)
    rows = []
    for top in range(0, h, 500):
        y = np.linspace(0, 4 * np.pi, h, dtype=np.float32)[top : top + 500, None]
        band = np.stack([np.sin(x + y), np.cos(0.7 * x - y), np.sin(0.3 * x * y / 10)], axis=-1)
        band = 0.5 + 0.35 * band + 0.1 * rng.standard_normal(band.shape, dtype=np.float32)
        rows.append((np.clip(band, 0, 1) * 255).astype(np.uint8))
    Image.fromarray(np.concatenate(rows)).save(path, compress_level=1)


def make_volume(path: Path, side: int) -> None:
    """A smooth int16 volume (sums of sines, like soft tissue contrast), 1 mm voxels, uncompressed."""
    import nibabel as nib

    t = np.linspace(0, 3 * np.pi, side, dtype=np.float32)
    data = np.empty((side, side, side), np.int16)
    for i in range(side):
        plane = np.sin(t[i]) + np.cos(1.3 * t)[:, None] + np.sin(0.7 * t)[None, :]
        data[i] = (1000 + 300 * plane).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)


def model_folder(kind: str, choice: str | None, folder: Path) -> tuple[str, str]:
    """What to pass to --model, and a line saying which model it is (see benchlib.ginr_model)."""
    from benchlib import ginr_model

    from ginr_cli.io.checkpoints import find_model, save_model

    model, about = ginr_model(kind, choice)
    if about.startswith("preset"):
        save_model(model, folder / kind)
        return str(folder / kind), about
    return str(find_model(choice or kind)), about


def measure(args: list[str]) -> tuple[float, float, str]:
    """(peak RSS in GiB, wall seconds, how it was measured) of `python -m ginr_cli ARGS`."""
    cmd = [sys.executable, "-m", "ginr_cli", *args]
    if Path(TIME).is_file():
        start = time.perf_counter()
        done = subprocess.run([TIME, "-v", *cmd], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"ginr {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
        return kb / 2**20, wall, "/usr/bin/time -v"
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "code = subprocess.run(sys.argv[1:]).returncode\n"
        "wall = time.perf_counter() - start\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, wall)\n"
    )
    done = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    code, kb, wall = done.stdout.split()[-3:]
    if int(code) != 0:
        raise SystemExit(f"ginr {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return int(kb) / 2**20, float(wall), "getrusage(RUSAGE_CHILDREN)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--image-model", help="Model folder, shipped name or preset (default: shipped 'image')."
    )
    parser.add_argument(
        "--volume-model", help="Model folder, shipped name or preset (default: shipped 'volume')."
    )
    parser.add_argument(
        "--quick", "--small", action="store_true", help="Small inputs: checks the script works."
    )
    parser.add_argument("--image", help="Image size HxW instead of the full 4000x6000 (e.g. 2000x3000).")
    parser.add_argument("--volume", type=int, help="Volume side instead of the full 256 (e.g. 96).")
    parser.add_argument("--device", default="cpu", help="Passed to ginr (default cpu).")
    parser.add_argument("--json", action="store_true", help="Also print the results as JSON (last line).")
    opts = parser.parse_args()
    sizes = dict(QUICK if opts.quick else FULL)
    if opts.image:
        sizes["image"] = tuple(int(v) for v in opts.image.lower().split("x"))
    if opts.volume:
        sizes["volume"] = opts.volume
    if not Path(TIME).is_file():
        print(f"{TIME} not found (apt-get install time): measuring with getrusage instead", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="ginr-bench-memory-") as tmp:
        tmp = Path(tmp)
        image_model, image_about = model_folder("image", opts.image_model, tmp)
        volume_model, volume_about = model_folder("volume", opts.volume_model, tmp)
        h, w = sizes["image"]
        side = sizes["volume"]
        make_image(tmp / "photo.png", (h, w))
        make_volume(tmp / "scan.nii", side)
        common = ["--device", opts.device, "-q"]
        steps = [
            ("upscale image", f"{w}x{h} RGB PNG", f"{2 * w}x{2 * h} PNG",
             ["upscale", tmp / "photo.png", tmp / "photo-x2.png", "--scale", "2", "--model", image_model]),
            ("encode volume", f"{side}^3 int16 NIfTI", "latent",
             ["encode", tmp / "scan.nii", "-o", tmp / "scan.safetensors", "--model", volume_model]),
            ("decode volume", "latent", f"{2 * side}^3 int16 NIfTI",
             ["decode", tmp / "scan.safetensors", "-o", tmp / "scan-x2.nii", "--scale", "2",
              "--model", volume_model]),
        ]  # fmt: skip
        results = []
        for name, source, output, args in steps:
            peak, wall, how = measure([str(a) for a in args] + common)
            budget = BUDGET_GIB[name]
            results.append(
                {"step": name, "input": source, "output": output, "peak_gib": round(peak, 3),
                 "wall_s": round(wall, 1), "budget_gib": budget, "within": peak <= budget, "measured_by": how}
            )  # fmt: skip
        sizes_out = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}

    print(f"image model:  {image_about}")
    print(f"volume model: {volume_about}")
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, cores {os.cpu_count()}")
    if opts.quick:
        print("--quick: small inputs, a smoke run; the budget is for the full sizes")
    print(
        f"{'step':<14} | {'input':<20} | {'output':<20} | {'peak RSS':>10} | {'wall':>7} | {'budget':>8} | ok"
    )
    for r in results:
        ok = "yes" if r["within"] else "NO"
        print(
            f"{r['step']:<14} | {r['input']:<20} | {r['output']:<20} | {r['peak_gib']:>6.2f} GiB | "
            f"{r['wall_s']:>6.1f}s | {r['budget_gib']:>4.1f} GiB | {ok}"
        )
    print(f"measured with {results[0]['measured_by']}; output files: {sizes_out}")
    if opts.json:
        print(json.dumps({"quick": opts.quick, "image_model": image_about, "volume_model": volume_about,
                          "results": results}))  # fmt: skip


if __name__ == "__main__":
    main()
