"""The selective scan as Triton kernels for the GPU, forward and backward (the "triton" backend of scan.py).

For CUDA machines without mamba-ssm (which compiles from source for minutes): Triton comes with PyTorch's
CUDA wheels and compiles these kernels at first use. One program runs one batch item and a block of
channels of one group through time, its (channels, states) state in registers; a reversed group walks from
the last step to the first, so BiMamba needs no flipped copies here either.

Backward runs the forward again, keeping every state in a (b, e, l, s) float32 buffer, then walks back in
time (the same equations as the C++ kernel, csrc/selective_scan_cpu.cpp). dB and dC sum over channels:
each program writes its block's share, summed here afterwards (deterministic, no atomics).

A forward with few programs to run (a batch of one: inference on one long sequence) is split in time as well:
the chunks of each row are scanned from a zero state at once, a short pass carries the states across the
chunks (a chunk's decay is exp(A * the sum of its dt)), and the chunks run again from their true starting
states, writing the output. Twice the work, but chunk-length steps in sequence instead of l.

Computes in float32 whatever the input dtype (as mamba-ssm does). With TRITON_INTERPRET=1 set before
this module is imported, the same kernels run on CPU tensors: that is how the tests check them on machines
without a GPU. (The kernels call no other jit function: the interpreter refuses nested calls when Triton
was imported before the variable was set.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK_E = 32  # channels per program
CHUNK = 128  # time steps per chunk of the chunked forward


@triton.jit
def _forward_kernel(
    u, delta, A, B, C, D, z, bias, reverse, out, states,
    e, l, s, groups, per_group,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    KEEP: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    bi, gi, blk = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    local = blk * BLOCK_E + tl.arange(0, BLOCK_E)
    ch_ok = local < per_group
    ch = gi * per_group + local  # channel indices
    st = tl.arange(0, BLOCK_S)
    st_ok = st < s
    both_ok = ch_ok[:, None] & st_ok[None, :]
    a = tl.load(A + ch[:, None] * s + st[None, :], mask=both_ok, other=0.0)
    dv = 0.0
    if HAS_D:
        dv = tl.load(D + ch, mask=ch_ok, other=0.0)
    bv = 0.0
    if HAS_BIAS:
        bv = tl.load(bias + ch, mask=ch_ok, other=0.0)
    backwards = tl.load(reverse + gi) != 0
    row = (bi * e + ch).to(tl.int64)  # 64-bit offsets: b * e * l * s passes 2^31 in long training runs
    rows = row * l  # start of each channel's row in u, delta, z, out
    bc = (bi * groups + gi) * s * l + st * l  # start of each state's row in B, C
    h = tl.zeros((BLOCK_E, BLOCK_S), dtype=tl.float32)
    for k in range(l):
        t = tl.where(backwards, l - 1 - k, k)
        ut = tl.load(u + rows + t, mask=ch_ok, other=0.0)
        dt = tl.load(delta + rows + t, mask=ch_ok, other=0.0) + bv
        if SOFTPLUS:  # as torch's softplus: x above 20, log(1 + exp(x)) below
            dt = tl.where(dt > 20.0, dt, tl.log(1.0 + tl.exp(tl.minimum(dt, 20.0))))
        bt = tl.load(B + bc + t, mask=st_ok, other=0.0)
        ct = tl.load(C + bc + t, mask=st_ok, other=0.0)
        h = tl.exp(dt[:, None] * a) * h + (dt * ut)[:, None] * bt[None, :]
        y = tl.sum(h * ct[None, :], axis=1) + dv * ut
        if HAS_Z:
            zt = tl.load(z + rows + t, mask=ch_ok, other=0.0)
            y = y * zt * tl.sigmoid(zt)
        tl.store(out + rows + t, y, mask=ch_ok)
        if KEEP:  # in step order: step k is time l - 1 - k in a reversed group
            tl.store(states + (row[:, None] * l + k) * BLOCK_S + st[None, :], h, mask=both_ok)


@triton.jit
def _chunk_kernel(
    u, delta, A, B, C, D, z, bias, reverse, out, carry, dt_sum,
    e, l, s, groups, per_group, chunk, chunks,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    FINAL: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    """One chunk of steps of a block of channels. Not FINAL: from a zero state, keep the end state in
    `carry` and the sum of dt in `dt_sum`. FINAL: from the state in `carry`, write the output."""
    bi, gi, pid = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    blk, c = pid // chunks, pid % chunks
    local = blk * BLOCK_E + tl.arange(0, BLOCK_E)
    ch_ok = local < per_group
    ch = gi * per_group + local
    st = tl.arange(0, BLOCK_S)
    st_ok = st < s
    both_ok = ch_ok[:, None] & st_ok[None, :]
    a = tl.load(A + ch[:, None] * s + st[None, :], mask=both_ok, other=0.0)
    dv = 0.0
    if HAS_D:
        dv = tl.load(D + ch, mask=ch_ok, other=0.0)
    bv = 0.0
    if HAS_BIAS:
        bv = tl.load(bias + ch, mask=ch_ok, other=0.0)
    backwards = tl.load(reverse + gi) != 0
    row = (bi * e + ch).to(tl.int64)
    rows = row * l
    bc = (bi * groups + gi) * s * l + st * l
    slot = row * chunks + c  # this chunk's entry in carry (b, e, chunks, BLOCK_S) and dt_sum (b, e, chunks)
    state = slot[:, None] * BLOCK_S + st[None, :]
    if FINAL:
        h = tl.load(carry + state, mask=both_ok, other=0.0)
    else:
        h = tl.zeros((BLOCK_E, BLOCK_S), dtype=tl.float32)
    total = tl.zeros((BLOCK_E,), dtype=tl.float32)
    start = c * chunk
    for k in range(start, tl.minimum(start + chunk, l)):
        t = tl.where(backwards, l - 1 - k, k)
        ut = tl.load(u + rows + t, mask=ch_ok, other=0.0)
        dt = tl.load(delta + rows + t, mask=ch_ok, other=0.0) + bv
        if SOFTPLUS:
            dt = tl.where(dt > 20.0, dt, tl.log(1.0 + tl.exp(tl.minimum(dt, 20.0))))
        bt = tl.load(B + bc + t, mask=st_ok, other=0.0)
        h = tl.exp(dt[:, None] * a) * h + (dt * ut)[:, None] * bt[None, :]
        if FINAL:
            ct = tl.load(C + bc + t, mask=st_ok, other=0.0)
            y = tl.sum(h * ct[None, :], axis=1) + dv * ut
            if HAS_Z:
                zt = tl.load(z + rows + t, mask=ch_ok, other=0.0)
                y = y * zt * tl.sigmoid(zt)
            tl.store(out + rows + t, y, mask=ch_ok)
        else:
            total += dt
    if not FINAL:
        tl.store(carry + state, h, mask=both_ok)
        tl.store(dt_sum + slot, total, mask=ch_ok)


@triton.jit
def _carry_kernel(carry, dt_sum, A, e, s, chunks, BLOCK_E: tl.constexpr, BLOCK_S: tl.constexpr):
    """Turn each chunk's end state (from a zero start) into its true starting state, chunk by chunk:
    start[c + 1] = exp(A * dt_sum[c]) * start[c] + end[c], start[0] = 0."""
    bi, blk = tl.program_id(0), tl.program_id(1)
    ch = blk * BLOCK_E + tl.arange(0, BLOCK_E)
    ch_ok = ch < e
    st = tl.arange(0, BLOCK_S)
    both_ok = ch_ok[:, None] & (st < s)[None, :]
    a = tl.load(A + ch[:, None] * s + st[None, :], mask=both_ok, other=0.0)
    row = (bi * e + ch).to(tl.int64)
    h = tl.zeros((BLOCK_E, BLOCK_S), dtype=tl.float32)
    for c in range(chunks):
        slot = row * chunks + c
        state = slot[:, None] * BLOCK_S + st[None, :]
        end = tl.load(carry + state, mask=both_ok, other=0.0)
        total = tl.load(dt_sum + slot, mask=ch_ok, other=0.0)
        tl.store(carry + state, h, mask=both_ok)
        h = tl.exp(total[:, None] * a) * h + end


@triton.jit
def _backward_kernel(
    dout, u, delta, A, B, C, D, z, bias, reverse, states,
    du, ddelta, dA, dB, dC, dD, dz, dbias,
    e, l, s, groups, per_group, blocks,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    bi, gi, blk = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    local = blk * BLOCK_E + tl.arange(0, BLOCK_E)
    ch_ok = local < per_group
    ch = gi * per_group + local
    st = tl.arange(0, BLOCK_S)
    st_ok = st < s
    both_ok = ch_ok[:, None] & st_ok[None, :]
    a = tl.load(A + ch[:, None] * s + st[None, :], mask=both_ok, other=0.0)
    dv = 0.0
    if HAS_D:
        dv = tl.load(D + ch, mask=ch_ok, other=0.0)
    bv = 0.0
    if HAS_BIAS:
        bv = tl.load(bias + ch, mask=ch_ok, other=0.0)
    backwards = tl.load(reverse + gi) != 0
    row = (bi * e + ch).to(tl.int64)
    rows = row * l
    bc = (bi * groups + gi) * s * l + st * l
    kept = row[:, None] * l * BLOCK_S + st[None, :]  # step k's state: kept + k * BLOCK_S
    share = ((bi * groups + gi) * blocks + blk).to(tl.int64) * s * l + st * l  # this program's dB, dC rows
    carry = tl.zeros((BLOCK_E, BLOCK_S), dtype=tl.float32)  # dL/dh from the later steps
    dA_acc = tl.zeros((BLOCK_E, BLOCK_S), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_E,), dtype=tl.float32)
    dbias_acc = tl.zeros((BLOCK_E,), dtype=tl.float32)
    for j in range(l):
        k = l - 1 - j
        t = tl.where(backwards, l - 1 - k, k)
        ut = tl.load(u + rows + t, mask=ch_ok, other=0.0)
        raw = tl.load(delta + rows + t, mask=ch_ok, other=0.0) + bv
        dt = raw
        if SOFTPLUS:
            dt = tl.where(raw > 20.0, raw, tl.log(1.0 + tl.exp(tl.minimum(raw, 20.0))))
        bt = tl.load(B + bc + t, mask=st_ok, other=0.0)
        ct = tl.load(C + bc + t, mask=st_ok, other=0.0)
        go = tl.load(dout + rows + t, mask=ch_ok, other=0.0)
        h = tl.load(states + kept + k * BLOCK_S, mask=both_ok, other=0.0)
        h_prev = tl.load(states + kept + tl.maximum(k - 1, 0) * BLOCK_S, mask=both_ok, other=0.0)
        h_prev = tl.where(k > 0, h_prev, 0.0)  # no state before the first step
        decay = tl.exp(dt[:, None] * a)
        if HAS_Z:  # out = y silu(z): dL/dy = dout silu(z), dL/dz = dout y silu'(z)
            zt = tl.load(z + rows + t, mask=ch_ok, other=0.0)
            sg = tl.sigmoid(zt)
            y = tl.sum(h * ct[None, :], axis=1) + dv * ut
            tl.store(dz + rows + t, go * y * sg * (1.0 + zt * (1.0 - sg)), mask=ch_ok)
            gy = go * zt * sg
        else:
            gy = go
        x = gy[:, None] * ct[None, :] + carry  # dL/dh_t
        dlog = x * h_prev * decay  # dL/d(dt_t A)
        tl.store(dC + share + t, tl.sum(gy[:, None] * h, axis=0), mask=st_ok)
        tl.store(dB + share + t, tl.sum(x * (dt * ut)[:, None], axis=0), mask=st_ok)
        dA_acc += dlog * dt[:, None]
        xb = tl.sum(x * bt[None, :], axis=1)
        ddt = tl.sum(dlog * a, axis=1) + ut * xb  # dt enters through exp(dt A) and through dt B u
        tl.store(du + rows + t, dt * xb + gy * dv, mask=ch_ok)
        dD_acc += gy * ut
        carry = x * decay
        if SOFTPLUS:  # softplus' = sigmoid (1 above torch's threshold of 20)
            ddt = ddt * tl.where(raw > 20.0, 1.0, tl.sigmoid(raw))
        tl.store(ddelta + rows + t, ddt, mask=ch_ok)
        dbias_acc += ddt
    tl.store(dA + row[:, None] * s + st[None, :], dA_acc, mask=both_ok)
    tl.store(dD + row, dD_acc, mask=ch_ok)
    tl.store(dbias + row, dbias_acc, mask=ch_ok)


def _launch_shape(u: Tensor, B: Tensor) -> tuple[int, int, int, int, int, int, int]:
    b, e, l = u.shape
    groups, s = B.shape[1], B.shape[2]
    per_group = e // groups
    return b, e, l, s, groups, per_group, triton.cdiv(per_group, BLOCK_E)


class _SelectiveScanTriton(torch.autograd.Function):
    """On float32, contiguous inputs with B, C grouped (b, g, s, l); `reverse` an int32 tensor per group."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse):
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, reverse)
        ctx.softplus = delta_softplus
        if _chunked(u, B):
            return _run_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse)
        return _run_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse, keep=False)[0]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        u, delta, A, B, C, D, z, delta_bias, reverse = ctx.saved_tensors
        b, e, l, s, groups, per_group, blocks = _launch_shape(u, B)
        _, states = _run_forward(u, delta, A, B, C, D, z, delta_bias, ctx.softplus, reverse, keep=True)
        du, ddelta = torch.empty_like(u), torch.empty_like(delta)
        dz = torch.empty_like(u) if z is not None else None
        dA = torch.empty(b, e, s, device=u.device)
        dB = torch.empty(b, groups, blocks, s, l, device=u.device)
        dC = torch.empty_like(dB)
        dD, dbias = torch.empty(b, e, device=u.device), torch.empty(b, e, device=u.device)
        _backward_kernel[(b, groups, blocks)](
            dy.float().contiguous(), u, delta, A, B, C, _or(D, u), _or(z, u), _or(delta_bias, u),
            reverse, states, du, ddelta, dA, dB, dC, dD, _or(dz, u), dbias,
            e, l, s, groups, per_group, blocks,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=ctx.softplus, BLOCK_E=BLOCK_E, BLOCK_S=triton.next_power_of_2(s),
        )  # fmt: skip
        grads = (du, ddelta, dA.sum(0), dB.sum(2), dC.sum(2), dD.sum(0), dz, dbias.sum(0))
        needs = ctx.needs_input_grad
        return *(g if need else None for g, need in zip(grads, needs, strict=False)), None, None


def _or(x: Tensor | None, placeholder: Tensor) -> Tensor:
    """A kernel argument that a constexpr flag marks absent still needs a pointer."""
    return placeholder if x is None else x


def _run_forward(u, delta, A, B, C, D, z, delta_bias, softplus, reverse, keep) -> tuple[Tensor, Tensor]:
    b, e, l, s, groups, per_group, blocks = _launch_shape(u, B)
    block_s = triton.next_power_of_2(s)
    out = torch.empty_like(u)
    states = torch.empty(b, e, l, block_s, device=u.device) if keep else out
    _forward_kernel[(b, groups, blocks)](
        u, delta, A, B, C, _or(D, u), _or(z, u), _or(delta_bias, u), reverse, out, states,
        e, l, s, groups, per_group,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
        KEEP=keep, BLOCK_E=BLOCK_E, BLOCK_S=block_s,
    )  # fmt: skip
    return out, states


def _programs_wanted(device: torch.device) -> int:
    """Programs that keep every multiprocessor of the GPU busy: fewer, and a forward is split in time."""
    return 4 * torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 0


def _chunked(u: Tensor, B: Tensor) -> bool:
    b, _, l, _, groups, _, blocks = _launch_shape(u, B)
    return l >= 4 * CHUNK and b * groups * blocks < _programs_wanted(u.device)


def _run_chunked(u, delta, A, B, C, D, z, delta_bias, softplus, reverse) -> Tensor:
    b, e, l, s, groups, per_group, blocks = _launch_shape(u, B)
    block_s = triton.next_power_of_2(s)
    chunks = triton.cdiv(l, CHUNK)
    out = torch.empty_like(u)
    carry = torch.empty(b, e, chunks, block_s, device=u.device)
    dt_sum = torch.empty(b, e, chunks, device=u.device)
    args = (u, delta, A, B, C, _or(D, u), _or(z, u), _or(delta_bias, u), reverse, out, carry, dt_sum)
    flags = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus)
    sizes = (e, l, s, groups, per_group, CHUNK, chunks)
    grid = (b, groups, blocks * chunks)
    _chunk_kernel[grid](*args, *sizes, **flags, FINAL=False, BLOCK_E=BLOCK_E, BLOCK_S=block_s)
    _carry_kernel[(b, triton.cdiv(e, BLOCK_E))](
        carry, dt_sum, A, e, s, chunks, BLOCK_E=BLOCK_E, BLOCK_S=block_s
    )
    _chunk_kernel[grid](*args, *sizes, **flags, FINAL=True, BLOCK_E=BLOCK_E, BLOCK_S=block_s)
    return out


_FLAGS: dict[tuple[tuple[bool, ...], torch.device], Tensor] = {}


def _reverse_flags(reverse: tuple[bool, ...], device: torch.device) -> Tensor:
    """The int32 flags of `reverse` on `device`, made once: no host-to-device copy in every call."""
    key = (reverse, device)
    if key not in _FLAGS:
        _FLAGS[key] = torch.tensor([int(r) for r in reverse], dtype=torch.int32, device=device)
    return _FLAGS[key]


def selective_scan_triton(
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
) -> Tensor:
    """The selective scan on the Triton kernels; shapes and meaning as `scan.selective_scan`. Returns y
    (b, e, l) in u's dtype."""

    def prep(x: Tensor | None) -> Tensor | None:
        return None if x is None else x.float().contiguous()

    groups = 1 if B.dim() == 3 else B.shape[1]
    if B.dim() == 3:
        B, C = B[:, None], C[:, None]  # (b, 1, s, l)
    flags = _reverse_flags(tuple(bool(r) for r in reverse) or (False,) * groups, u.device)
    y = _SelectiveScanTriton.apply(
        prep(u), prep(delta), prep(A), prep(B), prep(C), prep(D), prep(z), prep(delta_bias),
        delta_softplus, flags,
    )  # fmt: skip
    return y.to(u.dtype)
