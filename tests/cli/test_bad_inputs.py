"""A corpus of bad inputs through whole batches: each bad file gives one line naming it and the problem,
the batch goes on and exits 1, the good files are done and nothing is written for the bad ones.

Three batches, one per command and kind (a batch runs one model): images through `ginr upscale` with the
2D model, volumes through `ginr upscale` with the 3D model, latents through `ginr decode`. Each folder holds
one good file (and a few unusual ones that must work) beside the bad ones.
"""

import io
import json
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from ginr_cli.io.latents import pack_codes, unpack_codes
from tests.cli.conftest import ANATOMICAL, file_bytes, hr_crop

# --- images -------------------------------------------------------------------------------------------


def png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def png_bomb(path: Path, side: int = 20_000) -> None:
    """A real decompression bomb: a 1-bit side x side PNG of zeros, about 50 KB on disk."""
    deflate = zlib.compressobj(9)
    row = bytes(1 + side // 8)  # filter byte + the row's bits
    idat = b"".join(deflate.compress(row) for _ in range(side)) + deflate.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    body = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


# name -> words its one-line error must contain
BAD_IMAGES = {
    "zero.png": "empty file",
    "zero.jpg": "empty file",
    "text.jpg": "not a PNG, JPEG",
    "truncated.png": "truncated",
    "truncated.jpg": "truncated",
    "truncated.tif": "truncated",
    "garbage-after-header.png": "corrupt",
    "bomb.png": "--max-pixels 400000000",
}
GOOD_IMAGES = {  # name -> (width, height, mode) of the x2 output
    "good.png": (32, 24, "RGB"),
    "one-pixel.png": (2, 2, "RGB"),
    "one-row.png": (10_000, 2, "RGB"),
    "palette.png": (32, 24, "RGB"),
    "palette-alpha.png": (32, 24, "RGBA"),
    "cmyk.jpg": (32, 24, "RGB"),
}


def image_corpus(folder: Path) -> None:
    folder.mkdir()
    photo = hr_crop(1, (100, 100, 116, 112))  # 16 x 12 RGB
    photo.save(folder / "good.png")
    Image.new("RGB", (1, 1), (200, 30, 90)).save(folder / "one-pixel.png")
    row = np.linspace(0, 255, 5000).astype(np.uint8)[None, :, None].repeat(3, axis=2)
    Image.fromarray(row).save(folder / "one-row.png")  # 5000 x 1
    photo.quantize(16).save(folder / "palette.png")
    with_alpha = photo.quantize(16)
    with_alpha.info["transparency"] = 0
    with_alpha.save(folder / "palette-alpha.png", transparency=0)
    photo.convert("CMYK").save(folder / "cmyk.jpg", quality=95)

    (folder / "zero.png").write_bytes(b"")
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not a JPEG\n")
    big = hr_crop(2, (0, 0, 64, 64))
    for name, fmt in (("truncated.png", "PNG"), ("truncated.jpg", "JPEG")):
        data = encoded(big, fmt)
        (folder / name).write_bytes(data[: len(data) // 2])
    tifffile.imwrite(folder / "truncated.tif", np.asarray(big), photometric="rgb")
    (folder / "truncated.tif").write_bytes((folder / "truncated.tif").read_bytes()[:3000])
    data = bytearray(encoded(big, "PNG"))
    data[200:] = bytes(range(256)) * ((len(data) - 200) // 256) + bytes((len(data) - 200) % 256)
    (folder / "garbage-after-header.png").write_bytes(bytes(data))
    png_bomb(folder / "bomb.png")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*BAD_IMAGES, *GOOD_IMAGES])


def failure_lines(result, folder: Path, bad: dict[str, str]) -> dict[str, str]:
    """Check the report of a batch with failures and return each bad file's message."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Error:" not in result.stdout
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed  ")]
    messages = {}
    for name, words in bad.items():
        mine = [line for line in failed if line.startswith(f"failed  {folder / name}: ")]
        assert len(mine) == 1, (name, result.stderr)
        message = mine[0].removeprefix(f"failed  {folder / name}: ")
        assert words in message, (name, message)
        messages[name] = message
    assert len(failed) == len(bad), result.stderr
    before, summary, after = result.stderr.partition(f" {len(bad)} failed\n")
    assert summary and before.splitlines()[:-1] == failed  # nothing else: no library's log lines
    listed = after.splitlines()  # the summary lists each failure once
    assert sorted(listed) == sorted(f"  {folder / n}: {m}" for n, m in messages.items())
    return messages


def test_a_batch_of_bad_images(ginr, model_2d, tmp_path):
    folder, out = tmp_path / "images", tmp_path / "out"
    image_corpus(folder)
    before = file_bytes(folder)
    result = ginr("upscale", folder, out, "--scale", "2", "--model", model_2d)

    failure_lines(result, folder, BAD_IMAGES)
    assert f"upscale: {len(GOOD_IMAGES)} done, 0 skipped, {len(BAD_IMAGES)} failed" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(GOOD_IMAGES)  # nothing for the bad ones
    for name, (w, h, mode) in GOOD_IMAGES.items():
        with Image.open(out / name) as im:
            assert (im.size, im.mode) == ((w, h), mode), name
    assert file_bytes(folder) == before


def test_max_pixels_lets_a_trusted_large_image_through(ginr, model_2d, tmp_path):
    Image.new("L", (40, 30), 128).save(tmp_path / "large.png")
    refused = ginr("upscale", tmp_path / "large.png", tmp_path / "out.png", "--max-pixels", "1199",
                   "--model", model_2d)  # fmt: skip
    assert refused.exit_code == 1
    assert "over the limit of 1,199" in refused.stderr and "--max-pixels 1200" in refused.stderr
    assert not (tmp_path / "out.png").exists()
    allowed = ginr("upscale", tmp_path / "large.png", tmp_path / "out.png", "--max-pixels", "1200",
                   "--model", model_2d)  # fmt: skip
    assert allowed.exit_code == 0, allowed.output
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (160, 120)  # the default scale, 4


# --- volumes ------------------------------------------------------------------------------------------


def save_nifti(path: Path, data: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), path)


BAD_VOLUMES = {
    "nan-inf.nii.gz": "2 of 512 voxel values are not finite",
    "flat-2d.nii": "2D NIfTI",
    "five-5d.nii": "5D NIfTI",
    "corrupt.nii.gz": "cannot read NIfTI",
    "truncated.nii": "truncated",
    "zero.nii.gz": "empty file (0 bytes)",
    "time-and-channels.tif": "TIFF axes",
    "rgb-stack.tif": "TIFF axes",
}
GOOD_VOLUMES = {"good.nii.gz": (8, 8, 16), "good-stack.tif": (8, 8, 16)}  # scale 1,1,2 in file order


def volume_corpus(folder: Path) -> None:
    folder.mkdir()
    smooth = np.add.outer(np.add.outer(np.arange(8.0), np.arange(8.0)), np.arange(8.0)).astype(np.float32)
    save_nifti(folder / "good.nii.gz", smooth)
    tifffile.imwrite(
        folder / "good-stack.tif", smooth.astype(np.uint16), imagej=True, metadata={"axes": "ZYX"}
    )

    broken = smooth.copy()
    broken[1, 2, 3], broken[4, 5, 6] = np.nan, -np.inf
    save_nifti(folder / "nan-inf.nii.gz", broken)
    save_nifti(folder / "flat-2d.nii", np.zeros((8, 8), np.float32))
    save_nifti(folder / "five-5d.nii", np.zeros((4, 4, 4, 1, 2), np.float32))
    save_nifti(folder / "corrupt.nii.gz", smooth)
    data = bytearray((folder / "corrupt.nii.gz").read_bytes())
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)
    (folder / "corrupt.nii.gz").write_bytes(bytes(data))
    raw = ANATOMICAL.read_bytes()
    (folder / "truncated.nii").write_bytes(raw[: len(raw) // 2])
    (folder / "zero.nii.gz").write_bytes(b"")
    tifffile.imwrite(folder / "time-and-channels.tif", np.zeros((2, 4, 2, 8, 8), np.uint8), imagej=True,
                     metadata={"axes": "TZCYX"})  # fmt: skip
    tifffile.imwrite(folder / "rgb-stack.tif", np.zeros((4, 8, 8, 3), np.uint8), photometric="rgb")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*BAD_VOLUMES, *GOOD_VOLUMES])


def test_a_batch_of_bad_volumes(ginr, model_3d, tmp_path):
    folder, out = tmp_path / "volumes", tmp_path / "out"
    volume_corpus(folder)
    before = file_bytes(folder)
    result = ginr("upscale", folder, out, "--scale", "1,1,2", "--model", model_3d, "--kind", "volume")

    failure_lines(result, folder, BAD_VOLUMES)
    assert sorted(p.name for p in out.iterdir()) == sorted(GOOD_VOLUMES)
    assert nib.load(out / "good.nii.gz").shape == GOOD_VOLUMES["good.nii.gz"]
    assert tifffile.imread(out / "good-stack.tif").shape == GOOD_VOLUMES["good-stack.tif"]
    assert file_bytes(folder) == before


# --- latents ------------------------------------------------------------------------------------------


def safetensors_parts(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


BAD_LATENTS = {
    "no-metadata.safetensors": "metadata lacks ginr.source",
    "some-metadata-missing.safetensors": "metadata lacks ginr.normalization",
    "garbled-json.safetensors": "broken latent metadata",
    "garbled-format.safetensors": "broken latent metadata",
    "future-format.safetensors": "newer than this ginr reads",
    "empty-range.safetensors": "normalisation range is empty",
    "tiles-not-fitting.safetensors": "does not fit the source shape",
    "wrong-rank.safetensors": "ginr.codes shape must be four counts (frames, tiles, m, d)",
    "integer-steps.safetensors": "positive numbers",
    "negative-steps.safetensors": "positive numbers",
    "wrong-width.safetensors": "the model needs",
    "wrong-tile-count.safetensors": "tiles of latents for a grid of",
    "two-tensors.safetensors": "expected tensors 'codes' and 'steps'",
    "format-1.safetensors": "latent format 1",
    "broken-codes.safetensors": "broken latent codes",
    "short-codes.safetensors": "their shape",
    "codes-bomb.safetensors": "more than a latent may hold",
    "other-model.safetensors": "fingerprint",
    "volume-latent.safetensors": "is for images, not volumes",
    "claims-more-bytes.safetensors": "not a readable",
    "header-length-too-big.safetensors": "not a readable",
    "zero.safetensors": "empty file (0 bytes)",
    "text.safetensors": "not a readable",
}


def latent_corpus(folder: Path, good: Path, volume_latent: Path) -> None:
    folder.mkdir()
    (folder / "good.safetensors").write_bytes(good.read_bytes())
    tensors = load_file(good)
    header, data = safetensors_parts(good)
    meta = header["__metadata__"]

    def variant(name: str, changes: dict | None = None, drop=(), new_tensors=None) -> None:
        m = {k: v for k, v in meta.items() if k not in drop} | (changes or {})
        save_file(new_tensors or tensors, folder / name, metadata=m)

    codes, steps = json.loads(meta["ginr.codes"]), tensors["steps"]
    integers = unpack_codes(tensors["codes"].numpy().tobytes(), codes["shape"], codes["dtype"])
    tiles, model = json.loads(meta["ginr.tiles"]), json.loads(meta["ginr.model"])

    def repacked(name: str, values: torch.Tensor, steps: torch.Tensor) -> None:
        stream, dtype = pack_codes(values)
        shape = json.dumps({"shape": list(values.shape), "dtype": dtype})
        new = {"codes": torch.frombuffer(bytearray(stream), dtype=torch.uint8), "steps": steps}
        variant(name, {"ginr.codes": shape}, new_tensors=new)

    save_file(tensors, folder / "no-metadata.safetensors")
    variant("some-metadata-missing.safetensors", drop=("ginr.normalization",))
    variant("garbled-json.safetensors", {"ginr.tiles": '{"shape": [12, 16], "tile"'})
    variant("garbled-format.safetensors", {"ginr.format": "one"})
    variant("future-format.safetensors", {"ginr.format": "99"})
    variant("empty-range.safetensors", {"ginr.normalization": json.dumps({"lo": 1.0, "hi": 1.0})})
    variant("tiles-not-fitting.safetensors", {"ginr.tiles": json.dumps(tiles | {"shape": [99, 99]})})
    variant("wrong-rank.safetensors", {"ginr.codes": json.dumps(codes | {"shape": codes["shape"][1:]})})
    variant("integer-steps.safetensors", new_tensors={**tensors, "steps": steps.to(torch.int32)})
    variant("negative-steps.safetensors", new_tensors={**tensors, "steps": -steps})
    repacked("wrong-width.safetensors", integers[..., :-1], steps[:-1].contiguous())
    repacked("wrong-tile-count.safetensors", integers[:, :-1], steps)
    variant("two-tensors.safetensors", new_tensors={**tensors, "extra": steps.clone()})
    variant("format-1.safetensors", {"ginr.format": "1"})
    garbled = tensors["codes"].clone()
    garbled[len(garbled) // 2 :] ^= 0x5A
    variant("broken-codes.safetensors", new_tensors={**tensors, "codes": garbled})
    short = {"codes": tensors["codes"], "steps": torch.ones(codes["shape"][3] * 2)}
    doubled = codes | {"shape": [*codes["shape"][:3], codes["shape"][3] * 2]}
    variant("short-codes.safetensors", {"ginr.codes": json.dumps(doubled)}, new_tensors=short)
    bomb = json.dumps(codes | {"shape": [1, 1, 2**20, 2**16]})
    variant(
        "codes-bomb.safetensors", {"ginr.codes": bomb}, new_tensors={**tensors, "steps": torch.ones(2**16)}
    )
    other = json.dumps(model | {"fingerprint": "0123456789abcdef"})
    variant("other-model.safetensors", {"ginr.model": other})
    (folder / "volume-latent.safetensors").write_bytes(volume_latent.read_bytes())
    # the header promises more tensor bytes than the file holds
    (folder / "claims-more-bytes.safetensors").write_bytes(safetensors_bytes(header, data[: len(data) // 2]))
    raw = good.read_bytes()
    (folder / "header-length-too-big.safetensors").write_bytes(struct.pack("<Q", 2**40) + raw[8:])
    (folder / "zero.safetensors").write_bytes(b"")
    (folder / "text.safetensors").write_text("these are not the latents you are looking for\n" * 4)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*BAD_LATENTS, "good.safetensors"])


@pytest.fixture(scope="module")
def good_latent(ginr, model_2d, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good-latent")
    hr_crop(3, (40, 40, 56, 52)).save(folder / "photo.png")
    result = ginr("encode", folder / "photo.png", "-o", folder / "photo.safetensors", "--model", model_2d)
    assert result.exit_code == 0, result.output
    return folder / "photo.safetensors"


def test_a_batch_of_bad_latents(ginr, model_2d, good_latent, nifti_latent, tmp_path):
    folder, out = tmp_path / "latents", tmp_path / "out"
    latent_corpus(folder, good_latent, nifti_latent)
    before = file_bytes(folder)
    result = ginr("decode", folder, "-o", out, "--model", model_2d, "--scale", "2")

    failure_lines(result, folder, BAD_LATENTS)
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]
    with Image.open(out / "good.png") as im:
        assert im.size == (32, 24)
    assert file_bytes(folder) == before


def test_the_corpus_size():
    """The issue asks how many bad inputs were tried: report it."""
    counts = {"images": len(BAD_IMAGES), "volumes": len(BAD_VOLUMES), "latents": len(BAD_LATENTS)}
    print(f"bad inputs tried: {sum(counts.values())} {counts}")
    assert sum(counts.values()) >= 30


def test_a_model_config_of_the_wrong_type_is_one_line_naming_the_key(ginr, model_2d, mixed_folder, tmp_path):
    bad = tmp_path / "bad-model"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((model_2d / "model.safetensors").read_bytes())
    cfg = json.loads((model_2d / "config.json").read_text())
    cfg["encoder"]["d_model"] = "256"
    (bad / "config.json").write_text(json.dumps(cfg))
    result = ginr("upscale", mixed_folder / "a.jpg", tmp_path / "out.png", "--model", bad)
    assert result.exit_code == 1, result.output
    assert "invalid model config: config.encoder.d_model: expected an integer, got '256'" in result.stderr
    assert "unexpected error" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.png").exists()
