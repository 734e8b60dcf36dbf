"""Time the CPU selective-scan backends side by side: pure PyTorch ("torch") and the compiled loop ("cpp").

    PYTHONPATH=. python scripts/bench_scan.py                # a table
    PYTHONPATH=. python scripts/bench_scan.py --json         # the table, then a last line {"results": [...]}
    PYTHONPATH=. python scripts/bench_scan.py --fresh-build  # time a cold build (in a temporary folder)

Shapes are one Mamba layer's scan at inference: b=1, e=512, s=16, float32, with D, z, delta_bias and
softplus as the model calls it. "fwd" runs without autograd (the inference path), "fwd+bwd" takes the
gradients of every input. Each time is the median of --repeats runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

from ginr_cli.nn import scan_cpu
from ginr_cli.nn.scan import selective_scan


def make_inputs(b: int, e: int, s: int, l: int, grad: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = dict(
        u=torch.randn(b, e, l, generator=g),
        delta=torch.randn(b, e, l, generator=g) * 0.5,
        A=-torch.rand(e, s, generator=g) * 3 - 0.1,
        B=torch.randn(b, s, l, generator=g),
        C=torch.randn(b, s, l, generator=g),
        D=torch.randn(e, generator=g),
        z=torch.randn(b, e, l, generator=g),
        delta_bias=torch.randn(e, generator=g) * 0.3,
    )
    return {k: v.requires_grad_(grad) for k, v in x.items()}


def time_once(backend: str, inputs: dict[str, torch.Tensor], grad: bool) -> float:
    start = time.perf_counter()
    if grad:
        y = selective_scan(**inputs, delta_softplus=True, backend=backend)
        torch.autograd.grad(y.sum(), list(inputs.values()))
    else:
        with torch.no_grad():
            selective_scan(**inputs, delta_softplus=True, backend=backend)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--e", type=int, default=512)
    parser.add_argument("--s", type=int, default=16)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--long", type=int, default=16384, help="extra length, forward without grad only")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    parser.add_argument("--fresh-build", action="store_true", help="build in an empty folder, to time it")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as fresh:
        if args.fresh_build:  # torch's extension builder reads this folder; the loaded library stays loaded
            os.environ["TORCH_EXTENSIONS_DIR"] = fresh
        start = time.perf_counter()
        ok = scan_cpu.ready()
        ready_s = time.perf_counter() - start
        if args.fresh_build:
            del os.environ["TORCH_EXTENSIONS_DIR"]
    if not ok:
        raise SystemExit("the compiled scan could not be built: nothing to compare")
    how = "built from scratch" if args.fresh_build else "ready (a build the first time, a cached load after)"
    print(f"cpp extension {how} in {ready_s:.2f} s; torch threads {torch.get_num_threads()}")

    cases = [(l, grad) for l in args.lengths for grad in (False, True)] + [(args.long, False)]
    results = []
    print(f"{'l':>6} {'mode':>8} {'torch ms':>10} {'cpp ms':>9} {'speed-up':>9}")
    for l, grad in cases:
        inputs = make_inputs(1, args.e, args.s, l, grad)
        ms = {}
        for backend in ("torch", "cpp"):
            time_once(backend, inputs, grad)  # warm-up
            ms[backend] = 1e3 * statistics.median(
                time_once(backend, inputs, grad) for _ in range(args.repeats)
            )
        mode = "fwd+bwd" if grad else "fwd"
        ratio = ms["torch"] / ms["cpp"]
        print(f"{l:>6} {mode:>8} {ms['torch']:>10.1f} {ms['cpp']:>9.1f} {ratio:>8.1f}x")
        results.append(
            dict(
                b=1,
                e=args.e,
                s=args.s,
                l=l,
                mode=mode,
                torch_ms=round(ms["torch"], 2),
                cpp_ms=round(ms["cpp"], 2),
                speedup=round(ratio, 2),
            )
        )
    if args.json:
        print(
            json.dumps(
                {
                    "fresh_build": args.fresh_build,
                    "ready_s": round(ready_s, 2),
                    "threads": torch.get_num_threads(),
                    "results": results,
                }
            )
        )


if __name__ == "__main__":
    main()
