import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ginr_cli.engine.metrics import image_scores, psnr, rgb_to_y, ssim, volume_scores
from tests.conftest import SET5_X2

SET5 = SET5_X2


def test_psnr_of_a_known_error():
    truth = np.zeros((10, 10))
    assert psnr(truth + 0.1, truth, 1.0) == pytest.approx(20.0)
    assert psnr(truth, truth, 1.0) == math.inf


def test_ssim_is_one_for_equal_images_and_drops_with_noise():
    rng = np.random.default_rng(0)
    image = rng.random((32, 32))
    assert ssim(image, image, 1.0) == pytest.approx(1.0)
    assert ssim(image + rng.normal(0, 0.2, image.shape), image, 1.0) < 0.8
    volume = rng.random((16, 16, 16))
    assert volume_scores(volume, volume)[1] == pytest.approx(1.0)


def test_y_channel_matches_matlab_range():
    assert rgb_to_y(np.array([0.0, 0.0, 0.0])) == pytest.approx(16.0)
    assert rgb_to_y(np.array([1.0, 1.0, 1.0])) == pytest.approx(235.0)


@pytest.mark.skipif(not SET5.is_dir(), reason="needs ../shared/data/sr-benchmarks")
def test_bicubic_on_set5_x2_is_close_to_the_published_figure():
    # Published bicubic PSNR on Set5 x2 is 33.66 dB (MATLAB imresize); Pillow's bicubic is close to it.
    scores = []
    for hr_path in sorted(SET5.glob("*_HR.png")):
        hr = Image.open(hr_path).convert("RGB")
        lr = Image.open(str(hr_path).replace("_HR", "_LR")).convert("RGB")
        up = np.asarray(lr.resize(hr.size, Image.BICUBIC), dtype=np.float64) / 255
        scores.append(image_scores(up, np.asarray(hr, dtype=np.float64) / 255, shave=2)[0])
    assert len(scores) == 5
    assert abs(np.mean(scores) - 33.66) < 0.4


def _reference_ssim(pred: np.ndarray, truth: np.ndarray, data_range: float, **options) -> float:
    """scikit-image's SSIM as the literature defines it (Wang et al. 2004): Gaussian window, sigma 1.5."""
    return structural_similarity(
        pred,
        truth,
        data_range=data_range,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        **options,
    )


@pytest.mark.parametrize("shape", [(40, 37), (11, 11), (20, 18, 16), (12, 30, 11)])
@pytest.mark.parametrize("data_range", [1.0, 255.0, 3000.0])
def test_ssim_equals_scikit_image_in_2d_and_3d(shape, data_range):
    """Borders: ours averages the SSIM map only where the 11-wide window lies inside the array; scikit-image
    pads (reflect) and then crops the same 5-sample margin before averaging, so the two agree exactly."""
    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    truth = rng.random(shape) * data_range
    smooth = (truth + np.roll(truth, 1, axis=0) + np.roll(truth, 1, axis=-1)) / 3  # correlated, as a decode
    for pred in (smooth, np.clip(truth + rng.normal(0, 0.1 * data_range, shape), 0, data_range)):
        assert ssim(pred, truth, data_range) == pytest.approx(
            _reference_ssim(pred, truth, data_range), abs=1e-9
        )


@pytest.mark.parametrize(
    ("shape", "win_size"),
    [((40, 44, 6), 5), ((40, 44, 1), 1), ((12, 7), 7), ((3, 30), 3), ((20, 2, 15), 1), ((10, 10, 10), 9)],
)
def test_ssim_with_an_axis_shorter_than_the_window_is_scikit_images_with_the_window_that_fits(
    shape, win_size
):
    """A 6-slice volume once crashed `ginr eval` (a window of 11 does not fit in 6): it is scored as
    scikit-image scores it with the largest odd `win_size` that fits, which is what that library asks for."""
    rng = np.random.default_rng(sum(shape))
    truth = rng.random(shape) * 100
    pred = truth + rng.normal(0, 10, shape)
    assert ssim(pred, truth, 100.0) == pytest.approx(
        _reference_ssim(pred, truth, 100.0, win_size=win_size), abs=1e-9
    )
    assert ssim(truth, truth, 100.0) == pytest.approx(1.0)


def test_image_and_volume_scores_equal_scikit_image_on_what_they_measure():
    rng = np.random.default_rng(5)
    truth = rng.random((30, 34, 3))
    pred = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1)
    p, t = rgb_to_y(pred)[2:-2, 2:-2], rgb_to_y(truth)[2:-2, 2:-2]  # Y in [16, 235], shave 2, range 255
    assert image_scores(pred, truth, shave=2) == pytest.approx(
        (peak_signal_noise_ratio(t, p, data_range=255.0), _reference_ssim(p, t, 255.0)), abs=1e-9
    )
    volume = rng.random((14, 15, 13)) * 800 - 100
    noisy = volume + rng.normal(0, 20, volume.shape)
    data_range = float(volume.max() - volume.min())
    assert volume_scores(noisy, volume) == pytest.approx(
        (
            peak_signal_noise_ratio(volume, noisy, data_range=data_range),
            _reference_ssim(noisy, volume, data_range),
        ),
        abs=1e-9,
    )


def test_the_package_has_one_psnr():
    """Training had its own PSNR; every score now comes from `metrics.psnr`, the only log10 in the package."""
    package = Path(__file__).resolve().parents[2] / "ginr_cli"
    users = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if "log10" in p.read_text())
    assert users == ["engine/metrics.py"]
