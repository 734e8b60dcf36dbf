"""Benchmark: upscaling a 512x512 photo by 2 and by 4, ginr against PIL bicubic and a LIIF-style peer.

Output megapixels per second, side by side in one run (the methods take turns, see `benchlib`), each
file to file: read the photo, upscale, write the result in the same uncompressed format (BMP by default,
so that a compressor's time does not hide the upscaler's). ginr runs through `engine.upscale.upscale_image`,
the function `ginr upscale` calls, in fp32 under inference mode; the peer is `liif_peer.py` (random
weights: speed does not depend on them). ginr's achieved GFLOP/s is its matmul-class FLOPs (counted
with FlopCounterMode over one extra run) over its time, against this machine's fp32 matmul peak
(a 2048^2 torch.mm at the same thread count).

The photo is examples/images/cups.jpg, resized to 512 rows and centre-cropped to 512x512.

    python scripts/bench_upscale.py                         # the table
    python scripts/bench_upscale.py --json --plot up.png    # last line: {"results": [...], ...}
    python scripts/bench_upscale.py --model image           # a model folder, shipped name or preset
    python scripts/bench_upscale.py --quick                 # tiny sizes: a smoke run, not a measurement
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from benchlib import flop_counter, ginr_model, matmul_peak, save_plot, side_by_side
from liif_peer import LIIF, liif_upscale
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "images" / "cups.jpg"


def make_input(size: int, folder: Path) -> Path:
    """The photo resized to `size` rows (Lanczos) and centre-cropped to size x size, as a PNG."""
    with Image.open(PHOTO) as im:
        im = im.convert("RGB")
        w, h = im.size
        im = im.resize((max(size, round(w * size / h)), size), Image.LANCZOS)
        left = (im.width - size) // 2
        path = folder / f"photo_{size}.png"
        im.crop((left, 0, left + size, size)).save(path)
    return path


def ginr_case(model, device: torch.device, src: Path, dst: Path, scale: int, batch: int):
    from ginr_cli.engine.upscale import Target, upscale_image

    def run():
        with torch.inference_mode():
            upscale_image(model, device, src, dst, Target(scale=(float(scale),)), batch=batch)

    return run


def pil_case(src: Path, dst: Path, scale: int):
    def run():
        with Image.open(src) as im:
            im = im.convert("RGB")
            im.resize((im.width * scale, im.height * scale), Image.BICUBIC).save(dst)

    return run


def liif_case(model: LIIF, device: torch.device, src: Path, dst: Path, scale: int, chunk: int):
    def run():
        with Image.open(src) as im:
            x = torch.from_numpy(np.asarray(im.convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]
        h, w = x.shape[2:]
        y = liif_upscale(model, x.to(device), (h * scale, w * scale), chunk)  # (1, 3, H, W)
        rgb = (y[0].permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        Image.fromarray(rgb).save(dst)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=512, help="input side")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument(
        "--model", help="ginr model folder, shipped name or preset (default: shipped 'image')"
    )
    parser.add_argument("--methods", nargs="+", default=["ginr", "pil-bicubic", "liif-peer"])
    parser.add_argument("--ext", default="bmp", help="output format of every method (bmp: uncompressed)")
    parser.add_argument("--chunk", type=int, default=30000, help="LIIF peer: query points decoded at once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where ginr and the peer run")
    parser.add_argument("--batch", type=int, default=8, help="ginr: tiles encoded and decoded together")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--plot", help="write a PNG bar chart of output MP/s (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = parser.parse_args()
    if args.quick:
        args.size, args.repeats = 24, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    device = torch.device(args.device)
    model, which = ginr_model("image", args.model)
    model = model.to(device)
    torch.manual_seed(0)
    peer = LIIF().eval().to(device)
    peak_n = 512 if args.quick else 2048
    peak = matmul_peak(peak_n, device=device)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src = make_input(args.size, folder)
        for scale in args.scales:
            cases = {}
            for method in args.methods:
                dst = folder / f"{method}_x{scale}.{args.ext}"
                if method == "ginr":
                    cases[method] = ginr_case(model, device, src, dst, scale, args.batch)
                elif method == "pil-bicubic":
                    cases[method] = pil_case(src, dst, scale)
                elif method == "liif-peer":
                    cases[method] = liif_case(peer, device, src, dst, scale, args.chunk)
                else:
                    raise SystemExit(f"unknown method {method!r}: ginr, pil-bicubic or liif-peer")
            seconds = side_by_side(cases, args.repeats)
            out_mp = (args.size * scale) ** 2 / 1e6
            for method, s in seconds.items():
                row = dict(method=method, scale=scale, size=args.size, seconds=s, mp_per_s=out_mp / s)
                if method == "ginr":
                    with flop_counter() as counter:
                        cases["ginr"]()
                    row["gflop"] = counter.get_total_flops() / 1e9
                    row["gflops"] = row["gflop"] / s
                    row["peak_fraction"] = row["gflops"] / peak
                results.append(row)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, threads {threads}"
    print(f"upscaling a {args.size}x{args.size} photo, file to file (.{args.ext}), {where}")
    print(f"ginr model: {which}")
    print(f"fp32 matmul peak ({peak_n}^2 torch.mm on {device.type}): {peak:.1f} GFLOP/s")
    print(
        f"{'scale':>5} | {'method':>11} | {'time s':>8} | {'out MP/s':>8} | {'vs peer':>7} | "
        "ginr GFLOP/s (of peak)"
    )
    by = {(r["method"], r["scale"]): r for r in results}
    for r in results:
        peer_row = by.get(("liif-peer", r["scale"]))
        ratio = f"{r['mp_per_s'] / peer_row['mp_per_s']:.2f}x" if peer_row else ""
        flops = f"{r['gflops']:.1f} ({100 * r['peak_fraction']:.0f}%)" if "gflops" in r else ""
        print(
            f"{r['scale']:>5} | {r['method']:>11} | {r['seconds']:>8.3f} | {r['mp_per_s']:>8.3f} | "
            f"{ratio:>7} | {flops}"
        )

    def draw(plt):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        width = 0.8 / len(args.methods)
        for i, method in enumerate(args.methods):
            ax.bar(
                [j + i * width for j in range(len(args.scales))],
                [by[(method, s)]["mp_per_s"] for s in args.scales],
                width,
                label=method,
            )
        ax.set_xticks([j + width * (len(args.methods) - 1) / 2 for j in range(len(args.scales))])
        ax.set_xticklabels([f"x{s}" for s in args.scales])
        ax.set(
            ylabel="output MP/s", yscale="log", title=f"upscaling {args.size}x{args.size}, {threads} threads"
        )
        ax.legend()
        return fig

    save_plot(args.plot, draw)
    if args.json:
        print(
            json.dumps(
                {
                    "model": which,
                    "device": where,
                    "threads": threads,
                    "batch": args.batch,
                    "matmul_peak_gflops": peak,
                    "results": results,
                }
            )
        )


if __name__ == "__main__":
    main()
