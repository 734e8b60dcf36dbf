"""Fuzzing the readers: random bytes and mutated valid files into read_image, read_volume and load_latent.

Whatever the bytes, a reader returns data or raises GinrError naming the file, never another exception.
Derandomised so CI is repeatable; GINR_FUZZ_EXAMPLES=5000 explores more (with fresh random cases).
"""

import gzip
import io
import json
import os
import struct
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file

from ginr_cli.errors import GinrError
from ginr_cli.io.images import read_image
from ginr_cli.io.latents import load_latent, pack_codes, read_source_metadata
from ginr_cli.io.volumes import read_volume

EXAMPLES = int(os.environ.get("GINR_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="GINR_FUZZ_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MAX_PIXELS = 1_000_000  # a mutated header may claim any size: keep decoding small
RUN = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    yield
    report_count(request, "fuzz cases run", RUN)


def report_count(request, what: str, counts: Counter) -> None:
    """Print a count past pytest's output capture (the issue asks how many cases ran)."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if counts and capture is not None:
        with capture.global_and_fixture_disabled():
            detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            print(f"\n{what}: {sum(counts.values())} ({detail})")


# --- seeds: small valid files -----------------------------------------------------------------------


def _image_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def _tiff_bytes(array: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, **options)
    return buf.getvalue()


def _png16() -> bytes:
    from ginr_cli.io.images import ImageMeta, write_image

    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ginr-fuzz-seed-{os.getpid()}.png"
    rgb = np.random.default_rng(0).random((6, 5, 3), dtype=np.float32)
    write_image(path, rgb, None, ImageMeta(format="PNG", mode="RGB;16", bit_depth=16, size=(6, 5)))
    data = path.read_bytes()
    path.unlink()
    return data


def _image_seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    palette = rgb.quantize(8)
    return {
        ".png": _image_bytes(rgb, "PNG", dpi=(72, 72)),
        ".jpg": _image_bytes(rgb, "JPEG", exif=exif.tobytes()),
        ".webp": _image_bytes(rgb.convert("RGBA"), "WEBP", lossless=True),
        ".bmp": _image_bytes(rgb, "BMP"),
        ".tif": _tiff_bytes(np.asarray(rgb), photometric="rgb", resolution=(72, 72)),
        "16.tif": _tiff_bytes(
            rng.integers(0, 65536, (6, 5, 4), dtype=np.uint16),
            photometric="rgb",
            extrasamples=("assocalpha",),
        ),  # fmt: skip
        "16.png": _png16(),
        "palette.png": _image_bytes(palette, "PNG", transparency=0),
        "cmyk.jpg": _image_bytes(rgb.convert("CMYK"), "JPEG"),
    }


def _nifti_bytes(data: np.ndarray) -> bytes:
    img = nib.Nifti1Image(data, np.diag([1.5, 1.5, 2.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    return img.to_bytes()


def _volume_seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    small = rng.integers(0, 1000, (4, 5, 3)).astype(np.int16)
    return {
        ".nii": _nifti_bytes(small),
        "4d.nii": _nifti_bytes(rng.random((3, 4, 2, 2), dtype=np.float32)),
        ".nii.gz": gzip.compress(_nifti_bytes(small), mtime=0),
        ".tif": _tiff_bytes(small.astype(np.uint16), imagej=True, metadata={"axes": "ZYX", "spacing": 2.0}),
        "ome.tif": _tiff_bytes(
            small.astype(np.float64), ome=True, photometric="minisblack", metadata={"axes": "ZYX"}
        ),
    }


def _latent_metadata() -> dict[str, str]:
    return {
        "ginr.format": "2",
        "ginr.codes": json.dumps({"shape": [1, 1, 4, 8], "dtype": "int8"}),
        "ginr.model": json.dumps({"name": "tiny", "fingerprint": "0123456789abcdef"}),
        "ginr.source": json.dumps(
            {
                "kind": "image",
                "shape": [12, 16],
                "channels": 3,
                "dtype": "uint8",
                "format": "PNG",
                "mode": "RGB",
                "bit_depth": 8,
                "name": "a.png",
            }
        ),
        "ginr.normalization": json.dumps({"lo": 0.0, "hi": 1.0}),
        "ginr.tiles": json.dumps({"shape": [12, 16], "tile": [12, 16], "overlap": 0}),
    }


def _latent_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> bytes:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ginr-fuzz-seed-{os.getpid()}.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    data = path.read_bytes()
    path.unlink()
    return data


IMAGE_SEEDS = _image_seeds()
VOLUME_SEEDS = _volume_seeds()


def _latent_tensors(shape=(1, 1, 4, 8), width: int = 8) -> dict[str, torch.Tensor]:
    stream, _ = pack_codes(torch.randint(-5, 6, shape))
    return {"codes": torch.frombuffer(bytearray(stream), dtype=torch.uint8), "steps": torch.ones(width)}


LATENT_SEED = _latent_bytes(_latent_tensors(), _latent_metadata())


def test_the_seeds_are_valid(tmp_path):
    for name, data in IMAGE_SEEDS.items():
        (tmp_path / f"seed{name}").write_bytes(data)
        read_image(tmp_path / f"seed{name}")
    for name, data in VOLUME_SEEDS.items():
        (tmp_path / f"seed{name}").write_bytes(data)
        read_volume(tmp_path / f"seed{name}")
    (tmp_path / "seed.safetensors").write_bytes(LATENT_SEED)
    load_latent(tmp_path / "seed.safetensors")


# --- mutations ------------------------------------------------------------------------------------------

# an edit: (kind, position, byte or length); positions favour headers (the first 512 bytes)
EDIT = st.tuples(
    st.sampled_from(["set", "insert", "delete", "truncate"]),
    st.one_of(st.integers(0, 511), st.integers(0, 1 << 20)),
    st.integers(0, 255),
)


def mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, position, value in edits:
        if not out:
            break
        i = position % len(out)
        if kind == "set":
            out[i] = value
        elif kind == "insert":
            out[i:i] = bytes([value]) * (1 + value % 8)
        elif kind == "delete":
            del out[i : i + 1 + value % 64]
        else:
            del out[i:]
    return bytes(out)


def _only_ginr_errors(read, path: Path) -> None:
    try:
        read(path)
    except GinrError as err:
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err), str(err)


# --- images ---------------------------------------------------------------------------------------------


def _read_image(path: Path) -> None:
    read_image(path, max_pixels=MAX_PIXELS)


@FUZZ
@given(data=st.binary(max_size=2048), ext=st.sampled_from([".png", ".jpg", ".tif", ".webp", ".bmp"]))
def test_random_bytes_as_an_image(tmp_path, data, ext):
    RUN["image: random bytes"] += 1
    path = tmp_path / f"random{ext}"
    path.write_bytes(data)
    _only_ginr_errors(_read_image, path)


@FUZZ
@given(seed=st.sampled_from(sorted(IMAGE_SEEDS)), edits=st.lists(EDIT, min_size=1, max_size=6))
def test_mutated_images(tmp_path, seed, edits):
    RUN["image: mutated"] += 1
    path = tmp_path / f"mutated{seed}"
    path.write_bytes(mutate(IMAGE_SEEDS[seed], edits))
    _only_ginr_errors(_read_image, path)


# --- volumes --------------------------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=2048), ext=st.sampled_from([".nii", ".nii.gz", ".tif"]))
def test_random_bytes_as_a_volume(tmp_path, data, ext):
    RUN["volume: random bytes"] += 1
    path = tmp_path / f"random{ext}"
    path.write_bytes(data)
    _only_ginr_errors(read_volume, path)


@FUZZ
@given(
    seed=st.sampled_from(sorted(VOLUME_SEEDS)),
    edits=st.lists(EDIT, min_size=1, max_size=6),
    regzip=st.booleans(),
)
def test_mutated_volumes(tmp_path, seed, edits, regzip):
    RUN["volume: mutated"] += 1
    data = VOLUME_SEEDS[seed]
    name = f"mutated{seed}"
    if seed.endswith(".gz") and regzip:  # mutate the header inside, not the compressed stream
        data = gzip.compress(mutate(gzip.decompress(data), edits), mtime=0)
    else:
        data = mutate(data, edits)
    path = tmp_path / name
    path.write_bytes(data)
    _only_ginr_errors(read_volume, path)


# --- latents --------------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 20) | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
META = _latent_metadata()
FIELDS = {  # plausible keys, so the values reach the checks behind the key lookups
    "ginr.model": ["name", "fingerprint"],
    "ginr.source": ["kind", "shape", "channels", "dtype"],
    "ginr.normalization": ["lo", "hi"],
    "ginr.tiles": ["shape", "tile", "overlap"],
    "ginr.codes": ["shape", "dtype"],
}


@st.composite
def metadata_value(draw, key: str, base: dict[str, str]) -> str | None:
    """base[key], None (the key is missing), text, any JSON, or base[key] with some fields set to any JSON."""
    choice = draw(st.sampled_from(["keep", "drop", "text", "json", "fields", "fields"]))
    if choice == "keep":
        return base[key]
    if choice == "drop":
        return None
    if choice == "text":
        return draw(st.text(max_size=40))
    if choice == "json" or key not in FIELDS:
        return json.dumps(draw(JSON))
    value = json.loads(base[key])
    for field in draw(st.lists(st.sampled_from(FIELDS[key] + sorted(value)), max_size=3)):
        value[field] = draw(JSON)
    return json.dumps(value)


@st.composite
def metadata(draw, base: dict[str, str]) -> dict[str, str]:
    """Latent metadata (str -> str): `base` with one or two of its values missing or replaced."""
    changed = draw(st.sets(st.sampled_from(sorted(base)), min_size=1, max_size=2))
    values = {k: draw(metadata_value(k, base)) if k in changed else base[k] for k in base}
    return {k: v for k, v in values.items() if v is not None}


TENSORS = st.sampled_from(
    [
        _latent_tensors(),
        _latent_tensors((1, 1, 4, 7), 7),
        _latent_tensors((2, 3, 4, 8)),
        _latent_tensors((0, 1, 4, 8)),
        {"codes": torch.zeros(16, dtype=torch.uint8), "steps": torch.ones(8)},
        {"codes": torch.zeros(4, 8), "steps": torch.ones(8, dtype=torch.bfloat16)},
        {"latents": torch.zeros(1, 1, 4, 8)},
        {**_latent_tensors(), "more": torch.zeros(1)},
    ]
)


@FUZZ
@given(meta=metadata(META), tensors=TENSORS)
def test_latents_with_any_metadata(tmp_path, meta, tensors):
    RUN["latent: metadata"] += 1
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(_latent_bytes(tensors, meta))
    _only_ginr_errors(read_source_metadata, path)
    _only_ginr_errors(lambda p: load_latent(p, "0123456789abcdef", (4, 8)), path)


@FUZZ
@given(edits=st.lists(EDIT, min_size=1, max_size=6))
def test_mutated_latents(tmp_path, edits):
    RUN["latent: mutated"] += 1
    path = tmp_path / "mutated.safetensors"
    path.write_bytes(mutate(LATENT_SEED, edits))
    _only_ginr_errors(read_source_metadata, path)
    _only_ginr_errors(load_latent, path)


@FUZZ
@given(data=st.binary(max_size=1024), header_size=st.one_of(st.none(), st.integers(0, 2**64 - 1)))
def test_random_bytes_as_a_latent(tmp_path, data, header_size):
    RUN["latent: random bytes"] += 1
    path = tmp_path / "random.safetensors"
    path.write_bytes(data if header_size is None else struct.pack("<Q", header_size) + data)
    _only_ginr_errors(read_source_metadata, path)
    _only_ginr_errors(load_latent, path)
