import os
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
