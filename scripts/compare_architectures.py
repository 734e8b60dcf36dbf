"""Side by side: the decoder with and without learned local features, and Mamba against attention as the
encoder that mixes the local tokens. Same data, same steps, same seed; one table.

    python scripts/compare_architectures.py                        # 250 steps each, Set5 and Set14
    python scripts/compare_architectures.py --steps 1000 --batch 16
    python scripts/compare_architectures.py --quick                # a smoke run, not a measurement

Variants: `tiny-2d` (the decoder sees the input only as a raw 4x4 neighbourhood plus 32 LP latents per
tile), `local-2d` (a conv stem, one token per pixel, each query reading the encoder's outputs around it),
and `local-2d` with an attention mixer (a Fourier position encoding added, since attention is blind to
order). Each is trained with `ginr train` on data/wallpapers/train and data/photos/train
(scripts/prepare_data.py), then scored with `ginr eval` (Y-PSNR, shave = scale). The last line with --json
holds every row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT.parent / "shared" / "data" / "sr-benchmarks"
TRAIN = (ROOT / "data" / "wallpapers" / "train", ROOT / "data" / "photos" / "train")


def variants() -> dict[str, dict]:
    from ginr_cli.nn.config import TokenizerConfig, preset

    local = preset("local-2d")
    attention = local.replace(
        name="local-2d-attention",
        encoder=dataclasses.replace(local.encoder, mixer="attention"),
        tokenizer=TokenizerConfig(patch_size=1, pos_embed="fourier"),
    )
    return {
        "no local features (tiny-2d)": preset("tiny-2d").to_dict(),
        "local features, Mamba (local-2d)": local.to_dict(),
        "local features, attention": attention.to_dict(),
    }


def training_folder(folder: Path) -> Path:
    """One folder of links to every training picture (`ginr train` takes one folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in TRAIN:
        for path in sorted(source.iterdir()):
            link = folder / f"{source.parent.name}-{path.name}"
            if not link.exists():
                link.symlink_to(path.resolve())
    return folder


def ginr(*args: str) -> str:
    cmd = [sys.executable, "-m", "ginr_cli", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "compare")
    parser.add_argument("--quick", action="store_true", help="a few steps on Set5 at x2: a smoke run")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.batch, args.queries, args.sets, args.scales = 2, 2, 64, ["Set5"], "2"
    data = training_folder(args.out / "data")
    rows = []
    for index, (label, config) in enumerate(variants().items()):
        run = args.out / f"variant{index}"
        config_file = args.out / f"variant{index}.json"
        config_file.write_text(json.dumps(config, indent=1))
        started = time.perf_counter()
        # The shipped recipe's options (scripts/train_image.sh) at these steps.
        ginr(
            "train", "--data", str(data), "--out", str(run), "--kind", "image", "--model", str(config_file),
            "--steps", str(args.steps), "--batch", str(args.batch), "--queries", str(args.queries),
            "--lr", "5e-4", "--warmup", str(min(200, args.steps // 5)), "--base-prob", "0.9",
            "--checkpoint-every", str(args.steps), "--validate-every", str(args.steps), "-q",
        )  # fmt: skip
        train_s = time.perf_counter() - started
        from ginr_cli.io.checkpoints import load_model

        params = sum(p.numel() for p in load_model(run / "model")[0].parameters())
        for name in args.sets:
            out = ginr(
                "eval",
                str(BENCHMARKS / name),
                "--scales",
                args.scales,
                "--model",
                str(run / "model"),
                "--json",
            )
            for r in json.loads(out.strip().splitlines()[-1])["averages"]:
                if r["method"] in ("bicubic", "ginr"):
                    rows.append(
                        dict(variant=label, params=params, train_s=round(train_s, 1), data=name,
                             scale=r["scale"], method=r["method"], psnr=r["psnr"], ssim=r["ssim"])
                    )  # fmt: skip
        print(f"{label}: {params:,} parameters, {train_s:.0f} s for {args.steps} steps", file=sys.stderr)

    print(f"{args.steps} steps of batch {args.batch}, {args.queries} queries a sample; Y-PSNR dB / SSIM")
    keys = sorted({(r["data"], r["scale"]) for r in rows}, key=lambda k: (args.sets.index(k[0]), k[1]))
    print("| variant | parameters | train s | " + " | ".join(f"{d} x{s:g}" for d, s in keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    by = {(r["variant"], r["data"], r["scale"], r["method"]): r for r in rows}
    first = next(iter(variants()))
    bicubic = [by[first, d, s, "bicubic"]["psnr"] for d, s in keys]
    print("| bicubic | | | " + " | ".join(f"{p:.2f}" for p in bicubic) + " |")
    for label in variants():
        cells = [by[label, d, s, "ginr"] for d, s in keys]
        head = f"| {label} | {cells[0]['params']:,} | {cells[0]['train_s']:.0f} | "
        print(head + " | ".join(f"{c['psnr']:.2f} / {c['ssim']:.4f}" for c in cells) + " |")
    if args.json:
        print(json.dumps({"steps": args.steps, "batch": args.batch, "queries": args.queries, "rows": rows}))


if __name__ == "__main__":
    main()
