import importlib.abc
import importlib.machinery
import os
import sys
from pathlib import Path

import pytest
import torch

# Without a GPU, Triton's kernels (the GPU scan, nn/scan_triton.py) run in its interpreter on CPU tensors.
# Triton reads this when it is first imported, so it is set here, before any test imports it.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from ginr_cli.nn.config import (
    EncoderConfig,
    GINRConfig,
    HyponetConfig,
    LatentConfig,
    PositionConfig,
    TokenizerConfig,
)

# ../shared beside the checkout: the real benchmark images of DATA.md.
SHARED = Path(__file__).resolve().parents[2] / "shared"
SET5_X2 = SHARED / "data" / "sr-benchmarks" / "Set5" / "image_SRF_2"


def tiny_config(rank: int = 2, mixer: str = "mamba", backend: str = "torch", **changes) -> GINRConfig:
    """A model small enough for unit tests: width 16, two layers."""
    channels = 3 if rank == 2 else 1
    cfg = GINRConfig(
        name=f"test-{rank}d-{mixer}",
        rank=rank,
        in_channels=channels,
        out_channels=channels,
        input_size=16 if rank == 2 else 8,
        tokenizer=TokenizerConfig(patch_size=4 if rank == 2 else 2),
        positions=PositionConfig(num_lp=8),
        encoder=EncoderConfig(
            d_model=16, n_layers=2, d_state=4, n_heads=2, mixer=mixer, scan_backend=backend
        ),
        hyponet=HyponetConfig(d_hidden=16, n_heads=2, n_freqs=4),
    )
    return cfg.replace(**changes) if changes else cfg


def tiny_codec_config(rank: int = 2) -> GINRConfig:
    """A codec model (latent grid) small enough for unit tests: one LP per 4x4 (2^3) patch, 4 channels."""
    return tiny_config(
        rank,
        name=f"test-codec-{rank}d",
        positions=PositionConfig(num_lp=1, placement="per-token"),
        hyponet=HyponetConfig(d_hidden=16, n_heads=2, n_freqs=4, n_attn_layers=0, use_base=False),
        latent=LatentConfig(grid=True, width=4, synthesis_width=8, synthesis_blocks=1),
    )


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def untrained(model):
    """Give the zero-initialised layers (the decoder's output, a codec's encoder part) random weights, so
    every part shows in the output."""
    last = model.hyponet.mlp[-1]
    torch.nn.init.normal_(last.weight, std=0.3)
    torch.nn.init.normal_(last.bias, std=0.3)
    if model.to_latent is not None:  # a codec's encoder part starts at zero too
        torch.nn.init.normal_(model.to_latent.weight, std=0.3)
    return model


LIBCUDART = "libcudart.so.11.0: cannot open shared object file: No such file or directory"


class _BrokenMambaSsm(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """mamba-ssm built for another CUDA: found, but its import fails as its compiled extension loads."""

    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self, is_package=True) if name == "mamba_ssm" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ImportError(LIBCUDART)


def forget_mamba_ssm(monkeypatch) -> None:
    """Drop mamba_ssm and its submodules from sys.modules (where installed): the next import looks again."""
    for name in [n for n in sys.modules if n == "mamba_ssm" or n.startswith("mamba_ssm.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.fixture
def broken_mamba_ssm(monkeypatch) -> str:
    """The scan module as it stands where mamba-ssm is installed but does not import; yields the reason."""
    from ginr_cli.nn import scan

    forget_mamba_ssm(monkeypatch)
    monkeypatch.setattr(sys, "meta_path", [_BrokenMambaSsm(), *sys.meta_path])
    found, why = scan._import_mamba_ssm()
    monkeypatch.setattr(scan, "_mamba_ssm_scan", found)
    monkeypatch.setattr(scan, "_mamba_ssm_error", why)
    scan._say_why_mamba_ssm_is_off.cache_clear()  # said once per process: this test's process, as it were
    yield why
    scan._say_why_mamba_ssm_is_off.cache_clear()
