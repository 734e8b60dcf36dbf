"""Round trips and failure modes of ginr_cli.io.images (Pillow, tifffile, numpy; CPU, small files)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageOps

from ginr_cli.errors import GinrError
from ginr_cli.io.images import (
    ImageMeta,
    image_extensions,
    is_image_path,
    read_image,
    write_image,
)
from tests.conftest import SET5_X2

PHOTO = SET5_X2 / "img_001_SRF_2_HR.png"
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
RNG = np.random.default_rng(0)


def u8(*shape):
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def u16(*shape):
    return RNG.integers(0, 65536, shape, dtype=np.uint16)


def stacked(data):
    """The read image as integers (h, w, c [+ alpha]) at its bit depth."""
    peak = 65535 if data.meta.bit_depth == 16 else 255
    planes = [data.color] + ([data.alpha[..., None]] if data.alpha is not None else [])
    return np.rint(np.concatenate(planes, axis=2) * peak).astype(np.int64)


def round_trip(src: Path, dst: Path, **kw):
    data = read_image(src)
    write_image(dst, data.color, data.alpha, data.meta, **kw)
    return data, read_image(dst)


def palette_image(transparent: bool) -> Image.Image:
    rng = np.random.default_rng(1)  # the same palette image every call
    im = Image.fromarray(rng.integers(0, 16, (9, 7), dtype=np.uint8), "L").convert("P")
    im.putpalette(list(rng.integers(0, 256, 16 * 3, dtype=np.uint8)))
    if transparent:
        im.info["transparency"] = bytes([0, 128] + [255] * 14)
    return im


def _pil(arr):
    return Image.fromarray(arr)


# Source images: mode -> (writer(path, format), expected integers (h, w, c [+ alpha]), bit depth).


L8, LA8, RGB8, RGBA8 = u8(9, 7), u8(9, 7, 2), u8(9, 7, 3), u8(9, 7, 4)
G16, LA16, RGB16, RGBA16 = u16(9, 7), u16(9, 7, 2), u16(9, 7, 3), u16(9, 7, 4)
SOURCES = {
    "L": (lambda p, f: _pil(L8).save(p, f), L8[..., None], 8),
    "LA": (lambda p, f: _pil(LA8).save(p, f), LA8, 8),
    "RGB": (lambda p, f: _pil(RGB8).save(p, f), RGB8, 8),
    "RGBA": (lambda p, f: _pil(RGBA8).save(p, f), RGBA8, 8),
    "P": (lambda p, f: palette_image(False).save(p, f), np.asarray(palette_image(False).convert("RGB")), 8),
    "PA": (lambda p, f: palette_image(True).save(p, f), np.asarray(palette_image(True).convert("RGBA")), 8),
    "I;16": (lambda p, f: _pil(G16).save(p, f), G16[..., None], 16),
}
LOSSLESS = [("PNG", m) for m in ("L", "LA", "RGB", "RGBA", "P", "PA", "I;16")]
LOSSLESS += [("TIFF", m) for m in ("L", "LA", "RGB", "RGBA", "P", "I;16")]
LOSSLESS += [("BMP", m) for m in ("L", "RGB", "P")] + [("WEBP", m) for m in ("RGB", "RGBA")]


@pytest.mark.parametrize("fmt,mode", LOSSLESS)
def test_lossless_round_trip_is_exact(tmp_path, fmt, mode):
    write, expected, bits = SOURCES[mode]
    ext = {"PNG": "png", "TIFF": "tif", "BMP": "bmp", "WEBP": "webp"}[fmt]
    src, dst = tmp_path / f"src.{ext}", tmp_path / f"out.{ext}"
    if fmt == "WEBP":
        _pil(expected).save(src, "WEBP", lossless=True, exact=True)
    else:
        write(src, fmt)
    data, back = round_trip(src, dst)
    assert data.meta.bit_depth == back.meta.bit_depth == bits
    assert data.color.dtype == np.float32 and data.color.shape[2] in (1, 3)
    np.testing.assert_array_equal(stacked(data), expected)
    np.testing.assert_array_equal(stacked(back), expected)
    assert (data.alpha is not None) == (expected.shape[2] in (2, 4))


@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("arr", [LA16, RGB16, RGBA16], ids=["LA16", "RGB16", "RGBA16"])
def test_16bit_colour_round_trip_is_exact(tmp_path, ext, arr):
    # Pillow decodes these to 8 bits; they must stay 16-bit, sample for sample.
    src = tmp_path / f"src.{ext}"
    if ext == "tif":
        extra = ("unassalpha",) if arr.shape[2] in (2, 4) else ()
        tifffile.imwrite(
            src,
            arr,
            photometric="rgb" if arr.shape[2] >= 3 else "minisblack",
            planarconfig="contig",
            extrasamples=extra,
        )
    else:
        meta = ImageMeta(bit_depth=16, size=arr.shape[:2])
        c = 1 if arr.shape[2] == 2 else 3
        alpha = arr[..., c] / 65535 if arr.shape[2] in (2, 4) else None
        write_image(src, arr[..., :c] / 65535, alpha, meta)
    data, back = round_trip(src, tmp_path / f"out.{ext}")
    assert data.meta.bit_depth == back.meta.bit_depth == 16
    np.testing.assert_array_equal(stacked(data), arr)
    np.testing.assert_array_equal(stacked(back), arr)


def test_planar_and_premultiplied_tiff(tmp_path):
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(planar, np.moveaxis(RGB16, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(stacked(read_image(planar)), RGB16)
    premul = tmp_path / "premul.tif"
    rgba = np.dstack([RGB16 // 2, np.full((9, 7), 32768, np.uint16)])
    tifffile.imwrite(premul, rgba, photometric="rgb", extrasamples=("assocalpha",))
    data = read_image(premul)
    np.testing.assert_allclose(data.color, RGB16 / 65535, atol=2 / 65535)  # colour divided by alpha
    np.testing.assert_allclose(data.alpha, 32768 / 65535)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), c=st.sampled_from([1, 2, 3, 4]), seed=st.integers(0, 99))
def test_png16_writer_any_shape(tmp_path_factory, h, w, c, seed):
    arr = np.random.default_rng(seed).integers(0, 65536, (h, w, c), dtype=np.uint16)
    path = tmp_path_factory.mktemp("png16") / "x.png"
    k = 1 if c <= 2 else 3
    write_image(
        path,
        arr[..., :k] / 65535,
        arr[..., k] / 65535 if c in (2, 4) else None,
        ImageMeta(bit_depth=16, size=(h, w)),
    )
    np.testing.assert_array_equal(stacked(read_image(path)), arr)


def test_16bit_with_small_values_stays_16bit(tmp_path):
    low = np.arange(63, dtype=np.uint16).reshape(9, 7) * 4  # all < 256
    for ext in ("png", "tif"):
        src = tmp_path / f"low.{ext}"
        Image.fromarray(low).save(src)
        data, back = round_trip(src, tmp_path / f"out.{ext}")
        assert data.meta.bit_depth == back.meta.bit_depth == 16
        with Image.open(tmp_path / f"out.{ext}") as im:
            assert im.mode.startswith("I;16")
            np.testing.assert_array_equal(np.asarray(im), low)


def test_real_photo_png_exact_and_jpeg_close(tmp_path):
    with Image.open(PHOTO) as im:
        im.crop((100, 100, 196, 164)).save(tmp_path / "photo.png")
    data, back = round_trip(tmp_path / "photo.png", tmp_path / "photo_out.png")
    np.testing.assert_array_equal(back.color, data.color)
    _, jpeg = round_trip(tmp_path / "photo.png", tmp_path / "photo.jpg")
    assert jpeg.meta.format == "JPEG" and jpeg.color.shape == data.color.shape
    assert np.abs(jpeg.color - data.color).mean() < 2 / 255
    with Image.open(tmp_path / "photo.jpg") as im:
        assert im.mode == "RGB" and im.layers == 3


def test_jpeg_round_trip_within_tolerance(tmp_path):
    with Image.open(PHOTO) as im:
        im.crop((0, 0, 64, 48)).save(tmp_path / "a.jpg", quality=95)
    data, back = round_trip(tmp_path / "a.jpg", tmp_path / "b.jpg")
    assert np.abs(back.color - data.color).mean() < 2 / 255


def test_exif_orientation_6_jpeg(tmp_path):
    src, dst = tmp_path / "rot.jpg", tmp_path / "out.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "ginr-test-camera"  # Make: must survive
    with Image.open(PHOTO) as im:
        im.crop((0, 0, 40, 24)).save(src, exif=exif.tobytes(), dpi=(72, 96))
    data = read_image(src)
    assert data.color.shape == (40, 24, 3) and data.meta.size == (40, 24)
    assert data.meta.dpi == (96, 72)  # rows and columns swapped
    with Image.open(src) as im:
        np.testing.assert_array_equal(stacked(data), np.asarray(ImageOps.exif_transpose(im)))
    write_image(dst, data.color, None, data.meta)
    with Image.open(dst) as im:
        assert im.size == (24, 40)
        assert im.getexif().get(0x0112, 1) == 1
        assert im.getexif()[0x010F] == "ginr-test-camera"
    assert read_image(dst).color.shape == (40, 24, 3)  # not rotated twice


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    src = tmp_path / "o.png"
    Image.fromarray(RGB8).save(src, exif=exif.tobytes())
    with Image.open(src) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(stacked(read_image(src)), expected)


def pillow_oriented(arr, orientation):
    """ImageOps.exif_transpose of each channel of an in-memory (h, w, c) array."""
    planes = []
    for ch in np.moveaxis(arr, -1, 0):
        im = Image.fromarray(ch)
        im.getexif()[0x0112] = orientation
        planes.append(np.asarray(ImageOps.exif_transpose(im)))
    return np.stack(planes, axis=-1)


TIFF_ORIENTED = {  # Pillow 13 garbles the uncompressed single-channel ones at orientations 5-8
    "L": lambda p, a, o: Image.fromarray(a[..., 0]).save(p, exif=_orientation_exif(o)),
    "L-lzw": lambda p, a, o: Image.fromarray(a[..., 0]).save(
        p, compression="tiff_lzw", exif=_orientation_exif(o)
    ),
    "I;16": lambda p, a, o: tifffile.imwrite(p, a[..., 0], extratags=[(0x0112, 3, 1, o, True)]),
    "RGB16": lambda p, a, o: tifffile.imwrite(p, a, photometric="rgb", extratags=[(0x0112, 3, 1, o, True)]),
}


def _orientation_exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", TIFF_ORIENTED)
def test_tiff_orientation(tmp_path, kind, orientation):
    arr = {"L": L8[..., None], "L-lzw": L8[..., None], "I;16": G16[..., None], "RGB16": RGB16}[kind]
    src = tmp_path / "o.tif"
    TIFF_ORIENTED[kind](src, arr, orientation)
    data = read_image(src)
    np.testing.assert_array_equal(stacked(data), pillow_oriented(arr, orientation))
    write_image(tmp_path / "out.tif", data.color, None, data.meta)
    np.testing.assert_array_equal(stacked(read_image(tmp_path / "out.tif")), stacked(data))


@pytest.mark.parametrize("ext", ["png", "jpg", "tif", "webp"])
def test_icc_profile_kept(tmp_path, ext):
    src = tmp_path / f"icc.{ext}"
    Image.fromarray(RGB8).save(src, icc_profile=SRGB)
    data, _ = round_trip(src, tmp_path / f"out.{ext}")
    assert data.meta.icc_profile == SRGB
    with Image.open(tmp_path / f"out.{ext}") as im:
        assert im.info["icc_profile"] == SRGB


def test_icc_kept_for_16bit(tmp_path):
    src = tmp_path / "icc16.tif"
    tifffile.imwrite(src, RGB16, photometric="rgb", iccprofile=SRGB)
    for ext in ("png", "tif"):
        data, back = round_trip(src, tmp_path / f"out.{ext}")
        assert data.meta.icc_profile == back.meta.icc_profile == SRGB


@pytest.mark.parametrize("ext", ["png", "jpg", "tif", "bmp"])
def test_dpi_multiplied_by_scale(tmp_path, ext):
    src = tmp_path / f"dpi.{ext}"
    Image.fromarray(RGB8).save(src, dpi=(72, 100))
    data = read_image(src)
    assert data.meta.dpi == pytest.approx((72, 100), abs=0.1)
    big = np.repeat(np.repeat(data.color, 2, axis=0), 3, axis=1)  # sy = 2, sx = 3
    write_image(tmp_path / f"inferred.{ext}", big, None, data.meta)
    write_image(tmp_path / f"explicit.{ext}", data.color, None, data.meta, scale=(2, 3))
    for name in ("inferred", "explicit"):
        assert read_image(tmp_path / f"{name}.{ext}").meta.dpi == pytest.approx((216, 200), abs=0.6)


def test_dpi_and_exif_resolution_for_16bit_and_exif_tags(tmp_path):
    exif = Image.Exif()
    exif[0x011A], exif[0x011B], exif[0x0128] = 300, 300, 2
    exif.get_ifd(0x8769)[0xA002] = 7  # PixelXDimension
    exif.get_ifd(0x8769)[0x9003] = "2024:01:02 03:04:05"  # DateTimeOriginal
    src = tmp_path / "tags.jpg"
    Image.fromarray(RGB8).save(src, exif=exif.tobytes(), dpi=(300, 300))
    data = read_image(src)
    write_image(tmp_path / "x2.png", np.repeat(np.repeat(data.color, 2, 0), 2, 1), None, data.meta)
    with Image.open(tmp_path / "x2.png") as im:
        out = im.getexif()
        assert float(out[0x011A]) == pytest.approx(600)
        assert out.get_ifd(0x8769)[0xA002] == 14
        assert out.get_ifd(0x8769)[0x9003] == "2024:01:02 03:04:05"
    write_image(tmp_path / "x2.tif", data.color, None, data.meta, scale=2)  # TIFF: no EXIF, DPI yes
    assert read_image(tmp_path / "x2.tif").meta.dpi == pytest.approx((600, 600))
    plain = ImageMeta(size=(9, 7), exif=Image.Exif().tobytes(), dpi=(72, 72))  # no resolution tags
    write_image(tmp_path / "plain.webp", RGB8 / 255, None, plain)
    with Image.open(tmp_path / "plain.webp") as im:
        assert 0x8769 not in im.getexif() and 0x011A not in im.getexif()
    g16 = tmp_path / "dpi16.tif"
    tifffile.imwrite(g16, RGB16, photometric="rgb", resolution=(120, 120), resolutionunit="INCH")
    d16 = read_image(g16)
    assert d16.meta.dpi == pytest.approx((120, 120))
    write_image(tmp_path / "dpi16.png", d16.color, None, d16.meta, scale=2)
    assert read_image(tmp_path / "dpi16.png").meta.dpi == pytest.approx((240, 240), abs=0.1)


@pytest.mark.parametrize("ext", ["png", "webp", "tif"])
def test_alpha_kept_separately_with_colour_under_transparency(tmp_path, ext):
    rgba = RGBA8.copy()
    rgba[:3, :, 3] = 0  # fully transparent rows keep their colour
    src = tmp_path / f"a.{ext}"
    Image.fromarray(rgba).save(src, **({"lossless": True, "exact": True} if ext == "webp" else {}))
    data, back = round_trip(src, tmp_path / f"out.{ext}")
    assert data.color.shape == (9, 7, 3) and data.alpha.shape == (9, 7)
    np.testing.assert_array_equal(stacked(back), rgba)


def test_colour_key_transparency_becomes_alpha(tmp_path):
    src = tmp_path / "key.png"
    gray = L8.copy()
    gray[0, 0] = 17
    Image.fromarray(gray).save(src, transparency=17)
    data = read_image(src)
    assert data.color.shape == (9, 7, 1)
    np.testing.assert_array_equal(data.alpha == 0, gray == 17)


def test_cmyk_reads_as_rgb_and_writes_rgb(tmp_path):
    src = tmp_path / "cmyk.jpg"
    Image.fromarray(u8(9, 7, 4), "CMYK").save(src, quality=95)
    data = read_image(src)
    assert data.meta.mode == "CMYK" and data.color.shape == (9, 7, 3) and data.meta.icc_profile is None
    with Image.open(src) as im:
        np.testing.assert_array_equal(stacked(data), np.asarray(im.convert("RGB")))
    write_image(tmp_path / "out.jpg", data.color, None, data.meta)
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.mode == "RGB"


def test_cmyk_with_unusable_profile_warns_and_drops_it(tmp_path, caplog):
    src = tmp_path / "cmyk.tif"
    Image.fromarray(u8(9, 7, 4), "CMYK").save(src, icc_profile=SRGB)  # an RGB profile on CMYK
    data = read_image(src)
    assert data.color.shape == (9, 7, 3) and data.meta.icc_profile is None
    assert "CMYK" in caplog.text


@pytest.mark.parametrize("ext", ["png", "tif", "bmp"])
def test_bilevel_reads_and_writes_as_l(tmp_path, ext):
    bits = u8(9, 7) > 127
    src = tmp_path / f"bw.{ext}"
    Image.fromarray(bits).save(src)
    data, _ = round_trip(src, tmp_path / f"out.{ext}")
    assert data.meta.mode == "1" and data.meta.bit_depth == 8
    np.testing.assert_array_equal(stacked(data)[..., 0], bits * 255)
    with Image.open(tmp_path / f"out.{ext}") as im:
        assert im.mode == "L"


def test_quantisation_rounds_and_clips(tmp_path):
    color = np.array([[-0.5, np.nan, 0.4 / 255, 0.6 / 255, 1.7]], np.float32)[..., None]
    meta = ImageMeta(size=(1, 5))
    write_image(tmp_path / "q.png", color, None, meta)
    with Image.open(tmp_path / "q.png") as im:
        assert im.mode == "L" and np.asarray(im).tolist() == [[0, 0, 0, 1, 255]]


def test_format_override_and_extensions(tmp_path):
    meta = ImageMeta(size=(9, 7))
    write_image(tmp_path / "x.data", RGB8 / 255, None, meta, format="png")
    with Image.open(tmp_path / "x.data") as im:
        assert im.format == "PNG"
    with pytest.raises(GinrError, match="unknown image extension"):
        write_image(tmp_path / "x.xcf", RGB8 / 255, None, meta)
    assert not list(tmp_path.glob(".*.part"))
    assert ".png" in image_extensions() and ".tiff" in image_extensions() and ".gif" in image_extensions()
    assert is_image_path("a/B.JPG") and is_image_path("c.webp") and not is_image_path("d.txt")
    assert not is_image_path(".out.png.x1y2.part")


def test_alpha_to_jpeg_or_bmp_is_refused(tmp_path):
    meta = ImageMeta(size=(9, 7))
    for ext in ("jpg", "bmp"):
        with pytest.raises(GinrError, match="--ext png") as err:
            write_image(tmp_path / f"a.{ext}", RGB8 / 255, RGBA8[..., 3] / 255, meta)
        assert f"a.{ext}" in str(err.value)
        assert not (tmp_path / f"a.{ext}").exists()


@pytest.mark.parametrize("ext", ["jpg", "webp", "bmp"])
def test_16bit_to_8bit_only_format_is_refused(tmp_path, ext):
    with pytest.raises(GinrError, match="16-bit") as err:
        write_image(tmp_path / f"g.{ext}", G16[..., None] / 65535, None, ImageMeta(bit_depth=16, size=(9, 7)))
    assert f"g.{ext}" in str(err.value)


def _truncated_png(p):
    buf = io.BytesIO()
    Image.fromarray(u8(64, 64, 3)).save(buf, "PNG")
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _truncated_jpeg(p):
    buf = io.BytesIO()
    Image.fromarray(u8(64, 64, 3)).save(buf, "JPEG")
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _truncated_tiff16(p):
    tifffile.imwrite(p, u16(64, 64, 3), photometric="rgb")
    p.write_bytes(p.read_bytes()[:3000])


BAD = {
    "zero.png": (lambda p: p.write_bytes(b""), "empty"),
    "text.png": (lambda p: p.write_text("not an image\n"), "not a PNG"),
    "trunc.png": (_truncated_png, "truncated"),
    "trunc.jpg": (_truncated_jpeg, "truncated"),
    "trunc16.tif": (_truncated_tiff16, "truncated"),
    "float.tif": (lambda p: tifffile.imwrite(p, np.zeros((4, 4), np.float32)), "unsupported"),
    "int32.tif": (lambda p: tifffile.imwrite(p, np.zeros((4, 4), np.int32)), "unsupported"),
    "lab.tif": (lambda p: Image.new("LAB", (4, 4)).save(p), "unsupported"),
    "cmyk16.tif": (
        lambda p: tifffile.imwrite(p, np.zeros((4, 4, 4), np.uint16), photometric="separated"),
        "not supported",
    ),
    "missing.png": (lambda p: None, "no such file"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_gives_one_line_ginr_error(tmp_path, name):
    make, words = BAD[name]
    make(tmp_path / name)
    with pytest.raises(GinrError) as err:
        read_image(tmp_path / name)
    text = str(err.value)
    assert name in text and words in text and "\n" not in text


def test_decompression_bomb(tmp_path):
    src = tmp_path / "bomb.png"
    Image.new("L", (200, 100)).save(src)
    with pytest.raises(GinrError, match="--max-pixels 20000") as err:
        read_image(src, max_pixels=19_999)
    assert "bomb.png" in str(err.value)
    assert read_image(src, max_pixels=20_000).color.shape == (100, 200, 1)
    big16 = tmp_path / "bomb16.tif"
    tifffile.imwrite(big16, np.zeros((100, 200, 3), np.uint16), photometric="rgb")
    with pytest.raises(GinrError, match="--max-pixels"):
        read_image(big16, max_pixels=100)


def test_pillow_limit_does_not_apply_but_is_restored(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # ours decides, Pillow's stays as it was
    src = tmp_path / "p.png"
    Image.new("L", (30, 30)).save(src)
    assert read_image(src, max_pixels=None).color.shape == (30, 30, 1)
    assert Image.MAX_IMAGE_PIXELS == 100
