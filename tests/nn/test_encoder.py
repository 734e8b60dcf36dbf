"""The encoder at inference runs its MLP a chunk of tokens at a time and lends its blocks one workspace:
the same result as all at once, with fresh tensors."""

import pytest
import torch

from ginr_cli.nn import encoder
from ginr_cli.nn.config import EncoderConfig
from ginr_cli.nn.encoder import Encoder
from ginr_cli.nn.mamba import BiMamba
from ginr_cli.nn.scan import available_backends
from ginr_cli.nn.workspace import Workspace


@pytest.mark.parametrize("mixer", ["mamba", "attention"])
def test_chunked_mlp_at_inference_equals_the_whole_sequence(monkeypatch, mixer):
    torch.manual_seed(0)
    model = Encoder(EncoderConfig(d_model=16, n_layers=2, d_state=4, n_heads=2, mixer=mixer)).double()
    x = torch.randn(2, 21, 16, dtype=torch.float64)
    whole = model(x)  # grad enabled: never chunked
    monkeypatch.setattr(encoder, "MLP_CHUNK", 8)  # 21 tokens: chunks of 8, 8 and 5
    sizes = []
    for block in model.blocks:
        block.norm_mlp.register_forward_hook(lambda _, args, out: sizes.append(args[0].shape[1]))
    with torch.inference_mode():
        chunked = model(x)
    assert sizes == [8, 8, 5] * 2
    torch.testing.assert_close(chunked, whole.detach())


@pytest.mark.parametrize("backend", ["torch"] + (["cpp"] if "cpp" in available_backends() else []))
def test_blocks_sharing_a_workspace_equal_blocks_without_one(backend):
    torch.manual_seed(0)
    model = Encoder(EncoderConfig(d_model=16, n_layers=3, d_state=4, scan_backend=backend))
    x = torch.randn(2, 37, 16)
    with torch.no_grad():
        fresh = x
        for block in model.blocks:
            fresh = block(fresh)  # no workspace
        fresh = model.norm(fresh)
        shared = model(x)  # one workspace for the three blocks
    torch.testing.assert_close(shared, fresh, rtol=0, atol=0)


def test_workspace_lends_the_same_memory_per_name_and_shape():
    ws, like = Workspace(), torch.zeros(1)
    a = ws.take("y", (2, 8, 5), like)
    assert ws.take("y", (2, 8, 5), like).data_ptr() == a.data_ptr()
    assert ws.take("x", (2, 8, 5), like).data_ptr() != a.data_ptr()
    b = ws.take("y", (2, 8, 7), like)  # a new shape: a new buffer
    assert b.shape == (2, 8, 7) and b.dtype == like.dtype
    assert ws.take("y", (2, 8, 5), like.double()).dtype == torch.float64


@pytest.mark.parametrize("backend", ["torch"] + (["cpp"] if "cpp" in available_backends() else []))
def test_only_the_compiled_kernels_are_lent_conv_and_scan_buffers(backend):
    mixer = BiMamba(EncoderConfig(d_model=16, d_state=4, scan_backend=backend))
    ws = Workspace()
    with torch.no_grad():
        mixer(torch.randn(1, 9, 16), ws)
    lent = {"xz", "delta"} | ({"x", "y"} if backend == "cpp" else set())
    assert set(ws._buffers) == lent


def test_the_mlp_chunks_of_every_block_share_one_buffer(monkeypatch):
    """21 tokens in chunks of 8: the short last chunk uses the leading rows of the same buffer, so the
    workspace allocates it once per forward, not once per chunk shape and block."""
    torch.manual_seed(0)
    model = Encoder(EncoderConfig(d_model=16, n_layers=3, d_state=4))
    monkeypatch.setattr(encoder, "MLP_CHUNK", 8)
    made = []
    real_take = Workspace.take

    def take(self, name, shape, like):
        buf = real_take(self, name, shape, like)
        if name == "mlp" and all(buf is not other for other in made):
            made.append(buf)
        return buf

    monkeypatch.setattr(Workspace, "take", take)
    x = torch.randn(2, 21, 16)
    with torch.inference_mode():
        got = model(x)
    assert len(made) == 1
    torch.testing.assert_close(got, model(x).detach())
