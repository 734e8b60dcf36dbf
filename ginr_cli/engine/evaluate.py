"""Evaluation against classical interpolation, the way the super-resolution literature measures it.

Images: LR/HR pairs laid out as the SR benchmark sets (`*_LR.png` beside `*_HR.png`, in folders named
`image_SRF_<s>`), or a folder of HR images downscaled on the fly (Pillow's antialiased bicubic). ginr,
bicubic and Lanczos reconstruct the HR grid; PSNR on Y with `s` pixels shaved, and SSIM.
Volumes: an HR volume averaged over slabs of `s` slices along one axis (thick slices), reconstructed by
ginr and by trilinear and cubic-spline interpolation (scipy) on the HR grid; PSNR and SSIM with the data
range of the ground truth.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ginr_cli.engine import metrics, normalize
from ginr_cli.engine.adapt import adapt as fit_to_scan
from ginr_cli.engine.consistency import make_consistent, whole_factors
from ginr_cli.engine.infer import default_grid, resample
from ginr_cli.engine.tiling import OutputGrid
from ginr_cli.errors import GinrError
from ginr_cli.nn.ginr import MambaGINR

IMAGE_METHODS = ("ginr", "bicubic", "lanczos")
VOLUME_METHODS = ("ginr", "trilinear", "cubic-spline")


@dataclass
class Score:
    item: str
    scale: float
    method: str
    psnr: float
    ssim: float


def image_pairs(folder: Path, scales: list[float]) -> list[tuple[str, float, Path | None, Path]]:
    """(name, scale, LR path or None, HR path): benchmark pairs where present, else HR files to downscale."""
    pairs = []
    for hr in sorted(folder.rglob("*_HR.png")):
        match = re.search(r"SRF_(\d+)", hr.name)
        lr = hr.with_name(hr.name.replace("_HR", "_LR"))
        if match and lr.exists() and float(match.group(1)) in scales:
            pairs.append((hr.name.replace("_HR.png", ""), float(match.group(1)), lr, hr))
    if pairs:
        return pairs
    from ginr_cli.io.images import is_image_path

    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_path(p))
    if not files:
        raise GinrError("no images found (expected *_HR.png/*_LR.png pairs or HR images)", folder)
    return [(p.stem, s, None, p) for s in scales for p in files]


def _load_rgb(path: Path) -> np.ndarray:
    from ginr_cli.io.images import read_image

    return read_image(path, max_pixels=None).color.astype(np.float64)


def _pil_resize(array: np.ndarray, size_wh: tuple[int, int], method) -> np.ndarray:
    """Resize each channel as a float image (no 8-bit rounding in between)."""
    channels = [
        np.asarray(Image.fromarray(array[..., c].astype(np.float32), mode="F").resize(size_wh, method))
        for c in range(array.shape[-1])
    ]
    return np.stack(channels, axis=-1).astype(np.float64)


def upscale_array(
    model: MambaGINR, device, lr: np.ndarray, out_hw: tuple[int, int], batch: int = 8, ensemble: bool = False
) -> np.ndarray:
    """lr (h, w, c) in [0, 1] -> (H, W, c) in [0, 1] with the model (over its flips with `ensemble`)."""
    source = normalize.IMAGE.apply(lr.astype(np.float32)).transpose(2, 0, 1)
    grid = default_grid(model, lr.shape[:2])
    out_grid = OutputGrid.full(lr.shape[:2], out_hw)
    out = resample(model, source, out_grid, device, grid=grid, batch=batch, ensemble=ensemble)
    return np.clip(normalize.IMAGE.invert(out), 0, 1).astype(np.float64)


def evaluate_images(
    model: MambaGINR, device, folder: Path, scales: list[float], on_score=None, ensemble: bool = False
) -> list[Score]:
    scores = []
    for name, scale, lr_path, hr_path in image_pairs(folder, scales):
        hr = _load_rgb(hr_path)
        h, w = hr.shape[:2]
        if lr_path is not None:
            lr = _load_rgb(lr_path)
        else:  # crop to a multiple of the scale where it is whole, then antialiased bicubic down
            if float(scale).is_integer():
                s = int(scale)
                hr = hr[: h - h % s, : w - w % s]
                h, w = hr.shape[:2]
            lr = _pil_resize(hr, (max(1, round(w / scale)), max(1, round(h / scale))), Image.BICUBIC)
        outputs = {
            "ginr": upscale_array(model, device, lr, (h, w), ensemble=ensemble),
            "bicubic": _pil_resize(lr, (w, h), Image.BICUBIC),
            "lanczos": _pil_resize(lr, (w, h), Image.LANCZOS),
        }
        shave = int(np.ceil(scale))
        for method, pred in outputs.items():
            psnr, ssim = metrics.image_scores(pred, hr, shave)
            score = Score(name, scale, method, psnr, ssim)
            scores.append(score)
            if on_score:
                on_score(score)
    return scores


def thick_slices(volume: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """Average each slab of `factor` slices along `axis` (the volume is cropped to a multiple first)."""
    n = volume.shape[axis] - volume.shape[axis] % factor
    cropped = np.take(volume, np.arange(n), axis=axis)
    shape = list(cropped.shape)
    shape[axis : axis + 1] = [n // factor, factor]
    return cropped.reshape(shape).mean(axis=axis + 1)


def thick_sliced(volume: np.ndarray, axis: int, factor: int):
    """The evaluation case of `volume` thick-sliced by `factor` along `axis`: (truth cropped to a multiple of
    the factor, the thick slices, their normalisation, the normalised input the model reads)."""
    n = volume.shape[axis] - volume.shape[axis] % factor
    truth = np.take(volume, np.arange(n), axis=axis)
    lr = thick_slices(truth, axis, factor)
    norm = normalize.for_volume(lr)
    return truth, lr, norm, norm.apply(lr.astype(np.float32))[None]


def evaluate_volume(
    model: MambaGINR,
    device,
    path: Path,
    factors: list[int],
    axis: int = 2,
    batch: int = 8,
    on_score=None,
    adapt: int = 0,
    ensemble: bool = False,
    consistency: bool = True,
) -> list[Score]:
    """Thick slices along `axis` reconstructed by the model (fitted to each input first with `adapt`
    steps, as `ginr upscale --adapt` does; over its flips with `ensemble`; its slab means set to the thick
    slices with `consistency`, as upscale does by default), trilinear and cubic-spline interpolation."""
    from scipy import ndimage

    from ginr_cli.io.volumes import read_volume

    volume = read_volume(path).data[0].astype(np.float64)  # (d0, d1, d2), first frame
    scores = []
    for factor in factors:
        if factor > volume.shape[axis]:
            raise GinrError(f"--scales {factor}: only {volume.shape[axis]} slices along axis {axis}", path)
        truth, lr, norm, source = thick_sliced(volume, axis, factor)
        grid = default_grid(model, lr.shape)
        scales = [t / s for t, s in zip(truth.shape, lr.shape, strict=True)]
        net = fit_to_scan(model, source, scales, adapt, device)
        out_grid = OutputGrid.full(lr.shape, truth.shape)
        out = resample(net, source, out_grid, device, grid=grid, batch=batch, ensemble=ensemble)
        zoom = [t / s for t, s in zip(truth.shape, lr.shape, strict=True)]
        pred = norm.invert(out[..., 0])
        if consistency:
            make_consistent(pred, lr, whole_factors(lr.shape, truth.shape))
        # scipy's zoom with grid_mode=True keeps the field of view (voxel edges aligned), as ginr does.
        outputs = {
            "ginr": pred.astype(np.float64),
            "trilinear": ndimage.zoom(lr, zoom, order=1, mode="nearest", grid_mode=True),
            "cubic-spline": ndimage.zoom(lr, zoom, order=3, mode="nearest", grid_mode=True),
        }
        for method, pred in outputs.items():
            psnr, ssim = metrics.volume_scores(pred, truth)
            score = Score(path.name, float(factor), method, psnr, ssim)
            scores.append(score)
            if on_score:
                on_score(score)
    return scores


def averages(scores: list[Score]) -> list[dict]:
    """Mean PSNR and SSIM per (scale, method)."""
    keys = sorted({(s.scale, s.method) for s in scores}, key=lambda k: (k[0], k[1]))
    rows = []
    for scale, method in keys:
        group = [s for s in scores if s.scale == scale and s.method == method]
        rows.append(
            {
                "scale": scale,
                "method": method,
                "n": len(group),
                "psnr": float(np.mean([s.psnr for s in group])),
                "ssim": float(np.mean([s.ssim for s in group])),
            }
        )
    return rows


def to_dicts(scores: list[Score]) -> list[dict]:
    return [asdict(s) for s in scores]


def plot(rows: list[dict], path: Path, title: str) -> None:
    """PSNR against scale, one line per method (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = [(r["scale"], r["psnr"]) for r in rows if r["method"] == method]
        ax.plot(*zip(*pts, strict=True), "o-", label=method)
    ax.set(xlabel="scale", ylabel="PSNR (dB)", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
