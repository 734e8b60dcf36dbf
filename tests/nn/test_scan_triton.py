"""The Triton scan (the GPU backend where mamba-ssm is not installed) is held to the sequential reference,
forward and every gradient. Without a GPU, Triton's interpreter runs the same kernels on CPU tensors."""

import pytest
import torch

from ginr_cli.nn import scan
from ginr_cli.nn.config import EncoderConfig
from ginr_cli.nn.mamba import BiMamba
from tests.nn.test_scan import INPUTS, flipped_ref, grads, make_inputs

pytest.importorskip("triton")

TOL = dict(rtol=1e-4, atol=1e-4)  # float32 kernels against the float64 reference


@pytest.fixture(scope="module")
def kernels():
    """scan_triton: on a GPU compiled for it, elsewhere interpreted (TRITON_INTERPRET, set in conftest.py)."""
    from ginr_cli.nn import scan_triton

    return scan_triton


def on_device(inputs):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {k: v.detach().to(device).requires_grad_() for k, v in inputs.items()}


def assert_close_scaled(got, want):
    for g, w, name in zip(got, want, INPUTS, strict=True):  # each gradient on its own scale
        scale = max(w.abs().max().item(), 1.0)
        torch.testing.assert_close(g.cpu().double(), w.cpu(), rtol=1e-4, atol=1e-4 * scale, msg=name)


# 40 channels per group: a full block of 32 and a partial one; 6 states: padded to 8 lanes.
@pytest.mark.parametrize("reverse", [(False,), (True,), (False, True)])
@pytest.mark.parametrize("l", [1, 13])
def test_matches_reference(kernels, reverse, l):
    inputs = make_inputs(2, 40 * len(reverse), 6, l, groups=len(reverse))
    want = flipped_ref(inputs, reverse)
    fast = on_device(inputs)
    out = kernels.selective_scan_triton(**fast, delta_softplus=True, reverse=reverse)
    torch.testing.assert_close(out.cpu().double(), want, **TOL)
    assert_close_scaled(grads(out, fast), grads(want, inputs))


@pytest.mark.parametrize("reverse", [(False,), (False, True)])
@pytest.mark.parametrize("l", [16, 23])
def test_the_forward_split_in_time_matches_the_reference(kernels, monkeypatch, reverse, l):
    # Chunks of 4 steps (the last one partial at l=23), the split forced as on a GPU with idle programs.
    monkeypatch.setattr(kernels, "CHUNK", 4)
    monkeypatch.setattr(kernels, "_programs_wanted", lambda device: 10**6)
    inputs = make_inputs(2, 40 * len(reverse), 6, l, groups=len(reverse))
    want = flipped_ref(inputs, reverse)
    fast = on_device(inputs)
    assert kernels._chunked(fast["u"], fast["B"] if len(reverse) > 1 else fast["B"][:, None])
    out = kernels.selective_scan_triton(**fast, delta_softplus=True, reverse=reverse)
    torch.testing.assert_close(out.cpu().double(), want, **TOL)
    assert_close_scaled(grads(out, fast), grads(want, inputs))  # the backward is the unsplit one


def test_optional_inputs_and_no_softplus(kernels):
    inputs = make_inputs(1, 5, 3, 9)  # one ungrouped B, C (b, s, l)
    kept = {k: inputs[k] for k in ("u", "delta", "A", "B", "C")}
    want = scan.selective_scan_ref(**kept)
    fast = on_device(kept)
    out = kernels.selective_scan_triton(**fast)
    torch.testing.assert_close(out.cpu().double(), want, **TOL)
    for got, ref in zip(
        torch.autograd.grad(out.sum(), list(fast.values())),
        torch.autograd.grad(want.sum(), list(kept.values())),
        strict=True,
    ):
        torch.testing.assert_close(got.cpu().double(), ref, **TOL)


def test_bimamba_on_the_triton_backend_matches_the_torch_one(kernels):
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mixer = BiMamba(EncoderConfig(d_model=16, n_layers=1, d_state=4, scan_backend="triton")).to(device)
    x = torch.randn(2, 11, 16, device=device)
    out = mixer(x)
    mixer.backend = mixer.forward_mamba.backend = mixer.reverse_mamba.backend = "torch"
    torch.testing.assert_close(out, mixer(x), **TOL)


def test_auto_picks_triton_on_cuda_without_mamba_ssm(monkeypatch):
    monkeypatch.setattr(scan, "_mamba_ssm_scan", None)
    assert scan.resolve_backend("auto", torch.device("cuda")) == "triton"
    assert scan.resolve_backend("auto", torch.device("cpu")) != "triton"


def test_cpu_tensors_are_refused_outside_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    inputs = {k: v.detach() for k, v in make_inputs(1, 2, 2, 3).items()}
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        scan.selective_scan(**inputs, backend="triton")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the compiled kernels need a GPU")
@pytest.mark.parametrize("l,dtype", [(4096, torch.float32), (4096, torch.bfloat16), (16385, torch.bfloat16)])
def test_long_sequences_on_the_gpu_in_float32_and_bfloat16(kernels, dtype, l):
    # The inputs rounded to dtype first, so the reference sees exactly what the kernel sees; the kernel
    # computes in float32 whatever its inputs, and returns u's dtype.
    inputs = make_inputs(1, 64, 8, l, groups=2)
    rounded = {k: v.detach().to(dtype).double().requires_grad_() for k, v in inputs.items()}
    reverse = (False, True)
    want = flipped_ref(rounded, reverse)
    fast = {k: v.detach().to("cuda", dtype).requires_grad_() for k, v in rounded.items()}
    out = kernels.selective_scan_triton(**fast, delta_softplus=True, reverse=reverse)
    assert out.dtype == dtype
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(out.cpu().double(), want, **tol)
    got = grads(out, fast)
    for g, w, name in zip(got, grads(want, rounded), INPUTS, strict=True):
        scale = max(w.abs().max().item(), 1.0)
        # bf16 gradients are rounded once on the way out: a relative error of 2^-8 of the largest.
        atol = 1e-4 * scale if dtype == torch.float32 else 1e-2 * scale
        torch.testing.assert_close(g.cpu().double(), w.cpu(), rtol=1e-2, atol=atol, msg=name)
