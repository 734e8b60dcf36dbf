"""The compiled CPU scan is held to the sequential reference, forward and every gradient."""

import os
import threading
import time
import warnings

import pytest
import torch

from ginr_cli.nn import scan_cpu
from ginr_cli.nn.scan import selective_scan, selective_scan_ref
from ginr_cli.nn.scan_cpu import can_build, selective_scan_cpu

pytestmark = pytest.mark.skipif(not can_build(), reason="needs a C++ compiler and ninja")

INPUTS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-4)}


@pytest.fixture(scope="module", autouse=True)
def _built():
    assert scan_cpu.ready(), "a compiler is present, so the extension should build"


def make_inputs(b, e, s, l, dtype=torch.float64, seed=0):
    """Mamba-like inputs; u, z, B and C are transposed views, as mamba.py passes them (not contiguous)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=g, dtype=dtype) * scale

    return dict(
        u=rand(b, l, e).transpose(1, 2),
        delta=rand(b, e, l, scale=0.5),
        A=-torch.rand(e, s, generator=g, dtype=dtype) * 3,
        B=rand(b, l, s).transpose(1, 2),
        C=rand(b, l, s).transpose(1, 2),
        D=rand(e),
        z=rand(b, l, e).transpose(1, 2),
        delta_bias=rand(e, scale=0.3),
    )


def with_grad(inputs):
    return {k: v.detach().requires_grad_() for k, v in inputs.items()}


def grads(out, inputs):
    weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)  # a gradient unlike ones
    keys = [k for k in INPUTS if k in inputs]
    return dict(zip(keys, torch.autograd.grad((out * weight).sum(), [inputs[k] for k in keys]), strict=True))


def assert_matches_reference(inputs, delta_softplus, tol):
    inputs = with_grad(inputs)
    ref = selective_scan_ref(**inputs, delta_softplus=delta_softplus)
    out = selective_scan_cpu(**inputs, delta_softplus=delta_softplus)
    torch.testing.assert_close(out, ref, **tol)
    want, got = grads(ref, inputs), grads(out, inputs)
    for name in want:
        scale = want[name].abs().max().item()  # sums over l: judge each gradient on its own scale
        torch.testing.assert_close(
            got[name],
            want[name],
            rtol=tol["rtol"],
            atol=tol["atol"] * max(scale, 1.0),
            msg=lambda m, name=name: f"d{name}: {m}",
        )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("l", [1, 37, 700])
@pytest.mark.parametrize("options", ["all", "none", "D only", "z and bias"])
def test_matches_reference(dtype, l, options):
    inputs = make_inputs(2, 6, 4, l, dtype)
    keep = {"all": INPUTS, "none": INPUTS[:5], "D only": INPUTS[:6], "z and bias": INPUTS[:5] + INPUTS[6:]}
    inputs = {k: v for k, v in inputs.items() if k in keep[options]}
    if options == "none":  # delta used as given: keep it positive, or the states grow without bound
        inputs["delta"] = inputs["delta"].abs()
    assert_matches_reference(inputs, delta_softplus=options != "none", tol=TOL[dtype])


@pytest.mark.parametrize("s", [1, 16, 20])  # padded to 16 (the fixed-size loop), exactly 16, to 32 (generic)
def test_state_sizes(s):
    assert_matches_reference(make_inputs(1, 3, s, 29), delta_softplus=True, tol=TOL[torch.float64])


@pytest.fixture(params=["native", "portable"])
def float_paths(request):
    """The float32 kernels as this CPU runs them, and with their AVX-512 versions turned off (what CPUs
    without AVX-512 run: the same loops with a portable exp2), forward and backward."""
    torch.ops.ginr_scan.set_avx512(request.param == "native")  # on only where the CPU has AVX-512
    yield request.param
    torch.ops.ginr_scan.set_avx512(True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("s", [3, 8, 16])  # all padded to 16 states
def test_groups_reversed_over_many_chunks_and_a_partial_channel_block(dtype, s, float_paths):
    """2 x 20 channels: each group is one block of 16 lanes and one of 4; 700 steps cross the float
    forward's 64-step chunks, backwards in the second group."""
    inputs = make_inputs(1, 40, s, 700, dtype)
    g = torch.Generator().manual_seed(1)
    inputs["B"], inputs["C"] = (torch.randn(1, 2, s, 700, generator=g, dtype=dtype) for _ in range(2))
    inputs = with_grad(inputs)
    out = selective_scan_cpu(**inputs, delta_softplus=True, reverse=(False, True))
    halves = []
    for j, rev in enumerate((False, True)):
        ch = slice(20 * j, 20 * (j + 1))
        t = (lambda x: x.flip(-1)) if rev else (lambda x: x)
        part = {k: t(inputs[k][:, ch]) for k in ("u", "delta", "z")}
        part |= {k: inputs[k][ch] for k in ("A", "D", "delta_bias")}
        part |= {k: t(inputs[k][:, j]) for k in ("B", "C")}
        halves.append(t(selective_scan_ref(**part, delta_softplus=True)))
    ref = torch.cat(halves, dim=1)
    torch.testing.assert_close(out, ref, **TOL[dtype])
    want, got = grads(ref, inputs), grads(out, inputs)
    for name in want:
        scale = max(want[name].abs().max().item(), 1.0)
        torch.testing.assert_close(
            got[name], want[name], rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale
        )


def test_portable_and_avx512_forwards_agree():
    """Both round dt A log2(e) to the same integer and share the polynomial: equal but for the scaling of
    decays under 2^-125."""
    if not torch.ops.ginr_scan.set_avx512(True):
        pytest.skip("this CPU has no AVX-512")
    inputs = make_inputs(2, 48, 16, 130, torch.float32)
    with torch.no_grad():
        native = selective_scan_cpu(**inputs, delta_softplus=True)
        torch.ops.ginr_scan.set_avx512(False)
        try:
            portable = selective_scan_cpu(**inputs, delta_softplus=True)
        finally:
            torch.ops.ginr_scan.set_avx512(True)
    torch.testing.assert_close(native, portable, rtol=1e-6, atol=1e-6)


def test_float_kernels_keep_nan_and_underflow_decays_to_zero(float_paths):
    """A NaN step poisons its row from there on, as in the reference; steps so long that exp(dt A) underflows
    give decays of 0, not NaN (the state restarts from dt B u)."""
    inputs = make_inputs(1, 20, 16, 40, torch.float32)
    inputs["delta"] = inputs["delta"].clone()
    inputs["delta"][0, 3, 10] = float("nan")
    inputs["delta"][0, 7, 20:] = 1e4
    with torch.no_grad():
        out = selective_scan_cpu(**inputs, delta_softplus=True)
    ref = selective_scan_ref(**{k: v.double() for k, v in inputs.items()}, delta_softplus=True)
    assert out[0, 3, :10].isfinite().all() and out[0, 3, 10:].isnan().all()
    keep = torch.ones_like(out, dtype=torch.bool)
    keep[0, 3] = False
    assert out.isfinite()[keep].all()
    torch.testing.assert_close(out[keep].double(), ref[keep], rtol=1e-4, atol=1e-3)


def test_uneven_thread_groups():
    """Three thread groups over 2 * 5 channels: each keeps its own dB, dC partial sums."""
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert_matches_reference(make_inputs(2, 5, 4, 23), delta_softplus=True, tol=TOL[torch.float64])
    finally:
        torch.set_num_threads(threads)


def test_gradcheck():
    inputs = with_grad({k: v.contiguous() for k, v in make_inputs(1, 2, 3, 5).items()})

    def fn(*xs):
        return selective_scan_cpu(**dict(zip(INPUTS, xs, strict=True)), delta_softplus=True)

    assert torch.autograd.gradcheck(fn, [inputs[k] for k in INPUTS])


def test_bfloat16_is_computed_in_float32_and_returned_as_bfloat16():
    inputs = with_grad({k: v.to(torch.bfloat16) for k, v in make_inputs(1, 4, 4, 33, torch.float32).items()})
    out = selective_scan_cpu(**inputs, delta_softplus=True)
    assert out.dtype == torch.bfloat16
    ref = selective_scan_ref(**{k: v.float() for k, v in inputs.items()}, delta_softplus=True)
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=1e-2)
    out.float().sum().backward()
    assert all(inputs[k].grad.dtype == torch.bfloat16 for k in INPUTS)


def test_no_grad_forward_equals_grad_forward():
    inputs = make_inputs(2, 4, 4, 50, torch.float32)
    with torch.no_grad():
        fast = selective_scan_cpu(**inputs, delta_softplus=True)
    torch.testing.assert_close(
        fast, selective_scan_cpu(**with_grad(inputs), delta_softplus=True), rtol=0, atol=0
    )


def test_inference_writes_into_the_given_buffer_and_training_ignores_it():
    inputs = make_inputs(2, 4, 16, 50, torch.float32)
    buf = torch.full((2, 4, 50), float("nan"))
    with torch.no_grad():
        got = selective_scan_cpu(**inputs, delta_softplus=True, reverse=(True,), out=buf)
    assert got is buf
    want = selective_scan_cpu(**with_grad(inputs), delta_softplus=True, reverse=(True,), out=buf.clone())
    assert want.data_ptr() != buf.data_ptr()  # a gradient is needed: a fresh tensor
    torch.testing.assert_close(got, want.detach(), rtol=0, atol=0)


def test_auto_picks_cpp_on_cpu():
    inputs = make_inputs(1, 3, 4, 9, torch.float32)
    torch.testing.assert_close(
        selective_scan(**inputs, backend="auto"), selective_scan_cpu(**inputs), rtol=0, atol=0
    )


def test_build_failure_warns_once_and_falls_back(monkeypatch):
    import torch.utils.cpp_extension

    def broken(**kwargs):
        raise RuntimeError("Error building extension\nfatal error: no such header")

    monkeypatch.setattr(scan_cpu, "_ready", None)
    monkeypatch.setattr(torch.utils.cpp_extension, "load", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert scan_cpu.ready() is False
        assert scan_cpu.ready() is False  # cached: no second attempt, no second warning
    assert len(caught) == 1 and "pure-PyTorch scan" in str(caught[0].message)
    with pytest.raises(RuntimeError, match="backend='torch'"):
        selective_scan_cpu(**make_inputs(1, 2, 2, 3))


def test_a_build_lock_left_by_a_killed_build_is_removed_not_waited_for_forever(tmp_path):
    lock = tmp_path / "lock"
    lock.touch()
    old = time.time() - scan_cpu.STALE_LOCK_S - 1
    os.utime(lock, (old, old))
    with pytest.warns(RuntimeWarning, match="interrupted build"):
        scan_cpu.wait_for_build_lock(lock)
    assert not lock.exists()


def test_a_live_build_is_waited_for_and_its_lock_left_alone(tmp_path):
    lock = tmp_path / "lock"
    lock.touch()
    threading.Timer(0.3, lock.unlink).start()  # the other process finishes its build
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stale-lock warning
        scan_cpu.wait_for_build_lock(lock, poll_s=0.05)
    assert time.perf_counter() - start >= 0.3


def test_a_lock_that_outlives_any_build_is_taken_for_stale(tmp_path):
    lock = tmp_path / "lock"
    lock.touch()
    with pytest.warns(RuntimeWarning, match="interrupted build"):
        scan_cpu.wait_for_build_lock(lock, stale_s=0.2, poll_s=0.05)
    assert not lock.exists()


def test_a_build_is_announced_when_the_library_is_missing_or_older_than_a_source(tmp_path):
    assert scan_cpu.needs_build(tmp_path)  # nothing built yet
    built = tmp_path / f"{scan_cpu.EXTENSION}.so"
    built.touch()
    os.utime(built, (0, 0))  # older than every source
    assert scan_cpu.needs_build(tmp_path)
    later = time.time() + 3600
    os.utime(built, (later, later))
    assert not scan_cpu.needs_build(tmp_path)
