"""Benchmark: the BiMamba encoder against the attention encoder at equal width and depth.

Forward time (inference mode) and peak memory for each sequence length, side by side in one run. Each
(mixer, L) runs in a fresh subprocess so its peak memory can be measured on its own: resident memory on
the CPU, allocated memory on a GPU (`--device cuda`, where attention's longest lengths run out of memory
and are reported as skipped).

    python scripts/bench_encoder.py                       # d=256, depth 6, batch 1, L = 256 ... 16384
    python scripts/bench_encoder.py --json                # last line: {"results": [...]}
    python scripts/bench_encoder.py --lengths 1024 4096 --backward --plot encoder.png
    python scripts/bench_encoder.py --device cuda --lengths 1024 4096 16384 65536
    python scripts/bench_encoder.py --lengths 1024 --expand 1 2   # shipped inner width d against Mamba's 2d

Mamba's inner width is `expand * d`. The default, 1, is what EncoderConfig and the shipped models use: a
BiMamba mixer then holds 1.7x the weights of an attention mixer of the same width (at 2, 3.3x).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def measure(
    mixer: str,
    length: int,
    d_model: int,
    depth: int,
    backend: str,
    backward: bool,
    repeats: int,
    device: str,
    expand: int | None = None,
) -> dict:
    """Runs in the child process: build, warm up, time, and report the peak memory added by the forward."""
    import torch

    from ginr_cli.nn.config import EncoderConfig
    from ginr_cli.nn.encoder import Encoder
    from ginr_cli.nn.scan import resolve_backend

    torch.manual_seed(0)
    widths = {} if expand is None else {"expand": expand}
    cfg = EncoderConfig(d_model=d_model, n_layers=depth, mixer=mixer, scan_backend=backend, **widths)
    encoder = Encoder(cfg).to(device)
    x = torch.randn(1, length, d_model, device=device)
    used = resolve_backend(backend, x.device) if mixer == "mamba" else "sdpa"
    cuda = x.device.type == "cuda"

    def step() -> None:
        if backward:
            encoder(x.requires_grad_()).sum().backward()
        else:
            with torch.inference_mode():
                encoder(x)
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        base_kb = torch.cuda.memory_allocated() / 1024
        torch.cuda.reset_peak_memory_stats()
    else:
        base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(repeats + 1):  # the first run warms up (and compiles the GPU kernels)
        start = time.perf_counter()
        step()
        if i:
            times.append(time.perf_counter() - start)
    if cuda:
        peak_kb = torch.cuda.max_memory_allocated() / 1024
    else:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mixer": mixer,
        "L": length,
        "backend": used,
        "device": str(x.device),
        "expand": cfg.expand if mixer == "mamba" else None,
        "params": sum(p.numel() for p in encoder.parameters()),
        "fwd_s" if not backward else "fwd_bwd_s": statistics.median(times),
        "peak_mb": max(peak_kb - base_kb, 0) / 1024,
    }


def run_child(args: argparse.Namespace, mixer: str, expand: int | None, length: int) -> dict | None:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mixer,
        str(length),
        "--d-model",
        str(args.d_model),
        "--depth",
        str(args.depth),
        "--backend",
        args.backend,
        "--repeats",
        str(args.repeats),
        "--device",
        args.device,
    ]
    if expand is not None:
        cmd += ["--expand", str(expand)]
    if args.backward:
        cmd.append("--backward")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as err:  # out of memory, most likely
        print(f"{mixer} L={length} failed: {err.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--mixers", nargs="+", default=["mamba", "attention"])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--backend", default="auto", help="scan backend for the Mamba encoder")
    parser.add_argument(
        "--expand",
        type=int,
        nargs="+",
        help="Mamba's inner width over d, one Mamba row per value (default: EncoderConfig's, as shipped)",
    )
    parser.add_argument("--backward", action="store_true", help="time forward + backward instead")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU benchmark")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per child process")
    parser.add_argument("--rounds", type=int, default=3, help="child processes per (mixer, L), taking turns")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds per (mixer, L) before it is skipped"
    )
    parser.add_argument("--plot", help="write a PNG plot of time against L (needs matplotlib)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        mixer, length = args.child[0], int(args.child[1])
        print(
            json.dumps(
                measure(
                    mixer,
                    length,
                    args.d_model,
                    args.depth,
                    args.backend,
                    args.backward,
                    args.repeats,
                    args.device,
                    args.expand[0] if args.expand else None,
                )
            )
        )
        return

    key = "fwd_bwd_s" if args.backward else "fwd_s"
    from ginr_cli.nn.config import EncoderConfig

    expands = args.expand or [EncoderConfig().expand]
    # One row per (mixer, expand): each Mamba inner width, and attention (which has none).
    variants = [(mixer, e) for mixer in args.mixers for e in (expands if mixer == "mamba" else [None])]

    def label(mixer: str, expand: int | None) -> str:
        return f"{mixer} x{expand}" if expand is not None and len(expands) > 1 else mixer

    # Rounds take turns over every (L, variant), so a slow spell of this shared machine hits every row
    # alike; each cell reports the median over rounds, and the speed-up its spread over rounds.
    runs: dict[tuple[str, int | None, int], list[dict]] = {}
    skipped: list[str] = []
    for _ in range(args.rounds):
        for length in args.lengths:
            for mixer, expand in variants:
                name = f"{label(mixer, expand)} L={length}"
                if name in skipped:
                    continue
                row = run_child(args, mixer, expand, length)
                if row:
                    runs.setdefault((mixer, expand, length), []).append(row)
                else:
                    skipped.append(name)
    results = []
    for (mixer, expand, length), rows in runs.items():
        if f"{label(mixer, expand)} L={length}" in skipped:
            continue
        times = [r[key] for r in rows]
        results.append(
            {
                **rows[0],
                key: statistics.median(times),
                "rounds_s": times,
                "peak_mb": max(r["peak_mb"] for r in rows),
            }
        )

    print(
        f"encoder d={args.d_model} depth={args.depth} batch=1 on {args.device}, "
        f"{'forward+backward' if args.backward else 'forward'}, Mamba expand {', '.join(map(str, expands))}"
    )
    print(f"{args.rounds} rounds; time: the median over rounds; speed-up: of the medians (range over rounds)")
    print(
        f"{'L':>6} | {'mixer':>11} | {'backend':>7} | {'params M':>8} | {'time s':>8} | {'peak MB':>8} | "
        "mamba speed-up"
    )
    attention = {r["L"]: r for r in results if r["mixer"] == "attention"}
    for r in results:
        other = attention.get(r["L"])
        ratio = ""
        if r["mixer"] == "mamba" and other:
            per_round = [a / m for a, m in zip(other["rounds_s"], r["rounds_s"], strict=False)]
            ratio = f"{other[key] / r[key]:.2f}x ({min(per_round):.2f}-{max(per_round):.2f})"
        print(
            f"{r['L']:>6} | {label(r['mixer'], r['expand']):>11} | {r['backend']:>7} | "
            f"{r['params'] / 1e6:>8.2f} | {r[key]:>8.3f} | "
            f"{r['peak_mb']:>8.1f} | {ratio}"
        )
    for name in skipped:
        print(f"skipped (did not finish in {args.timeout:.0f} s or failed): {name}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        for mixer, expand in variants:
            rows = [r for r in results if (r["mixer"], r["expand"]) == (mixer, expand)]
            ax.loglog([r["L"] for r in rows], [r[key] for r in rows], "o-", label=label(mixer, expand))
        ax.set(
            xlabel="sequence length L",
            ylabel=f"{key} (s)",
            title=f"encoder d={args.d_model} depth={args.depth}",
        )
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    if args.json:
        print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
