"""Rate-distortion measurement: the classic codecs' points and comparisons at the same size."""

import gzip
import os

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from ginr_cli.engine import rate_distortion as rd
from tests.conftest import SET5_X2

ANATOMICAL = os.path.join(os.path.dirname(nib.__file__), "tests", "data", "anatomical.nii")


def test_a_curve_is_read_linearly_between_its_points_and_not_beyond():
    points = [rd.RatePoint("a", "jpeg", str(q), b, p, 0.9) for q, b, p in ((10, 0.5, 30.0), (50, 1.5, 36.0))]
    assert rd.at_bits(points, 1.0) == pytest.approx(33.0)
    assert rd.at_bits(points, 0.5) == pytest.approx(30.0)
    assert rd.at_bits(points, 0.4) is None and rd.at_bits(points, 2.0) is None


def test_image_baselines_on_a_real_photo():
    with Image.open(SET5_X2 / "img_003_SRF_2_HR.png") as im:
        rgb = np.asarray(im.convert("RGB"))[:96, :128]
    points = rd.image_baselines("butterfly", rgb)
    for method in ("jpeg", "webp"):
        curve = [p for p in points if p.method == method]
        assert [p.setting for p in curve] == [str(q) for q in rd.LADDER]
        bits = [p.bits for p in curve]
        assert bits == sorted(bits) and bits[0] < 1 < bits[-1]
        assert curve[-1].psnr > curve[0].psnr + 10
    png = next(p for p in points if p.method == "png")
    assert png.psnr == float("inf") and png.bits > next(p for p in points if p.method == "jpeg").bits
    down = next(p for p in points if p.method == "down2-bicubic")
    assert 15 < down.psnr < 40 and 0 < down.bits < png.bits


def test_volume_baselines_on_a_real_scan():
    volume = np.asarray(nib.load(ANATOMICAL).dataobj).astype(np.float64)
    points = rd.volume_baselines("anatomical", volume, np.dtype(np.int16))
    lossless = next(p for p in points if p.method == "gzip")
    assert lossless.bits == pytest.approx(
        8 * len(gzip.compress(volume.astype(np.int16).tobytes(), 9)) / volume.size
    )
    slices = [p for p in points if p.method == "slice-jpeg"]
    assert [p.bits for p in slices] == sorted(p.bits for p in slices)
    assert slices[-1].psnr > slices[0].psnr
    spline = next(p for p in points if p.method == "down2-spline")
    assert 10 < spline.psnr < 60 and spline.bits < lossless.bits


def test_the_summary_reads_each_baseline_at_ginrs_bits_item_by_item():
    points = [
        rd.RatePoint("a", "ginr", "3", 1.0, 34.0, 0.9),
        rd.RatePoint("b", "ginr", "3", 2.0, 30.0, 0.8),
        rd.RatePoint("a", "jpeg", "10", 0.5, 30.0, 0.8),
        rd.RatePoint("a", "jpeg", "90", 1.5, 36.0, 0.9),
        rd.RatePoint("b", "jpeg", "10", 1.0, 28.0, 0.8),
        rd.RatePoint("b", "jpeg", "90", 3.0, 32.0, 0.9),
        rd.RatePoint("a", "png", "", 4.0, float("inf"), 1.0),
        rd.RatePoint("b", "png", "", 6.0, float("inf"), 1.0),
    ]
    (row,) = rd.summary(points)
    assert row["quality"] == 3 and row["n"] == 2
    assert row["bits"] == pytest.approx(1.5) and row["psnr"] == pytest.approx(32.0)
    assert row["jpeg_psnr"] == pytest.approx((33.0 + 30.0) / 2)
    assert row["png_bits"] == pytest.approx(5.0) and "png_psnr" not in row
