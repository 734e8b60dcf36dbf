"""The latent file, format 2: quantised integers entropy-coded in a plain safetensors file."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

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
    path = tmp_path / "old.safetensors"
    meta = {"ginr.format": "1", "ginr.source": json.dumps(SOURCE)}
    save_file({"latents": torch.zeros(1, 1, 4, 8)}, str(path), metadata=meta)
    with pytest.raises(GinrError, match="latent format 1 .* encode the source again"):
        load_latent(path)


def _saved_with(tmp_path, key: str, changes: dict, drop: tuple = ()) -> Path:
    """A valid latent whose metadata object under `key` has `changes` made and the fields `drop` removed."""
    integers, steps = torch.zeros(1, 2, 6, 4), torch.ones(4)
    tiles = {"shape": [12, 16], "tile": [12, 16], "overlap": 0}
    path = tmp_path / "a.safetensors"
    save_latent(path, LatentFile(integers, steps, "m", "0123456789abcdef", SOURCE, {"lo": 0, "hi": 1}, tiles))
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    value = {k: v for k, v in json.loads(metadata[key]).items() if k not in drop} | changes
    save_file(load_file(path), str(path), metadata=metadata | {key: json.dumps(value)})
    return path


@pytest.mark.parametrize(
    ("key", "changes", "drop", "message"),
    [
        (
            "ginr.source",
            {"dpi": [0, 72]},
            (),
            "ginr.source dpi must be null or two positive numbers, not [0, 72]",
        ),
        (
            "ginr.source",
            {"kind": "movie"},
            (),
            "ginr.source kind must be image or nifti or tiff, not 'movie'",
        ),
        ("ginr.source", {"channels": True}, (), "ginr.source channels must be 1 or 3, not True"),
        ("ginr.source", {}, ("mode", "bit_depth"), "ginr.source lacks mode, bit_depth"),
        ("ginr.source", {"kind": "nifti"}, (), "ginr.source lacks spacing, unit, affine, axes, sform_code"),
        ("ginr.model", {"fingerprint": 7}, (), "ginr.model fingerprint must be a string, not 7"),
        ("ginr.normalization", {"hi": "1"}, (), "ginr.normalization hi must be a number, not '1'"),
        ("ginr.normalization", {"lo": -(10**400)}, (), "ginr.normalization lo must be a number, not -1000"),
        ("ginr.tiles", {"tile": [12, 0]}, (), "ginr.tiles tile must be a list of sizes, not [12, 0]"),
        ("ginr.codes", {"dtype": "int32"}, (), "ginr.codes dtype must be int8 or int16, not 'int32'"),
    ],
)
def test_broken_metadata_is_one_line_naming_the_field(tmp_path, key, changes, drop, message):
    """Every metadata object is checked against one schema, whose error names the key and the field (a
    number fingerprint or a string bound once passed, turned into a string or a float; 10**400 crashed)."""
    path = _saved_with(tmp_path, key, changes, drop)
    with pytest.raises(GinrError) as err:
        load_latent(path)
    assert str(err.value).startswith(f"{path}: broken latent metadata: {message}")
    assert "\n" not in str(err.value)
