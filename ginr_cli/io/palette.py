"""GIF colours: RGBA frames re-quantised to one shared palette of at most 256 colours.

An upscaled GIF has colours its palette lacks (the model's anti-aliased edges), so the palette is built
again: median cut refined by k-means, over the opaque pixels of all frames (a deterministic sample of at
most 2**20), one palette shared by every frame, so that a still background keeps its colours from frame
to frame. Alpha is one bit in GIF: pixels with alpha below 128 become index 255, the transparent one,
when there are any. Still images are dithered (Floyd-Steinberg); animations are not, since dither noise
that changes from frame to frame crawls, and it defeats the GIF writer's frame differencing (bigger files).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

TRANSPARENT = 255  # the palette index of transparent pixels, when a frame has any
_SAMPLE = 2**20
_KMEANS = 3  # k-means passes refining the median cut: a third less error on smooth gradients


def quantize(frames: list[np.ndarray], dither: bool) -> tuple[list[Image.Image], bool]:
    """RGBA uint8 frames (h, w, 4) -> mode P images sharing one palette, and whether any is transparent
    (then index `TRANSPARENT` is the transparent colour of every frame)."""
    opaque = [frame[..., 3] >= 128 for frame in frames]
    transparent = not all(mask.all() for mask in opaque)
    pixels = np.concatenate([frame[..., :3][mask] for frame, mask in zip(frames, opaque, strict=True)])
    if len(pixels) == 0:  # every pixel transparent: any one colour will do
        pixels = np.zeros((1, 3), np.uint8)
    if len(pixels) > _SAMPLE:
        pixels = pixels[np.linspace(0, len(pixels) - 1, _SAMPLE).astype(np.int64)]
    colors = 255 if transparent else 256
    sample = Image.fromarray(pixels[None])
    palette = sample.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, kmeans=_KMEANS)
    entries = palette.getpalette() or []
    palette.putpalette(entries + [0] * (768 - len(entries)))  # 256 entries: index 255 always exists
    mode = Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE
    out = []
    for frame, mask in zip(frames, opaque, strict=True):
        image = Image.fromarray(np.ascontiguousarray(frame[..., :3])).quantize(palette=palette, dither=mode)
        if transparent:
            index = np.asarray(image).copy()
            index[~mask] = TRANSPARENT
            image = Image.fromarray(index, "P")
            image.putpalette(palette.getpalette())
        out.append(image)
    return out, transparent
