import math

import numpy as np
import pytest
from PIL import Image

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
