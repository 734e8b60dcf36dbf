"""BiMamba's fused computation is exactly the seed's definition: a forward Mamba and a Mamba over the
reversed sequence, outputs averaged, on every scan backend, values and gradients."""

import pytest
import torch

from ginr_cli.nn import scan
from ginr_cli.nn.config import EncoderConfig
from ginr_cli.nn.mamba import BiMamba

BACKENDS = ["reference", "torch"] + (["cpp"] if "cpp" in scan.available_backends() else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d_state", [6, 16])
@pytest.mark.parametrize("expand", [1, 2])
def test_bimamba_is_the_average_of_a_forward_and_a_reverse_mamba(backend, d_state, expand):
    torch.manual_seed(0)
    cfg = EncoderConfig(d_model=32, n_layers=1, d_state=d_state, expand=expand, scan_backend=backend)
    mixer = BiMamba(cfg).double()
    x = torch.randn(2, 19, 32, dtype=torch.float64, requires_grad=True)
    fused = mixer(x)
    plain = (mixer.forward_mamba(x) + mixer.reverse_mamba(x.flip(1)).flip(1)) / 2
    torch.testing.assert_close(fused, plain)
    with torch.inference_mode():  # the kept fused weights and workspace buffers
        torch.testing.assert_close(mixer(x.detach()), plain.detach())
    weight = torch.randn_like(fused)
    wrt = [x, *mixer.parameters()]
    for got, want in zip(
        torch.autograd.grad(fused, wrt, weight), torch.autograd.grad(plain, wrt, weight), strict=True
    ):
        torch.testing.assert_close(got, want)


def test_inference_follows_every_change_of_the_weights():
    """At inference the fused weights are kept between calls: an in-place update (an optimizer step, a
    load_state_dict) and a dtype conversion must each reach the next forward."""
    torch.manual_seed(0)
    mixer = BiMamba(EncoderConfig(d_model=32, n_layers=1, d_state=16, scan_backend="torch"))
    x = torch.randn(1, 12, 32)

    def check(dtype=torch.float32):
        with torch.inference_mode():
            cached = mixer(x.to(dtype))
        with torch.no_grad():
            mixer._fused = None  # rebuilt from the parameters as they are now
            fresh = mixer(x.to(dtype))
        torch.testing.assert_close(cached, fresh, rtol=0, atol=0)
        return cached

    first = check()
    assert mixer._fused is not None  # kept for the next call
    with torch.no_grad():
        mixer.reverse_mamba.out_proj.weight.mul_(2)
    assert not torch.equal(check(), first)
    state = {k: v + 0.01 for k, v in mixer.state_dict().items()}
    mixer.load_state_dict(state)
    check()
    mixer.double()
    assert check(torch.float64).dtype == torch.float64
