"""Build a compact pack of the training data to carry to a remote GPU machine, which cannot reach the
package registries that scripts/prepare_data.py fetches from, and takes only a few tens of MiB along.

    python scripts/pack_data.py --out gpu-pack [--max-mib 54]   # gpu-pack/{images/*.jpg,volumes/*.nii.gz}

Images: every picture of data/wallpapers/train and data/photos/train, downscaled by a whole factor
with Pillow's antialiased LANCZOS so that its longer side is at most 1600 px (and at least halved when
it was over 2600), then saved as JPEG quality 92 with 4:4:4 chroma. Most sources are themselves JPEGs;
downscaling averages their compression artefacts away, so the pairs made from the pack are clean, as
DIV2K-style training data is. Should the images not fit in the budget left by the volumes, the ones
with the most pixels are dropped first. Volumes: data/volumes/train as it is (already gzipped). The
held-out sets (data/*/val, data/volumes/eval, data/volumes/subject) are never packed.
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

from PIL import Image

DATA = Path(__file__).resolve().parents[1] / "data"
IMAGE_DIRS = (DATA / "wallpapers/train", DATA / "photos/train")
VOLUME_DIR = DATA / "volumes/train"
LONG_SIDE, HALVE_ABOVE = 1600, 2600
VOLUME_WARN_MIB = 15
MIB = 2**20


def factor(size: tuple[int, int]) -> int:
    """The whole downscaling factor: the long side at most LONG_SIDE, halved at least above HALVE_ABOVE."""
    long = max(size)
    return max(math.ceil(long / LONG_SIDE), 2 if long > HALVE_ABOVE else 1)


def pack_image(source: Path, dest: Path) -> int:
    """Downscale one picture (see factor) into a JPEG q92 4:4:4; its pixel count."""
    with Image.open(source) as image:
        image = image.convert("RGB")
        f = factor(image.size)
        if f > 1:
            image = image.resize((image.width // f, image.height // f), Image.Resampling.LANCZOS)
        image.save(dest, quality=92, subsampling=0)
        return image.width * image.height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write images/ and volumes/ into")
    parser.add_argument("--max-mib", type=float, default=54, help="the most the pack may take, in MiB")
    args = parser.parse_args()
    images, volumes = args.out / "images", args.out / "volumes"
    for folder in (images, volumes):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    for source in sorted(VOLUME_DIR.glob("*.nii*")):
        shutil.copy(source, volumes / source.name)
    volume_bytes = sum(p.stat().st_size for p in volumes.iterdir())
    if volume_bytes > VOLUME_WARN_MIB * MIB:
        print(f"note: the volumes take {volume_bytes / MIB:.1f} MiB (over {VOLUME_WARN_MIB}), kept as is")

    pixels = {}
    for source in sorted(p for folder in IMAGE_DIRS for p in folder.iterdir() if p.is_file()):
        dest = images / f"{source.stem}.jpg"
        if dest.exists():
            dest = images / f"{source.parent.parent.name}-{source.stem}.jpg"
        pixels[dest] = pack_image(source, dest)
    total = len(pixels)
    budget = args.max_mib * MIB - volume_bytes
    image_bytes = sum(p.stat().st_size for p in pixels)
    for dest in sorted(pixels, key=pixels.get, reverse=True):
        if image_bytes <= budget:
            break
        image_bytes -= dest.stat().st_size
        dest.unlink()
        del pixels[dest]
    if len(pixels) < total:
        print(f"kept {len(pixels)} of {total} images (the smallest) to fit {args.max_mib:g} MiB")

    megapixels = sum(pixels.values()) / 1e6
    print(
        f"{args.out}: {len(pixels)} images ({megapixels:.0f} MP, {image_bytes / MIB:.1f} MiB), "
        f"{len(list(volumes.iterdir()))} volumes ({volume_bytes / MIB:.1f} MiB), "
        f"{(image_bytes + volume_bytes) / MIB:.1f} MiB in all"
    )


if __name__ == "__main__":
    main()
