"""Image and volume quality metrics, computed the way the super-resolution literature does.

Images (EDSR, LIIF): PSNR on the Y channel of YCbCr (ITU-R BT.601, as MATLAB's rgb2ycbcr), values in
[0, 255], with `shave` pixels cut from each border; SSIM with an 11-wide Gaussian window, sigma 1.5.
Volumes (ArSSR): PSNR and SSIM with the data range of the ground truth.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) in [0, 1] -> Y (h, w) in [16, 235] (BT.601, MATLAB rgb2ycbcr)."""
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def _luma(image: np.ndarray) -> np.ndarray:
    """(h, w, c) in [0, 1] -> luma in [0, 255]: Y for colour, the gray values for one channel."""
    return rgb_to_y(image) if image.shape[-1] == 3 else image[..., 0] * 255.0


def _shave(a: np.ndarray, shave: int) -> np.ndarray:
    return a[shave:-shave, shave:-shave] if shave > 0 else a


def psnr(pred: np.ndarray, truth: np.ndarray, data_range: float) -> float:
    """The package's one PSNR (dB): infinite for equal arrays."""
    mse = float(np.mean((pred.astype(np.float64) - truth.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def ssim(pred: np.ndarray, truth: np.ndarray, data_range: float, sigma: float = 1.5, size: int = 11) -> float:
    """Mean SSIM over 2D or 3D arrays with a separable Gaussian window (Wang et al. 2004: C1 = (0.01 L)^2,
    C2 = (0.03 L)^2, population variances), scikit-image's `structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)` to rounding (tests/engine/test_metrics.py). Borders: the map
    is averaged only where the window lies wholly inside the array. Where an axis is shorter than `size`
    (a 6-slice volume), as scikit-image with `win_size` the largest odd length that fits: the margin
    cropped is (win_size - 1) / 2, and the Gaussian's reach beyond it reflects the array at its edges."""
    win = min(size, *((n - 1) | 1 for n in pred.shape))  # the largest odd length that fits every axis
    reach = (size - 1) // 2 - (win - 1) // 2  # samples the window reaches beyond the array: 0 when win = size
    x, y = (np.pad(a, reach, mode="symmetric") if reach else a for a in (pred, truth))
    x = torch.from_numpy(x.astype(np.float64))[None, None]
    y = torch.from_numpy(y.astype(np.float64))[None, None]
    k = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(k**2) / (2 * sigma**2))
    g = g / g.sum()
    rank = pred.ndim
    conv = F.conv2d if rank == 2 else F.conv3d

    def blur(t: torch.Tensor) -> torch.Tensor:
        for axis in range(rank):
            shape = [1, 1] + [1] * rank
            shape[2 + axis] = size
            t = conv(t, g.view(shape))
        return t

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def image_scores(pred: np.ndarray, truth: np.ndarray, shave: int) -> tuple[float, float]:
    """(PSNR dB, SSIM) on luma with the border shaved; images (h, w, c) in [0, 1]."""
    p, t = _shave(_luma(np.clip(pred, 0, 1)), shave), _shave(_luma(truth), shave)
    return psnr(p, t, 255.0), ssim(p, t, 255.0)


def volume_scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) with the data range of the ground truth."""
    data_range = float(truth.max() - truth.min()) or 1.0
    return psnr(pred, truth, data_range), ssim(pred, truth, data_range)
