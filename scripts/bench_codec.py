"""Benchmark: `ginr encode` and `ginr decode` of a 256^3 MRI on this machine, phase by phase.

The volume: ch2better (Colin27 T1 at 0.5 mm, 301x370x316 uint8, from Debian's mricron-data) centre-
cropped to 256^3; where it is missing, examples/volumes/colin27_2mm.nii.gz resized to 256^3. Encoding
is timed whole (read, encoder, refinement, LZMA, write) at each refinement setting asked for, decoding at
scale 1 whole (read, decode, write), file to file through the library the CLI calls.

    python scripts/bench_codec.py                       # the table
    python scripts/bench_codec.py --refine 0 5 30       # refinement steps to time
    python scripts/bench_codec.py --json                # last line: {"results": [...], ...}
    python scripts/bench_codec.py --quick               # 48^3: a smoke run, not a measurement
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CH2BETTER = Path("/usr/share/mricron/templates/ch2better.nii.gz")
COLIN = ROOT / "examples" / "volumes" / "colin27_2mm.nii.gz"


def make_input(side: int, folder: Path) -> tuple[Path, str]:
    """A .nii.gz of side^3 voxels and a line saying where it came from."""
    from scipy.ndimage import zoom

    path = folder / "mri.nii.gz"
    if CH2BETTER.is_file():
        img = nib.load(CH2BETTER)
        lo = [(n - side) // 2 for n in img.shape]
        crop = img.slicer[tuple(slice(o, o + side) for o in lo)]
        nib.save(nib.Nifti1Image(np.asarray(crop.dataobj), crop.affine, crop.header), path)
        return path, f"{CH2BETTER} {'x'.join(map(str, img.shape))}, centre crop"
    img = nib.load(COLIN)
    data = np.asarray(img.dataobj, np.float32)
    resized = zoom(data, [side / n for n in data.shape], order=1, grid_mode=True, mode="nearest")
    nib.save(nib.Nifti1Image(np.round(resized).astype(np.uint8), np.eye(4)), path)
    return path, f"{COLIN.relative_to(ROOT)}, resized with scipy (order 1)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="volume-codec")
    parser.add_argument("--refine", type=int, nargs="+", default=None, help="steps (default: encode's)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from ginr_cli.engine.codec import DEFAULT_REFINE, decode_file, encode_file
    from ginr_cli.io.checkpoints import find_model, load_model

    model, fp = load_model(find_model(args.model))
    side = 48 if args.quick else 256
    device = torch.device("cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src, origin = make_input(side, Path(tmp))
        voxels = side**3
        settings = args.refine if args.refine is not None else [DEFAULT_REFINE]
        for steps in settings:
            latent = Path(tmp) / f"r{steps}.safetensors"
            start = time.perf_counter()
            report = encode_file(model, fp, device, src, latent, "volume", refine=steps)
            encode_s = time.perf_counter() - start
            start = time.perf_counter()
            decode_file(model, fp, device, latent, Path(tmp) / "out.nii.gz", lambda source: source["shape"])
            decode_s = time.perf_counter() - start
            rows.append(
                {
                    "refine": steps,
                    "encode_s": round(encode_s, 1),
                    "decode_s": round(decode_s, 1),
                    "decode_mvox_s": round(voxels / decode_s / 1e6, 2),
                    "bits_per_voxel": round(report.bits_per_site, 4),
                }
            )
    print(f"{side}^3 voxels from {origin}; model {args.model}; {torch.get_num_threads()} threads")
    print(f"{'refine':>6} | {'encode s':>8} | {'decode s':>8} | {'decode Mvox/s':>13} | {'bits/voxel':>10}")
    for r in rows:
        print(
            f"{r['refine']:>6} | {r['encode_s']:>8} | {r['decode_s']:>8} | {r['decode_mvox_s']:>13} | "
            f"{r['bits_per_voxel']:>10}"
        )
    if args.json:
        meta = {"voxels": voxels, "source": origin, "model": args.model, "threads": torch.get_num_threads()}
        print(json.dumps({"results": rows, **meta}))


if __name__ == "__main__":
    main()
