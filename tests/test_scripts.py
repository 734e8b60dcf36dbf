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
                "--rounds",
                "2",
                "--backend",
                "torch",
                "--expand",
                "1",
                "2",
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
    assert {(r["mixer"], r["expand"], r["L"]) for r in results} == {
        (m, e, n) for m, e in (("mamba", 1), ("mamba", 2), ("attention", None)) for n in (40, 70)
    }
    assert all(r["fwd_s"] > 0 and r["peak_mb"] >= 0 and len(r["rounds_s"]) == 2 for r in results)
    params = {(r["mixer"], r["expand"]): r["params"] for r in results}
    assert params["mamba", 1] < params["mamba", 2]  # the child built the width it was asked for
    assert any(line.startswith("    70 |    mamba x2 |") for line in out)


def run_script(name: str, *args: str) -> tuple[list[str], dict]:
    """Run scripts/<name> at --quick sizes with --json: its printed lines and the JSON of the last one."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), "--quick", "--json", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.strip()
    lines = out.splitlines()
    return lines, json.loads(lines[-1])


def test_liif_peer_times_both_scales():
    lines, data = run_script("liif_peer.py")
    assert [r["scale"] for r in data["results"]] == [2, 4]
    for r in data["results"]:
        assert r["out_shape"] == [n * r["scale"] for n in r["in_shape"]]
        assert min(r["seconds"], r["mp_per_s"], r["gflop"], r["gflops"]) > 0
    assert data["params"] > 1_000_000  # EDSR-baseline (~1.2 M) + the MLP


def test_liif_peer_upscale_is_chunk_independent():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import torch
        from liif_peer import LIIF, liif_upscale
    finally:
        sys.path.pop(0)
    torch.manual_seed(0)
    model = LIIF(blocks=1).eval()
    x = torch.rand(1, 3, 6, 5)
    whole = liif_upscale(model, x, (13, 11), chunk=10_000)
    assert whole.shape == (1, 3, 13, 11)
    torch.testing.assert_close(liif_upscale(model, x, (13, 11), chunk=7), whole)


def test_bench_upscale_compares_three_methods(tmp_path):
    lines, data = run_script("bench_upscale.py", "--plot", str(tmp_path / "up.png"))
    assert {(r["method"], r["scale"]) for r in data["results"]} == {
        (m, s) for m in ("ginr", "pil-bicubic", "liif-peer") for s in (2, 4)
    }
    assert all(r["seconds"] > 0 and r["mp_per_s"] > 0 for r in data["results"])
    ginr = [r for r in data["results"] if r["method"] == "ginr"]
    assert all(r["gflop"] > 0 and 0 < r["gflops"] and r["peak_fraction"] > 0 for r in ginr)
    assert data["matmul_peak_gflops"] > 0 and data["threads"] >= 1
    assert any(line.startswith("    4 |        ginr |") for line in lines)


def test_bench_volume_compares_with_scipy():
    lines, data = run_script("bench_volume.py")
    assert [r["method"] for r in data["results"]] == ["ginr", "scipy-zoom3"]
    for r in data["results"]:
        assert r["out_shape"] == [r["in_shape"][0], r["in_shape"][1], 2 * r["in_shape"][2]]
        assert r["seconds"] > 0 and r["voxels_per_s"] > 0
    assert data["model"] and data["source"]


def test_bench_help_times_the_cli_and_python():
    lines, data = run_script("bench_help.py")
    commands = [r["command"] for r in data["results"]]
    assert commands[:2] == ["python -c pass", "python -m ginr_cli --help"]
    assert all(r["median_s"] > 0 and r["min_s"] > 0 and r["runs"] == 3 for r in data["results"])


def test_bench_workspace_prints_a_table_and_json():
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_workspace.py"),
            "--lengths",
            "40",
            "--d-model",
            "16",
            "--depth",
            "2",
            "--rounds",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.splitlines()
    (row,) = json.loads(out[-1])["results"]
    assert row["L"] == 40 and row["workspace_s"] > 0 and row["none_s"] > 0
    assert len(row["rounds_s"]["workspace"]) == 2
    assert any(line.startswith("    40 |") for line in out)


def test_gpu_smoke_trains_both_local_presets_and_writes_the_attention_fallbacks(tmp_path):
    script = str(ROOT / "scripts" / "gpu_smoke.py")
    run = subprocess.run([sys.executable, script, "cpu"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "local-2d trains on cpu" in run.stdout and "local-3d trains on cpu" in run.stdout
    subprocess.run(
        [sys.executable, script, "cpu", "--attention-configs", str(tmp_path)], check=True, timeout=300
    )
    from ginr_cli.nn.config import GINRConfig
    from ginr_cli.nn.ginr import MambaGINR

    for name in ("local-2d", "local-3d"):
        cfg = GINRConfig.from_dict(json.loads((tmp_path / f"{name}-attention.json").read_text()))
        assert cfg.encoder.mixer == "attention" and cfg.tokenizer.pos_embed == "fourier"
        assert MambaGINR(cfg).reader is not None  # the same architecture, local features and all
