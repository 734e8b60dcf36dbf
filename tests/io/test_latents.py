"""The latent file, format 2: quantised integers entropy-coded in a plain safetensors file."""

import json

import pytest
import torch
from safetensors import safe_open

from ginr_cli.errors import GinrError
from ginr_cli.io.latents import LatentFile, load_latent, pack_codes, save_latent, unpack_codes

SOURCE = {
    "kind": "image",
    "shape": [12, 16],
    "channels": 3,
    "dtype": "uint8",
    "format": "PNG",
    "mode": "RGB",
    "bit_depth": 8,
    "name": "a.png",
}


@pytest.mark.parametrize(("high", "dtype"), [(127, "int8"), (300, "int16")])
def test_codes_round_trip_exactly_in_the_smallest_integer_type(high, dtype):
    integers = torch.randint(-high, high + 1, (2, 3, 5, 4))
    integers[0, 0, 0, 0] = high
    stream, kind = pack_codes(integers.float())
    assert kind == dtype
    assert torch.equal(unpack_codes(stream, list(integers.shape), kind), integers)


def test_codes_beyond_int16_are_refused():
    with pytest.raises(ValueError, match="beyond int16"):
        pack_codes(torch.tensor([[[[40000.0]]]]))


def test_a_latent_round_trips_and_is_a_plain_safetensors_file(tmp_path):
    integers = torch.randint(-3, 4, (1, 2, 6, 4)).float()
    steps = torch.tensor([0.5, 1.0, 2.0, 0.25])
    tiles = {"shape": [12, 16], "tile": [12, 16], "overlap": 0}
    latent = LatentFile(integers, steps, "m", "0123456789abcdef", SOURCE, {"lo": 0.0, "hi": 1.0}, tiles)
    path = tmp_path / "a.safetensors"
    save_latent(path, latent)
    back = load_latent(path, "0123456789abcdef")
    assert back.format == 2 and back.source == SOURCE and back.tiles == tiles
    assert torch.equal(back.latents, integers.long()) and torch.equal(back.steps, steps)
    torch.testing.assert_close(back.values(), integers * steps)
    with safe_open(str(path), framework="pt") as f:  # what any safetensors reader sees
        assert sorted(f.keys()) == ["codes", "steps"]
        assert f.get_tensor("codes").dtype == torch.uint8
        assert json.loads(f.metadata()["ginr.codes"]) == {"shape": [1, 2, 6, 4], "dtype": "int8"}
    # the entropy coder pays for what the values need: all zeros take a fraction of the raw bytes
    zeros = LatentFile(
        torch.zeros(1, 2, 600, 4), steps, "m", "0123456789abcdef", SOURCE, {"lo": 0, "hi": 1}, tiles
    )
    save_latent(path, zeros)
    with safe_open(str(path), framework="pt") as f:
        assert len(f.get_tensor("codes")) < 2 * 600 * 4 // 20


def test_format_1_is_refused_with_what_to_do(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "old.safetensors"
    meta = {"ginr.format": "1", "ginr.source": json.dumps(SOURCE)}
    save_file({"latents": torch.zeros(1, 1, 4, 8)}, str(path), metadata=meta)
    with pytest.raises(GinrError, match="latent format 1 .* encode the source again"):
        load_latent(path)
