"""Benchmark: reconstructing a 181x217x181 MRI at twice the resolution along one axis, ginr against
`scipy.ndimage.zoom` (order 3, cubic B-spline), side by side in one run.

Output voxels per second, file to file through the same reader and writer (`ginr_cli.io.volumes`,
uncompressed .nii, so gzip's time does not hide the resampler's): ginr through
`engine.upscale.upscale_volume` with scale (1, 1, 2), the path `ginr upscale --scale 1,1,2` takes, in fp32
under inference mode; scipy on the same float32 array, on cell centres (grid_mode=True), edges clamped.

The MRI: data/volumes/eval/mni152_t1_1mm.nii.gz (197x233x189) centre-cropped to 181x217x181 where it is
there; otherwise examples/volumes/colin27_2mm.nii.gz (90x108x90, 2 mm) resized to 181x217x181 with scipy.

    python scripts/bench_volume.py                          # the table
    python scripts/bench_volume.py --json                   # last line: {"results": [...], ...}
    python scripts/bench_volume.py --model volume           # a model folder, shipped name or preset
    python scripts/bench_volume.py --quick                  # tiny sizes: a smoke run, not a measurement
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from benchlib import ginr_model, save_plot, side_by_side

ROOT = Path(__file__).resolve().parents[1]
MNI = ROOT / "data" / "volumes" / "eval" / "mni152_t1_1mm.nii.gz"
COLIN = ROOT / "examples" / "volumes" / "colin27_2mm.nii.gz"
SHAPE = (181, 217, 181)
QUICK_SHAPE = (20, 24, 20)


def make_input(shape: tuple[int, ...], folder: Path, prefer_mni: bool = True) -> tuple[Path, str]:
    """An uncompressed NIfTI of `shape` and a line saying where it came from."""
    from scipy.ndimage import zoom

    from ginr_cli.io.geometry import scale_affine

    path = folder / "mri.nii"
    if prefer_mni and MNI.is_file() and all(a >= b for a, b in zip(nib.load(MNI).shape, shape, strict=True)):
        img = nib.load(MNI)
        lo = [(a - b) // 2 for a, b in zip(img.shape, shape, strict=True)]
        crop = img.slicer[tuple(slice(o, o + n) for o, n in zip(lo, shape, strict=True))]
        nib.save(nib.Nifti1Image(np.asarray(crop.dataobj), crop.affine, crop.header), path)
        return path, f"{MNI.relative_to(ROOT)} {'x'.join(map(str, img.shape))}, centre crop"
    img = nib.load(COLIN)
    data = np.asarray(img.dataobj, np.float32)
    factors = [n / s for n, s in zip(shape, data.shape, strict=True)]
    resized = zoom(data, factors, order=1, grid_mode=True, mode="nearest")
    affine = scale_affine(img.affine, data.shape, shape)
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    nib.save(nib.Nifti1Image(resized.astype(np.float32), affine, header), path)
    return path, f"{COLIN.relative_to(ROOT)} {'x'.join(map(str, img.shape))}, resized with scipy (order 1)"


def ginr_case(model, device: torch.device, src: Path, dst: Path, scale: tuple[float, ...], batch: int):
    from ginr_cli.engine.upscale import Target, upscale_volume

    def run():
        with torch.inference_mode():
            upscale_volume(model, device, src, dst, Target(scale=scale), batch=batch)

    return run


def scipy_case(src: Path, dst: Path, scale: tuple[float, ...], order: int):
    from scipy.ndimage import zoom

    from ginr_cli.io.volumes import read_volume, write_volume

    def run():
        volume = read_volume(src)
        out = zoom(volume.data[0], scale, order=order, grid_mode=True, mode="nearest")
        write_volume(dst, out[None], volume)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--axis", type=int, default=2, help="the axis to double (0, 1 or 2)")
    parser.add_argument(
        "--model", help="ginr model folder, shipped name or preset (default: shipped 'volume')"
    )
    parser.add_argument("--order", type=int, default=3, help="scipy.ndimage.zoom spline order")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where ginr runs (scipy: the CPU)")
    parser.add_argument("--batch", type=int, default=8, help="ginr: tiles encoded and decoded together")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--plot", help="write a PNG bar chart of voxels/s (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    shape, repeats = (QUICK_SHAPE, 1) if args.quick else (SHAPE, args.repeats)
    scale = tuple(2.0 if i == args.axis else 1.0 for i in range(3))
    out_shape = [round(n * s) for n, s in zip(shape, scale, strict=True)]

    device = torch.device(args.device)
    model, which = ginr_model("volume", args.model)
    model = model.to(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, threads {threads}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src, origin = make_input(shape, folder, prefer_mni=not args.quick)
        cases = {
            "ginr": ginr_case(model, device, src, folder / "ginr.nii", scale, args.batch),
            f"scipy-zoom{args.order}": scipy_case(src, folder / "scipy.nii", scale, args.order),
        }
        seconds = side_by_side(cases, repeats)
    voxels = math.prod(out_shape)
    results = [
        dict(method=m, in_shape=list(shape), out_shape=out_shape, seconds=s, voxels_per_s=voxels / s)
        for m, s in seconds.items()
    ]

    print(
        f"reconstructing {'x'.join(map(str, shape))} -> {'x'.join(map(str, out_shape))}, "
        f"file to file (.nii), ginr on {where}"
    )
    print(f"source: {origin}")
    print(f"ginr model: {which}")
    print(f"{'method':>12} | {'time s':>8} | {'Mvoxels/s':>9} | vs scipy")
    scipy_row = results[-1]
    for r in results:
        print(
            f"{r['method']:>12} | {r['seconds']:>8.3f} | {r['voxels_per_s'] / 1e6:>9.3f} | "
            f"{r['voxels_per_s'] / scipy_row['voxels_per_s']:.2f}x"
        )

    def draw(plt):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.bar([r["method"] for r in results], [r["voxels_per_s"] / 1e6 for r in results])
        ax.set(ylabel="output Mvoxels/s", title=f"{'x'.join(map(str, shape))}, x2 along axis {args.axis}")
        return fig

    save_plot(args.plot, draw)
    if args.json:
        print(
            json.dumps(
                {"model": which, "source": origin, "device": where, "threads": threads, "results": results}
            )
        )


if __name__ == "__main__":
    main()
