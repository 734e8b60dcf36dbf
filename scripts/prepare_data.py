"""Fetch and lay out the real training and evaluation data (no internet beyond Debian's and PyPI's
package registries). Nothing here is committed: the files land under data/ (git-ignored).

    python scripts/prepare_data.py            # data/wallpapers/{train,val}, data/volumes/{train,eval}

Images: Debian's plasma-workspace-wallpapers, the largest rendition of each wallpaper; every tenth one
is kept for validation. Volumes: Debian's mricron-data templates (Colin27 T1 `ch2better`, the INIA19
primate T1) for training; the MNI152 T1 (2009a, 1 mm) from nilearn's wheel is held out for evaluation.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1] / "data"
MRICRON = Path("/usr/share/mricron/templates")
TRAIN_VOLUMES = ("ch2better.nii.gz", "inia19-t1-brain.nii.gz")
MNI = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def wallpapers(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "plasma-workspace-wallpapers"], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), tmp], check=True)
        folders = sorted(p for p in (Path(tmp) / "usr/share/wallpapers").iterdir() if p.is_dir())
        for i, folder in enumerate(folders):
            images = list(folder.glob("contents/images/*"))
            if not images:
                continue
            best = max(images, key=lambda p: Image.open(p).size[0] * Image.open(p).size[1])
            dest = out / ("val" if i % 10 == 3 else "train") / f"{folder.name}{best.suffix}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(best, dest)


def volumes(out: Path) -> None:
    if not MRICRON.is_dir():
        subprocess.run(["apt-get", "install", "-y", "-q", "mricron-data"], check=True)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    for name in TRAIN_VOLUMES:
        shutil.copy(MRICRON / name, out / "train" / name)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, "nilearn"], check=True
        )
        wheel = next(Path(tmp).glob("nilearn-*.whl"))
        with zipfile.ZipFile(wheel) as z, open(out / "eval" / "mni152_t1_1mm.nii.gz", "wb") as f:
            f.write(z.read(MNI))


if __name__ == "__main__":
    wallpapers(ROOT / "wallpapers")
    volumes(ROOT / "volumes")
    print(f"data ready under {ROOT}")
