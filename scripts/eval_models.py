"""Evaluate the shipped models with `ginr eval` and print the markdown tables of their cards.

    python scripts/eval_models.py                  # both models; data from ../shared and data/
    python scripts/eval_models.py --only volume
    python scripts/eval_models.py --only volume --adapt 600   # the volume model fitted to each scan first
    python scripts/eval_models.py --ensemble       # each model averaged over its tiles' flips

Images: Set5, Set14 and BSD100 (../shared/data/sr-benchmarks) at x2, x3 and x4, against bicubic and
Lanczos; then arbitrary scales, Set14's HR images downscaled on the fly by 1.5, 2.5, 3.5, 6 and 8.
Volume: the held-out MNI152 T1 (scripts/prepare_data.py), thick slices along axis 2 at x2 and x4, and the
held-out single-subject T1 (data/volumes/subject) thick-sliced along each axis, against trilinear and
cubic-spline interpolation. Each run's JSON is kept beside the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT.parent / "shared" / "data" / "sr-benchmarks"
HELD_OUT = ROOT / "data" / "volumes" / "eval" / "mni152_t1_1mm.nii.gz"
SUBJECT = ROOT / "data" / "volumes" / "subject" / "robex_t1.nii.gz"
ARBITRARY = "1.5,2.5,3.5,6,8"


def ginr_eval(args: list[str]) -> tuple[dict, float]:
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "ginr_cli", "eval", *args, "--json", "-q"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]), time.perf_counter() - started


def table(rows: list[tuple[str, dict]], methods: list[str]) -> str:
    """One line per (data, scale): each method's PSNR / SSIM and ginr's gain over the first method."""
    head = "| data | scale | " + " | ".join(f"{m} PSNR / SSIM" for m in methods) + f" | ginr - {methods[0]} |"
    lines = [head, "|" + "---|" * (len(methods) + 3)]
    for name, result in rows:
        by = {(r["scale"], r["method"]): r for r in result["averages"]}
        for scale in sorted({s for s, _ in by}):
            cells = [f"{by[scale, m]['psnr']:.2f} / {by[scale, m]['ssim']:.4f}" for m in methods]
            gain = by[scale, "ginr"]["psnr"] - by[scale, methods[0]]["psnr"]
            lines.append(f"| {name} | x{scale:g} | " + " | ".join(cells) + f" | {gain:+.2f} dB |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["image", "arbitrary", "volume"])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "eval")
    parser.add_argument("--adapt", type=int, default=0, help="volumes: ginr eval --adapt N")
    parser.add_argument("--ensemble", action="store_true", help="ginr eval --ensemble")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    flips, flip_tag = (["--ensemble"], "-ensemble") if args.ensemble else ([], "")
    if args.only in (None, "image"):
        rows = []
        for name in ("Set5", "Set14", "BSD100"):
            sets = [str(BENCHMARKS / name), "--scales", "2,3,4", "--model", "image", *flips]
            result, seconds = ginr_eval(sets)
            (args.out / f"image-{name}{flip_tag}.json").write_text(json.dumps(result, indent=1))
            print(f"{name}: {seconds:.0f} s", file=sys.stderr)
            rows.append((name, result))
        print(table(rows, ["bicubic", "lanczos", "ginr"]))
    if args.only in (None, "arbitrary"):
        hr = args.out / "set14-hr"  # Set14's HR images alone, so `ginr eval` downscales them itself
        hr.mkdir(exist_ok=True)
        for path in sorted((BENCHMARKS / "Set14" / "image_SRF_4").glob("*_HR.png")):
            (hr / path.name.replace("_SRF_4_HR", "")).write_bytes(path.read_bytes())
        result, seconds = ginr_eval([str(hr), "--scales", ARBITRARY, "--model", "image", *flips])
        (args.out / f"image-arbitrary{flip_tag}.json").write_text(json.dumps(result, indent=1))
        print(f"Set14 arbitrary scales: {seconds:.0f} s", file=sys.stderr)
        print(table([("Set14 HR, downscaled", result)], ["bicubic", "lanczos", "ginr"]))
    if args.only in (None, "volume"):
        fit = (["--adapt", str(args.adapt)] if args.adapt else []) + flips
        tag = (f"-adapt{args.adapt}" if args.adapt else "") + flip_tag
        result, seconds = ginr_eval(
            [str(HELD_OUT), "--scales", "2,4", "--axis", "2", "--model", "volume", *fit]
        )
        (args.out / f"volume-mni152{tag}.json").write_text(json.dumps(result, indent=1))
        print(f"MNI152: {seconds:.0f} s", file=sys.stderr)
        rows = [("MNI152 T1 1 mm, axis 2", result)]
        for axis in (0, 1, 2):
            args_ = [str(SUBJECT), "--scales", "2,4", "--axis", str(axis), "--model", "volume", *fit]
            result, seconds = ginr_eval(args_)
            (args.out / f"volume-subject-axis{axis}{tag}.json").write_text(json.dumps(result, indent=1))
            print(f"subject, axis {axis}: {seconds:.0f} s", file=sys.stderr)
            rows.append((f"single-subject T1 1.5 mm, axis {axis}", result))
        print(table(rows, ["cubic-spline", "trilinear", "ginr"]))


if __name__ == "__main__":
    main()
