"""What the benchmark scripts share: the model to time, side-by-side timing, the matmul peak, plots.

Imported by the scripts next to it (`python scripts/bench_upscale.py` puts scripts/ on the path); not part
of the package.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

# What the engine is timed with when no shipped model is there: the presets the shipped models use.
FALLBACK_PRESETS = {"image": "tiny-2d", "volume": "tiny-3d"}


def ginr_model(kind: str, choice: str | None) -> tuple[torch.nn.Module, str]:
    """The model to time and a line saying which it is.

    `choice`: a model folder, a shipped model's name, or a preset name (random weights). None: the shipped
    model for `kind`, or, where that is not there yet, a freshly initialised preset of the same architecture
    (speed depends on the architecture, not on the weights).
    """
    from ginr_cli.errors import GinrError
    from ginr_cli.io.checkpoints import find_model, load_model
    from ginr_cli.nn.config import PRESETS
    from ginr_cli.nn.ginr import MambaGINR

    if choice in PRESETS:
        torch.manual_seed(0)
        return MambaGINR(PRESETS[choice]).eval(), f"preset {choice} (random weights)"
    try:
        folder = find_model(choice or kind)
    except GinrError as err:
        if choice is not None:
            raise SystemExit(f"--model {choice}: {err}") from err
        name = FALLBACK_PRESETS[kind]
        torch.manual_seed(0)
        return (
            MambaGINR(PRESETS[name]).eval(),
            f"preset {name} (random weights; no shipped '{kind}' model yet)",
        )
    model, fp = load_model(folder)
    return model, f"{model.cfg.name} from {folder} (fingerprint {fp})"


def side_by_side(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each case. One warm-up run each, then the cases take turns, so a change in the
    machine's load during the run touches all of them alike."""
    for run in cases.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_peak(n: int = 2048, repeats: int = 5, device: torch.device | str = "cpu") -> float:
    """The fp32 matmul rate of `device` in GFLOP/s (on the CPU at torch's current thread count): best of
    `repeats` (n, n) @ (n, n) products, 2 n^3 FLOPs each."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None
    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the CPU flash-attention kernel (FlopCounterMode has no entry for it): Q K^T and P V."""
    *batch, q, d = query
    m, dv = key[-2], value[-1]
    n = 1
    for size in batch:
        n *= size
    return 2 * n * q * m * d + 2 * n * q * m * dv


def flop_counter():
    """A FlopCounterMode that also counts the CPU attention kernel; matmul-class operations only
    (mm, addmm, bmm, convolution, attention); elementwise work and the custom scan are not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = sdpa_cpu_flops
    return FlopCounterMode(display=False, custom_mapping=mapping)


def save_plot(path: str | None, draw: Callable) -> None:
    """Call `draw(plt)` and save a PNG at `path`, if a path is given and matplotlib is importable."""
    if not path:
        return
    try:
        import matplotlib
    except ImportError:
        print(f"matplotlib is not installed: no plot written to {path}")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = draw(plt)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")
