"""Benchmark: the wall time of `ginr --help`, with `python -c pass` for reference.

Each command runs --runs times as a fresh subprocess (after one unmeasured run, so the files are in the
page cache); the table shows the median and the fastest. `ginr` is the installed console script when it
is on PATH; `python -m ginr_cli --help` is timed too, as it needs no script.

    python scripts/bench_help.py                  # the table
    python scripts/bench_help.py --runs 21 --json # last line: {"results": [...]}
    python scripts/bench_help.py --quick          # 3 runs: a smoke run, not a measurement
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

from benchlib import save_plot


def wall_times(cmd: list[str], runs: int) -> list[float]:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="3 runs: a smoke run, not a measurement")
    parser.add_argument("--plot", help="write a PNG bar chart of the medians (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs

    commands = {"python -c pass": [sys.executable, "-c", "pass"]}
    commands["python -m ginr_cli --help"] = [sys.executable, "-m", "ginr_cli", "--help"]
    script = shutil.which("ginr")
    if script:
        commands["ginr --help"] = [script, "--help"]
    else:
        print("no `ginr` on PATH: timing `python -m ginr_cli --help` only")
    results = []
    for name, cmd in commands.items():
        times = wall_times(cmd, runs)
        results.append(dict(command=name, median_s=statistics.median(times), min_s=min(times), runs=runs))

    print(f"wall time of a fresh process, {runs} runs each ({sys.executable})")
    print(f"{'command':>26} | {'median s':>8} | {'min s':>6} | over python -c pass")
    base = results[0]["median_s"]
    for r in results:
        print(
            f"{r['command']:>26} | {r['median_s']:>8.3f} | {r['min_s']:>6.3f} | {r['median_s'] - base:+.3f} s"
        )

    def draw(plt):
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.barh([r["command"] for r in results], [r["median_s"] for r in results])
        ax.set(xlabel="median wall time (s)", title="start-up time")
        return fig

    save_plot(args.plot, draw)
    if args.json:
        print(json.dumps({"python": sys.executable, "results": results}))


if __name__ == "__main__":
    main()
