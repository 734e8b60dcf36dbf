"""The encoder at inference runs its MLP a chunk of tokens at a time: the same result as all at once."""

import pytest
import torch

from ginr_cli.nn import encoder
from ginr_cli.nn.config import EncoderConfig
from ginr_cli.nn.encoder import Encoder


@pytest.mark.parametrize("mixer", ["mamba", "attention"])
def test_chunked_mlp_at_inference_equals_the_whole_sequence(monkeypatch, mixer):
    torch.manual_seed(0)
    model = Encoder(EncoderConfig(d_model=16, n_layers=2, d_state=4, n_heads=2, mixer=mixer)).double()
    x = torch.randn(2, 21, 16, dtype=torch.float64)
    whole = model(x)  # grad enabled: never chunked
    monkeypatch.setattr(encoder, "MLP_CHUNK", 8)  # 21 tokens: chunks of 8, 8 and 5
    sizes = []
    for block in model.blocks:
        block.mlp.register_forward_hook(lambda _, args, out: sizes.append(args[0].shape[1]))
    with torch.inference_mode():
        chunked = model(x)
    assert sizes == [8, 8, 5] * 2
    torch.testing.assert_close(chunked, whole.detach())
