"""The benchmark scripts stay runnable (tiny sizes: this checks they work, not how fast)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_encoder_prints_a_table_and_json():
    out = (
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "bench_encoder.py"),
                "--lengths",
                "40",
                "70",
                "--d-model",
                "16",
                "--depth",
                "1",
                "--repeats",
                "1",
                "--backend",
                "torch",
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        .stdout.strip()
        .splitlines()
    )
    results = json.loads(out[-1])["results"]
    assert {(r["mixer"], r["L"]) for r in results} == {
        (m, n) for m in ("mamba", "attention") for n in (40, 70)
    }
    assert all(r["fwd_s"] > 0 and r["peak_mb"] >= 0 for r in results)
    assert any(line.startswith("    70 |     mamba") for line in out)
