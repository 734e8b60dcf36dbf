"""The selective scan as a fused C++ loop for the CPU, forward and backward (the "cpp" backend of scan.py).

The C++ sources (`csrc/selective_scan_cpu.cpp`, and `csrc/conv_silu_cpu.cpp` for conv_cpu.py) are compiled
as one extension at first use with torch's extension builder and cached in torch's extension folder
(`$TORCH_EXTENSIONS_DIR`, by default `~/.cache/torch_extensions`), so later processes only load it. Where
it cannot be built, `ready()` warns once and scan.py keeps to the pure-PyTorch scan.

Here the inputs are brought to one compute dtype (float32 or float64), made contiguous, and A, B, C put in
the kernel's layout: B and C grouped (b, g, l, p), the state dimension last and padded with zeros to a
multiple of 16, so it is one contiguous, fixed-width vector per time step. These steps are plain torch ops
outside the autograd Function, so autograd carries the gradients back through them to the caller's dtypes
and layouts.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)

CSRC = Path(__file__).with_name("csrc")
SOURCES = [
    CSRC / "selective_scan_cpu.cpp",
    CSRC / "conv_silu_cpu.cpp",
]  # one extension; conv_cpu.py uses the second
EXTENSION = "ginr_selective_scan_cpu"
# Portable flags only: the cached build may move to another machine, so no -march=native, and no
# -ffast-math (it changes exp and NaN handling). -fno-trapping-math changes no value: it only lets the
# compiler turn the selects in the exp/softplus code into vector blends. -fopenmp makes at::parallel_for
# run on torch's OpenMP threads (it links the libgomp torch already loaded).
CFLAGS = ["-O3", "-fno-trapping-math", "-fopenmp"]
LDFLAGS = ["-fopenmp"]
STATE_LANES = 16  # the kernel's state width: one cache line of float32
# torch's builder marks a build in progress with a lock file in the build folder, which other processes wait
# for without end. A build killed midway (a scheduler's SIGTERM, a power cut) leaves it behind, and every
# later process would hang, idle. A build takes about a minute: a lock this old is taken for stale.
STALE_LOCK_S = 300.0

_lock = threading.Lock()
_ready: bool | None = None


def can_build() -> bool:
    """A C++ compiler and ninja are present (cheap: nothing is compiled)."""
    from torch.utils.cpp_extension import is_ninja_available

    compiler = os.environ.get("CXX", "c++").split()[0]
    return all(s.is_file() for s in SOURCES) and shutil.which(compiler) is not None and is_ninja_available()


def ready() -> bool:
    """Load the compiled scan, building it on the first call in this process; False (with one warning) if
    it cannot be built."""
    global _ready
    with _lock:
        if _ready is None:
            _ready = _load()
        return _ready


def _load() -> bool:
    if not can_build():
        warnings.warn(
            "the compiled CPU scan is unavailable (no C++ compiler or ninja found); using the pure-PyTorch "
            "scan instead",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    from torch.utils.cpp_extension import load

    start = time.perf_counter()
    try:
        _prepare_build()
        load(
            name=EXTENSION,
            sources=[str(s) for s in SOURCES],
            extra_cflags=CFLAGS,
            extra_ldflags=LDFLAGS,
            is_python_module=False,
            verbose=False,
        )
    except Exception as err:  # compiler errors, a missing header, a broken toolchain
        log.debug("building %s failed", EXTENSION, exc_info=True)
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        reason = next((line for line in lines if "error:" in line), lines[0])  # the compiler's first error
        warnings.warn(
            f"the compiled CPU scan is unavailable ({reason}); using the pure-PyTorch scan instead",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    log.info("loaded the compiled CPU scan in %.1f s", time.perf_counter() - start)
    return True


def _prepare_build() -> None:
    """Before torch's builder runs: wait for (or clear) a build lock, and say when a build is coming, else the
    first run pauses silently for a minute. Both need the build folder, which only a private torch function
    names: without it, the builder runs as it is."""
    try:
        from torch.utils.cpp_extension import _get_build_directory
    except ImportError:
        return
    folder = Path(_get_build_directory(EXTENSION, verbose=False))
    wait_for_build_lock(folder / "lock")
    if needs_build(folder):
        log.warning("compiling ginr's CPU kernels, once (about a minute; cached in %s)", folder)


def needs_build(folder: Path) -> bool:
    """Whether loading from the build folder will compile: no library there, or a source newer than it
    (ninja's rule, headers included)."""
    built = folder / f"{EXTENSION}.so"
    if not built.is_file():
        return True
    return any(source.stat().st_mtime > built.stat().st_mtime for source in CSRC.iterdir())


def wait_for_build_lock(lock: Path, stale_s: float = STALE_LOCK_S, poll_s: float = 0.5) -> None:
    """Wait while another process builds the extension (its lock file exists), until the lock is `stale_s`
    old; then remove it, with a warning, so that this process builds instead of hanging."""
    warned = False
    while True:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return
        if age >= stale_s:
            message = f"removing {lock}, left by an interrupted build of ginr's CPU kernels"
            warnings.warn(message, RuntimeWarning, stacklevel=5)  # at the caller of ready()
            lock.unlink(missing_ok=True)
            return
        if not warned:
            log.warning("waiting for another process compiling ginr's CPU kernels (%s)", lock)
            warned = True
        time.sleep(poll_s)


class _SelectiveScanCpu(torch.autograd.Function):
    """The fused forward and backward on kernel-layout inputs (see the module docstring)."""

    @staticmethod
    def forward(ctx, u, delta, A, Bt, Ct, D, z, delta_bias, delta_softplus, reverse):
        ctx.save_for_backward(u, delta, A, Bt, Ct, D, z, delta_bias)  # references only: no states kept
        ctx.options = (delta_softplus, reverse)
        return torch.ops.ginr_scan.forward(u, delta, A, Bt, Ct, D, z, delta_bias, *ctx.options)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        u, delta, A, Bt, Ct, D, z, delta_bias = ctx.saved_tensors
        du, ddelta, dA, dBt, dCt, dD, dz, dbias = torch.ops.ginr_scan.backward(
            dy.contiguous(), u, delta, A, Bt, Ct, D, z, delta_bias, *ctx.options
        )
        # dA, dD, dbias come per batch item and dBt, dCt per thread: sum them here.
        grads = (du, ddelta, dA.sum(0), dBt.sum(0), dCt.sum(0), dD.sum(0), dz, dbias.sum(0))
        needs = ctx.needs_input_grad
        return *(g if need else None for g, need in zip(grads, needs, strict=False)), None, None


def compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    """float64 if any input is, float32 otherwise (float16 and bfloat16 are computed in float32)."""
    dtype = torch.float32
    for x in tensors:
        if x is not None:
            if not x.is_floating_point():
                raise TypeError(f"selective_scan_cpu needs floating-point inputs, got {x.dtype}")
            dtype = torch.promote_types(dtype, x.dtype)
    return dtype


def selective_scan_cpu(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    reverse: Sequence[bool] = (),
    out: Tensor | None = None,
) -> Tensor:
    """The selective scan on the compiled CPU kernel; shapes and meaning as `scan.selective_scan`:
    u, delta, z (b, e, l); A (e, s); B, C (b, s, l) or grouped (b, g, s, l); D, delta_bias (e,); `reverse`
    one flag per group (empty: all forward). Returns y (b, e, l) in u's dtype: `out`, a contiguous buffer
    like u, written and returned when no gradient is needed and u is in the compute dtype."""
    if not ready():
        raise RuntimeError("the compiled CPU scan could not be built: use backend='torch' (see the warning)")
    dtype = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    s = A.shape[1]
    pad = -s % STATE_LANES

    def prep(x: Tensor | None) -> Tensor | None:
        return None if x is None else x.to(dtype).contiguous()

    def states_last(x: Tensor) -> Tensor:  # (b, s, l) or (b, g, s, l) -> (b, g, l, p)
        x = x[:, None] if x.dim() == 3 else x
        return F.pad(x.to(dtype).transpose(2, 3), (0, pad)).contiguous()

    inputs = (
        prep(u),
        prep(delta),
        F.pad(A.to(dtype), (0, pad)).contiguous(),  # (e, p)
        states_last(B),
        states_last(C),
        prep(D),
        prep(z),
        prep(delta_bias),
        delta_softplus,
        [int(r) for r in reverse],
    )
    tensors = (u, delta, A, B, C, D, z, delta_bias)
    needs_grad = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in tensors)
    if out is not None and not needs_grad and u.dtype == dtype:
        torch.ops.ginr_scan.forward_out(*inputs, out)
        return out
    return _SelectiveScanCpu.apply(*inputs).to(u.dtype)
