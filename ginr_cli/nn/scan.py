"""The selective scan of Mamba (S6), with one entry point over several backends.

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t        (per channel e, per state s)
    y_t = <h_t, C_t> + D * u_t,   then  y_t * silu(z_t)  when z is given

Shapes follow mamba-ssm's `selective_scan_fn`: u, delta, z (b, e, l); A (e, s); D, delta_bias (e,);
B, C (b, s, l), or (b, g, s, l) for g groups of e / g channels with their own B and C; `reverse`, one flag
per group, runs a group from the last time step to the first (how BiMamba runs both directions in one
call, without flipped copies on the compiled backend).

Backends, all held to `selective_scan_ref` by the tests:
- "reference": the recurrence as written, one time step at a time. Slow, readable, the ground truth.
- "torch":     pure PyTorch, time-major, runs everywhere. The default where nothing faster is available.
- "cpp":       a fused C++ loop for the CPU, compiled at first use (`scan_cpu.py`).
- "triton":    Triton kernels for the GPU (`scan_triton.py`): "auto" on CUDA where mamba-ssm is not installed.
- "cuda":      mamba-ssm's fused kernel, when it is installed and the tensors are on CUDA.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)

Backend = Literal["auto", "reference", "torch", "cpp", "triton", "cuda"]

# Time steps per block in the pure-PyTorch backend: bounds the (steps, b, e, s) state buffer without grad.
TORCH_BLOCK = 256


def _import_mamba_ssm():
    """mamba-ssm's fused CUDA scan (pip install 'ginr[cuda]'), or None; and why not, where it is installed
    but fails to import (a build for another torch or CUDA): `-v` shows that reason once."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as err:  # an ImportError from its compiled extension, or whatever else its import raises
        if isinstance(err, ModuleNotFoundError) and err.name == "mamba_ssm":
            return None, None  # not installed: nothing to say
        return None, f"{type(err).__name__}: {' '.join(str(err).split())}"
    return selective_scan_fn, None


_mamba_ssm_scan, _mamba_ssm_error = _import_mamba_ssm()


@functools.cache
def _say_why_mamba_ssm_is_off() -> None:
    if _mamba_ssm_error is not None:
        log.info("mamba-ssm is installed but does not import, so its CUDA scan is off (%s)", _mamba_ssm_error)


def _discretize_delta(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool) -> Tensor:
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]
    return F.softplus(delta) if delta_softplus else delta


def _finish(y: Tensor, u: Tensor, D: Tensor | None, z: Tensor | None) -> Tensor:
    if D is not None:
        y = y + u * D[..., None]
    if z is not None:
        y = y * F.silu(z)
    return y


def _per_channel(BC: Tensor, e: int) -> Tensor:
    """(b, s, l) -> (b, 1, s, l); grouped (b, g, s, l) -> (b, e, s, l), each group repeated e / g times."""
    return BC[:, None] if BC.dim() == 3 else BC.repeat_interleave(e // BC.shape[1], dim=1)


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """The readable reference: the recurrence one step at a time. Returns y (b, e, l)."""
    delta = _discretize_delta(delta, delta_bias, delta_softplus)
    b, e, l = u.shape
    B, C = _per_channel(B, e), _per_channel(C, e)  # (b, e or 1, s, l)
    h = u.new_zeros(b, e, A.shape[1])  # (b, e, s)
    ys = []
    for t in range(l):
        decay = torch.exp(delta[:, :, t, None] * A)  # (b, e, s)
        drive = delta[:, :, t, None] * B[..., t] * u[:, :, t, None]  # (b, e, s)
        h = decay * h + drive  # (b, e, s)
        ys.append((h * C[..., t]).sum(-1))  # (b, e)
    y = torch.stack(ys, dim=-1)  # (b, e, l)
    return _finish(y, u, D, z)


def _scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus) -> Tensor:
    """Pure PyTorch, time-major so each step touches one contiguous (b, e, s) slice.

    With autograd the steps are `unbind` slices combined out of place: indexing `x[:, t]` in a loop would
    make the backward quadratic in l. Without autograd the states are written in place, block by block,
    so memory stays O(block * e * s) however long the sequence.
    """
    delta = _discretize_delta(delta, delta_bias, delta_softplus)
    b, e, l = u.shape
    if B.dim() == 3:
        B, C = B[:, None], C[:, None]  # one group: (b, 1, s, l)
    g, s = B.shape[1], A.shape[1]
    delta_t = delta.permute(2, 0, 1).contiguous()  # (l, b, e)
    du_t = (delta * u).permute(2, 0, 1).reshape(l, b, g, e // g, 1)  # (l, b, g, e/g, 1)
    B_t = B.permute(3, 0, 1, 2).reshape(l, b, g, 1, s).contiguous()  # (l, b, g, 1, s)
    C_t = C.permute(3, 0, 1, 2).contiguous()  # (l, b, g, s)
    h = u.new_zeros(b, e, s)  # (b, e, s)
    ys = []
    grad = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (u, delta, A, B, C, delta_bias)
    )
    for start in range(0, l, TORCH_BLOCK):
        stop = min(start + TORCH_BLOCK, l)
        decay = torch.exp(delta_t[start:stop, :, :, None] * A)  # (t, b, e, s)
        drive = (du_t[start:stop] * B_t[start:stop]).view(stop - start, b, e, s)  # (t, b, e, s)
        if grad:
            states = []
            for decay_i, drive_i in zip(decay.unbind(0), drive.unbind(0), strict=True):
                h = torch.addcmul(drive_i, decay_i, h)  # (b, e, s)
                states.append(h)
            hs = torch.stack(states)  # (t, b, e, s)
        else:
            hs = drive  # overwritten in place with the states
            for i in range(stop - start):
                h = hs[i].addcmul_(decay[i], h)  # (b, e, s)
        hs = hs.view(stop - start, b, g, e // g, s)
        ys.append(torch.einsum("tbgcs,tbgs->tbgc", hs, C_t[start:stop]).reshape(stop - start, b, e))
    y = torch.cat(ys).permute(1, 2, 0)  # (b, e, l)
    return _finish(y, u, D, z)


def _scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus) -> Tensor:
    return _mamba_ssm_scan(
        u.contiguous(),
        delta.contiguous(),
        A.contiguous(),
        B.contiguous(),
        C.contiguous(),
        D=None if D is None else D.float(),
        z=None if z is None else z.contiguous(),
        delta_bias=None if delta_bias is None else delta_bias.float(),
        delta_softplus=delta_softplus,
    )


def _scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse=(), out=None) -> Tensor:
    from ginr_cli.nn.scan_triton import selective_scan_triton

    return selective_scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse)


@functools.cache
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def _scan_cpp(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse=(), out=None) -> Tensor:
    from ginr_cli.nn.scan_cpu import selective_scan_cpu

    return selective_scan_cpu(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse, out)


def _flipped(x: Tensor | None, groups: int, reverse: Sequence[bool], dim: int) -> Tensor | None:
    """x with the time axis (the last) reversed in the groups marked in `reverse`; groups split `dim`."""
    if x is None or not any(reverse):
        return x
    parts = x.chunk(groups, dim)
    return torch.cat([p.flip(-1) if r else p for p, r in zip(parts, reverse, strict=True)], dim)


def _reversed_groups(scan):
    """A backend without native reverse support, given it by flipping the reversed groups in and out."""

    def run(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse=(), out=None) -> Tensor:
        if not any(reverse):
            return scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus)

        def flip(x: Tensor | None) -> Tensor | None:  # channels and B, C both split their dim 1
            return _flipped(x, len(reverse), reverse, dim=1)

        y = scan(flip(u), flip(delta), A, flip(B), flip(C), D, flip(z), delta_bias, delta_softplus)
        return flip(y)

    return run


def available_backends() -> list[str]:
    """Backends usable in this process (the cpp one may still fall back if its build fails)."""
    names = ["reference", "torch"]
    from ginr_cli.nn import scan_cpu

    if scan_cpu.can_build():
        names.append("cpp")
    if _triton_installed() and torch.cuda.is_available():
        names.append("triton")
    if _mamba_ssm_scan is not None and torch.cuda.is_available():
        names.append("cuda")
    return names


def resolve_backend(backend: Backend, device: torch.device) -> str:
    """The concrete backend `auto` means for tensors on `device`; the environment variable
    GINR_SCAN_BACKEND, when set, overrides `auto` (to rule a kernel out when something goes wrong)."""
    _say_why_mamba_ssm_is_off()
    if backend != "auto":
        return backend
    forced = os.environ.get("GINR_SCAN_BACKEND", "auto")
    if forced != "auto":
        if forced not in _BACKENDS:
            raise ValueError(f"GINR_SCAN_BACKEND={forced!r}: use one of {', '.join(_BACKENDS)}")
        return forced
    if device.type == "cuda" and _mamba_ssm_scan is not None:
        return "cuda"
    if device.type == "cuda" and _triton_installed():
        return "triton"
    if device.type == "cpu":
        from ginr_cli.nn import scan_cpu

        if scan_cpu.ready():
            return "cpp"
    return "torch"


# Each takes the same arguments; `out` (a buffer to write into) is used by "cpp" and ignored by the others.
_BACKENDS = {
    "reference": _reversed_groups(selective_scan_ref),
    "torch": _reversed_groups(_scan_torch),
    "cpp": _scan_cpp,
    "triton": _scan_triton,
    "cuda": _reversed_groups(_scan_cuda),
}


def selective_scan(
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
    backend: Backend = "auto",
    out: Tensor | None = None,
) -> Tensor:
    """Run the selective scan on the chosen backend. Returns y (b, e, l) in u's dtype. `out`: a buffer
    like u that the compiled CPU kernel may write into and return at inference (others ignore it)."""
    groups = 1 if B.dim() == 3 else B.shape[1]
    if reverse and len(reverse) != groups:
        raise ValueError(f"reverse needs one flag per group ({groups}), got {len(reverse)}")
    name = resolve_backend(backend, u.device)
    if name == "cuda" and (_mamba_ssm_scan is None or u.device.type != "cuda"):
        why = f"; it is installed but does not import ({_mamba_ssm_error})" if _mamba_ssm_error else ""
        raise RuntimeError(
            "the 'cuda' scan backend needs mamba-ssm and CUDA tensors: pip install 'ginr[cuda]' on a CUDA "
            f"machine, or use backend='auto'{why}"
        )
    if name == "triton" and u.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(
            "the 'triton' scan backend needs CUDA tensors (TRITON_INTERPRET=1 runs it on the CPU, for tests)"
        )
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, tuple(reverse))
    return _BACKENDS[name](*args, out=out)
