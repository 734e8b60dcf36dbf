"""Every scan backend is held to the sequential reference, forward and gradients."""

import importlib.abc
import logging
import sys

import pytest
import torch

from ginr_cli.nn import scan
from ginr_cli.nn.scan import selective_scan, selective_scan_ref
from tests.conftest import LIBCUDART, forget_mamba_ssm

INPUTS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(b, e, s, l, groups=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(l * 7 + e)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).to(device).requires_grad_()

    bc = (b, groups, s, l) if groups else (b, s, l)
    return dict(
        u=rand(b, e, l),
        delta=rand(b, e, l, scale=0.5),
        A=(-torch.rand(e, s, generator=g, dtype=dtype) * 3).to(device).requires_grad_(),
        B=rand(*bc),
        C=rand(*bc),
        D=rand(e),
        z=rand(b, e, l),
        delta_bias=rand(e, scale=0.3),
    )


def grads(out, inputs):
    return torch.autograd.grad(
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).view_as(out)).sum(),
        [inputs[k] for k in INPUTS],
    )


@pytest.mark.parametrize("l", [1, 37, 600])
@pytest.mark.parametrize("groups", [0, 2])
def test_torch_backend_matches_reference(l, groups):
    inputs = make_inputs(2, 6, 4, l, groups)
    ref = selective_scan_ref(**inputs, delta_softplus=True)
    out = selective_scan(**inputs, delta_softplus=True, backend="torch")
    torch.testing.assert_close(out, ref)
    for got, want in zip(grads(out, inputs), grads(ref, inputs), strict=True):
        torch.testing.assert_close(got, want)


def flipped_ref(inputs, reverse):
    """The reference on each group of channels alone, its inputs and output flipped in time where the group
    is reversed: what `reverse` means, spelled out."""
    g, e = len(reverse), inputs["u"].shape[1]
    outs = []
    for j, rev in enumerate(reverse):
        ch = slice(j * e // g, (j + 1) * e // g)
        t = (lambda x: x.flip(-1)) if rev else (lambda x: x)
        part = dict(
            u=t(inputs["u"][:, ch]),
            delta=t(inputs["delta"][:, ch]),
            A=inputs["A"][ch],
            B=t(inputs["B"][:, j]),
            C=t(inputs["C"][:, j]),
            D=inputs["D"][ch],
            z=t(inputs["z"][:, ch]),
            delta_bias=inputs["delta_bias"][ch],
        )
        outs.append(t(selective_scan_ref(**part, delta_softplus=True)))
    return torch.cat(outs, dim=1)


BACKENDS = ["reference", "torch"] + (["cpp"] if "cpp" in scan.available_backends() else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reverse", [(False, True), (True, True), (True, False, True)])
@pytest.mark.parametrize("l", [1, 300])
def test_reversed_groups_run_backwards_in_time(backend, reverse, l):
    inputs = make_inputs(2, 8 * len(reverse), 5, l, groups=len(reverse))
    want = flipped_ref(inputs, reverse)
    out = selective_scan(**inputs, delta_softplus=True, reverse=reverse, backend=backend)
    torch.testing.assert_close(out, want)
    for got, ref in zip(grads(out, inputs), grads(want, inputs), strict=True):
        torch.testing.assert_close(got, ref)


def test_reverse_needs_one_flag_per_group():
    inputs = {k: v.detach() for k, v in make_inputs(1, 4, 2, 3, groups=2).items()}
    with pytest.raises(ValueError, match="one flag per group"):
        selective_scan(**inputs, reverse=(True,), backend="torch")


def test_torch_backend_without_grad_matches_across_blocks(monkeypatch):
    monkeypatch.setattr(scan, "TORCH_BLOCK", 16)  # several blocks, state carried across them
    inputs = {k: v.detach().float() for k, v in make_inputs(1, 5, 3, 53).items()}
    with torch.no_grad():
        out = selective_scan(**inputs, backend="torch")
    torch.testing.assert_close(out, selective_scan_ref(**inputs), rtol=1e-4, atol=1e-5)


def test_optional_arguments_may_be_left_out():
    inputs = make_inputs(1, 3, 2, 9)
    kept = {k: inputs[k] for k in ("u", "delta", "A", "B", "C")}
    torch.testing.assert_close(selective_scan(**kept, backend="torch"), selective_scan_ref(**kept))


def test_gradcheck_torch_backend():
    inputs = make_inputs(1, 2, 2, 5, groups=2)

    def fn(*xs):
        return selective_scan(**dict(zip(INPUTS, xs, strict=True)), delta_softplus=True, backend="torch")

    assert torch.autograd.gradcheck(fn, [inputs[k] for k in INPUTS])


def test_unknown_or_unavailable_backend_is_refused():
    inputs = {k: v.detach() for k, v in make_inputs(1, 2, 2, 3).items()}
    if scan._mamba_ssm_scan is None:
        with pytest.raises(RuntimeError, match="mamba-ssm"):
            selective_scan(**inputs, backend="cuda")
    with pytest.raises(KeyError):
        selective_scan(**inputs, backend="nonsense")


def test_a_mamba_ssm_that_does_not_import_says_why_once(broken_mamba_ssm, caplog):
    """Installed but broken (built for another CUDA): the reason is logged at INFO, which `-v` shows, on the
    first scan and not on every one; the explicit 'cuda' backend names it too."""
    assert broken_mamba_ssm == f"ImportError: {LIBCUDART}"
    inputs = {k: v.detach() for k, v in make_inputs(1, 2, 2, 3).items()}
    with caplog.at_level(logging.INFO, logger="ginr_cli"):
        for _ in range(3):
            selective_scan(**inputs, backend="torch")
    said = [r.getMessage() for r in caplog.records if "mamba-ssm" in r.getMessage()]
    why = f"mamba-ssm is installed but does not import, so its CUDA scan is off ({broken_mamba_ssm})"
    assert said == [why]
    with pytest.raises(RuntimeError, match="installed but does not import .ImportError: libcudart"):
        selective_scan(**inputs, backend="cuda")


class _NoMambaSsm(importlib.abc.MetaPathFinder):
    """mamba_ssm not installed, where it is: the error Python raises when no finder has it."""

    def find_spec(self, name, path=None, target=None):
        if name == "mamba_ssm":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def test_a_mamba_ssm_that_is_not_installed_says_nothing(monkeypatch):
    forget_mamba_ssm(monkeypatch)
    monkeypatch.setattr(sys, "meta_path", [_NoMambaSsm(), *sys.meta_path])
    assert scan._import_mamba_ssm() == (None, None)


@pytest.mark.skipif(
    not torch.cuda.is_available() or scan._mamba_ssm_scan is None, reason="needs CUDA and mamba-ssm"
)
@pytest.mark.parametrize("l", [1, 37, 600])
def test_cuda_backend_matches_reference(l):
    inputs = make_inputs(2, 8, 4, l, groups=2, dtype=torch.float32, device="cuda")
    ref = selective_scan_ref(**inputs, delta_softplus=True)
    out = selective_scan(**inputs, delta_softplus=True, backend="cuda")
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)
    for got, want in zip(grads(out, inputs), grads(ref, inputs), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2)


def test_the_environment_can_override_the_automatic_backend(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv("GINR_SCAN_BACKEND", "reference")
    assert scan.resolve_backend("auto", cpu) == "reference"
    assert scan.resolve_backend("torch", cpu) == "torch"  # an explicit choice stands
    inputs = make_inputs(1, 4, 3, 6)
    kept = {k: inputs[k] for k in ("u", "delta", "A", "B", "C")}
    torch.testing.assert_close(selective_scan(**kept), selective_scan_ref(**kept))
    monkeypatch.setenv("GINR_SCAN_BACKEND", "fast")
    with pytest.raises(ValueError, match="GINR_SCAN_BACKEND='fast': use one of reference, torch"):
        scan.resolve_backend("auto", cpu)
