"""Latents measured as codecs are measured: the real file size in bits per pixel (voxel) against PSNR and
SSIM, beside the classic ways of keeping the same picture at the same size.

Photos (8-bit RGB; PSNR over the three channels, SSIM on luma): JPEG and WebP (Pillow) over a ladder of
qualities, a copy downsampled by 2 (PNG) and upscaled with bicubic, and the lossless PNG's size.
Volumes (PSNR and SSIM with the data range of the volume): JPEG of every slice along the last axis (the
volume mapped to 8 bits over its range first, when it is not 8-bit), a copy averaged over 2x2x2 blocks
(gzip) and upsampled with a cubic spline, and the gzip of the voxels (lossless).
ginr's points are real `ginr encode` files at each quality, decoded at scale 1 as `ginr decode` would.
Comparisons "at the same size" read each baseline's curve at ginr's bits, linearly between its points.
"""

from __future__ import annotations

import gzip
import io
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ginr_cli.engine import metrics, normalize
from ginr_cli.engine.codec import encode_file, open_latent, render_frames
from ginr_cli.engine.tiling import OutputGrid
from ginr_cli.nn.ginr import MambaGINR

LADDER = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 100)  # JPEG and WebP qualities, up to the top
LOSSLESS = ("png", "gzip")


@dataclass
class RatePoint:
    item: str
    method: str  # "ginr", "jpeg", "webp", "down2-bicubic", "slice-jpeg", "down2-spline", "png", "gzip"
    setting: str  # the quality, or "" where there is one setting
    bits: float  # per pixel (voxel)
    psnr: float
    ssim: float


def _image_scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """8-bit RGB (h, w, 3): PSNR over every channel, SSIM on luma."""
    luma = metrics.rgb_to_y
    return metrics.psnr(pred, truth, 255.0), metrics.ssim(luma(pred / 255.0), luma(truth / 255.0), 255.0)


def _encoded(image: Image.Image, fmt: str, **options) -> tuple[int, Image.Image]:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    size = buffer.tell()
    buffer.seek(0)
    return size, Image.open(buffer).convert(image.mode)


def image_baselines(name: str, rgb: np.ndarray) -> list[RatePoint]:
    """rgb (h, w, 3) uint8 -> the classic codecs' points."""
    h, w = rgb.shape[:2]
    image = Image.fromarray(rgb)
    truth = rgb.astype(np.float64)
    points = []

    def add(method: str, setting: str, size: int, decoded: Image.Image) -> None:
        psnr, ssim = _image_scores(np.asarray(decoded, dtype=np.float64), truth)
        points.append(RatePoint(name, method, setting, 8 * size / (h * w), psnr, ssim))

    for q in LADDER:
        add("jpeg", str(q), *_encoded(image, "JPEG", quality=q))
        add("webp", str(q), *_encoded(image, "WEBP", quality=q, method=6))
    small = image.resize((max(1, w // 2), max(1, h // 2)), Image.BICUBIC, reducing_gap=None)
    size, small = _encoded(small, "PNG", optimize=True)
    add("down2-bicubic", "", size, small.resize((w, h), Image.BICUBIC))
    size, _ = _encoded(image, "PNG", optimize=True)
    points.append(RatePoint(name, "png", "", 8 * size / (h * w), float("inf"), 1.0))
    return points


def volume_baselines(name: str, volume: np.ndarray, dtype: np.dtype) -> list[RatePoint]:
    """volume (d0, d1, d2) in its source units, stored as `dtype` -> the classic codecs' points."""
    from scipy import ndimage

    sites = volume.size
    lo, hi = float(volume.min()), float(volume.max())
    span = hi - lo or 1.0
    points = []

    def add(method: str, setting: str, size: int, pred: np.ndarray) -> None:
        psnr, ssim = metrics.volume_scores(pred, volume)
        points.append(RatePoint(name, method, setting, 8 * size / sites, psnr, ssim))

    eight_bit = dtype == np.uint8
    slices = volume.astype(np.uint8) if eight_bit else np.round((volume - lo) / span * 255).astype(np.uint8)
    for q in LADDER:
        size, decoded = 0, np.empty_like(slices)
        for z in range(slices.shape[2]):
            n, out = _encoded(Image.fromarray(np.ascontiguousarray(slices[:, :, z])), "JPEG", quality=q)
            size += n
            decoded[:, :, z] = np.asarray(out)
        pred = decoded.astype(np.float64)
        add("slice-jpeg", str(q), size, pred if eight_bit else pred / 255 * span + lo)
    even = volume[tuple(slice(0, n - n % 2) for n in volume.shape)]
    small = even.reshape(even.shape[0] // 2, 2, even.shape[1] // 2, 2, even.shape[2] // 2, 2).mean(
        axis=(1, 3, 5)
    )
    stored = np.round(small).astype(dtype) if np.dtype(dtype).kind in "iu" else small.astype(dtype)
    zoom = [2.0] * 3
    up = ndimage.zoom(stored.astype(np.float64), zoom, order=3, mode="nearest", grid_mode=True)
    pred = np.pad(up, [(0, n - u) for n, u in zip(volume.shape, up.shape, strict=True)], mode="edge")
    add("down2-spline", "", len(gzip.compress(stored.tobytes(), 9)), pred)
    lossless = len(gzip.compress(volume.astype(dtype).tobytes(), 9))
    points.append(RatePoint(name, "gzip", "", 8 * lossless / sites, float("inf"), 1.0))
    return points


def ginr_points(
    model: MambaGINR,
    fingerprint: str,
    device,
    path: Path,
    kind: str,
    qualities: list[int],
    refine: int,
    on_point: Callable[[RatePoint], None] | None = None,
) -> list[RatePoint]:
    """ginr's points: `path` encoded at each quality, its file size, and its decoding at scale 1."""
    points = []
    with tempfile.TemporaryDirectory() as folder:
        for quality in qualities:
            latent_path = Path(folder) / f"q{quality}.safetensors"
            report = encode_file(
                model, fingerprint, device, path, latent_path, kind, quality=quality, refine=refine
            )
            latent = open_latent(latent_path, model, fingerprint)
            shape = latent.source["shape"]
            norm = normalize.Normalization.from_dict(latent.normalization)
            frames = render_frames(model, latent, OutputGrid.full(shape, shape), device)
            decoded = norm.invert(frames[0])  # (c, *shape), the colour or the first time point
            truth = load_truth(path, kind)
            if kind == "image":
                pred = np.round(np.clip(np.moveaxis(decoded, 0, -1), 0, 1) * 255)
                if pred.shape[2] == 1:  # a gray image, compared as its truth is: gray in all three
                    pred = np.repeat(pred, 3, axis=2)
                psnr, ssim = _image_scores(pred, truth)
            else:
                pred = decoded[0].astype(np.float64)
                dtype = np.dtype(latent.source["dtype"])
                if dtype.kind in "iu":  # as `ginr decode` writes it: rounded and clipped to the dtype
                    pred = np.clip(np.round(pred), np.iinfo(dtype).min, np.iinfo(dtype).max)
                psnr, ssim = metrics.volume_scores(pred, truth)
            point = RatePoint(path.name, "ginr", str(quality), report.bits_per_site, psnr, ssim)
            points.append(point)
            if on_point:
                on_point(point)
    return points


def load_truth(path: Path, kind: str) -> np.ndarray:
    """An image's 8-bit RGB (h, w, 3) as float, or a volume's first frame in its units."""
    if kind == "image":
        from ginr_cli.io.images import read_image

        color = read_image(path, max_pixels=None).color
        if color.shape[2] == 1:
            color = np.repeat(color, 3, axis=2)
        return np.round(color * 255).astype(np.float64)
    from ginr_cli.io.volumes import read_volume

    return read_volume(path).data[0].astype(np.float64)


def baselines(path: Path, kind: str) -> list[RatePoint]:
    truth = load_truth(path, kind)
    if kind == "image":
        return image_baselines(path.name, truth.astype(np.uint8))
    from ginr_cli.io.volumes import read_volume

    return volume_baselines(path.name, truth, np.dtype(read_volume(path).dtype))


def at_bits(points: list[RatePoint], bits: float) -> float | None:
    """One method's PSNR at `bits` on one item, linear between its points; None outside them."""
    curve = sorted((p.bits, p.psnr) for p in points)
    for (b0, p0), (b1, p1) in zip(curve, curve[1:], strict=False):
        if b0 <= bits <= b1:
            return p0 if b1 == b0 else p0 + (p1 - p0) * (bits - b0) / (b1 - b0)
    return None


def summary(points: list[RatePoint]) -> list[dict]:
    """Per ginr quality: mean bits, PSNR and SSIM over the items, and each ladder baseline's mean PSNR at
    the same bits on the same items (items where its curve reaches them); the lossless size beside."""
    rows = []
    ladders = sorted({p.method for p in points if p.setting and p.method != "ginr"})
    singles = sorted({p.method for p in points if not p.setting})
    for quality in sorted({p.setting for p in points if p.method == "ginr"}, key=int):
        ours = [p for p in points if p.method == "ginr" and p.setting == quality]
        row = {
            "quality": int(quality),
            "n": len(ours),
            "bits": float(np.mean([p.bits for p in ours])),
            "psnr": float(np.mean([p.psnr for p in ours])),
            "ssim": float(np.mean([p.ssim for p in ours])),
        }
        for method in ladders:
            same = [
                at_bits([p for p in points if p.method == method and p.item == o.item], o.bits) for o in ours
            ]
            known = [v for v in same if v is not None]
            row[f"{method}_psnr"] = float(np.mean(known)) if len(known) == len(ours) else None
        for method in singles:
            group = [p for p in points if p.method == method]
            row[f"{method}_bits"] = float(np.mean([p.bits for p in group]))
            if method not in LOSSLESS:
                row[f"{method}_psnr"] = float(np.mean([p.psnr for p in group]))
        rows.append(row)
    return rows


def to_dicts(points: list[RatePoint]) -> list[dict]:
    return [asdict(p) for p in points]


def plot(points: list[RatePoint], path: Path, title: str) -> None:
    """PSNR against bits, each method's mean over the items at each setting (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method in dict.fromkeys(p.method for p in points):
        if method in LOSSLESS:
            continue
        settings = dict.fromkeys(p.setting for p in points if p.method == method)
        curve = []
        for setting in settings:
            group = [p for p in points if p.method == method and p.setting == setting]
            curve.append((np.mean([p.bits for p in group]), np.mean([p.psnr for p in group])))
        curve.sort()
        ax.plot(*zip(*curve, strict=True), "o-" if len(curve) > 1 else "s", label=method)
    ax.set(xlabel="bits per pixel (voxel)", ylabel="PSNR (dB)", title=title, xscale="log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
