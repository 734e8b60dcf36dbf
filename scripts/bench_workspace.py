"""Benchmark: the Mamba encoder at inference with and without its workspace (`ginr_cli/nn/workspace.py`).

One process, one encoder; the two modes take turns, so a slow spell of the machine hits both alike. Without
the workspace every block allocates its big intermediates afresh, and its MLP runs over the whole sequence
at once into fresh hidden tensors (as in training).

    python scripts/bench_workspace.py                      # d=256, depth 6, batch 1, L = 4096 and 16384
    python scripts/bench_workspace.py --json               # last line: {"results": [...]}
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import ginr_cli.nn.encoder as encoder_module
from ginr_cli.nn.config import EncoderConfig
from ginr_cli.nn.encoder import Encoder


def no_workspace():  # stands in for the Workspace class: the blocks get None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = Encoder(EncoderConfig(d_model=args.d_model, n_layers=args.depth))
    modes = {"workspace": encoder_module.Workspace, "none": no_workspace}
    results = []
    print(f"encoder d={args.d_model} depth={args.depth} batch=1, forward, {args.rounds} rounds taking turns")
    print(f"{'L':>6} | {'workspace s':>11} | {'none s':>8} | speed-up")
    for length in args.lengths:
        x = torch.randn(1, length, args.d_model)
        times: dict[str, list[float]] = {name: [] for name in modes}
        with torch.inference_mode():
            model(x)  # warm-up
            for _ in range(args.rounds):
                for name, factory in modes.items():
                    encoder_module.Workspace = factory
                    start = time.perf_counter()
                    model(x)
                    times[name].append(time.perf_counter() - start)
        encoder_module.Workspace = modes["workspace"]
        med = {name: statistics.median(t) for name, t in times.items()}
        results.append({"L": length, **{f"{name}_s": med[name] for name in modes}, "rounds_s": times})
        ratio = med["none"] / med["workspace"]
        print(f"{length:>6} | {med['workspace']:>11.3f} | {med['none']:>8.3f} | {ratio:.2f}x")
    if args.json:
        print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
