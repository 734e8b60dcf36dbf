"""Fixtures for the CLI tests: tiny random model folders, small real inputs, and a CliRunner wrapper.

Models are session-scoped (built once); inputs are written per test into tmp_path. Torch runs on one
thread here: on a loaded machine with few cores, more threads make these tiny models many times slower.
"""

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from typer.testing import CliRunner, Result

from ginr_cli.cli.app import app
from ginr_cli.io.checkpoints import save_model
from ginr_cli.nn.ginr import MambaGINR
from tests.conftest import SET5_X2, tiny_codec_config, tiny_config, untrained

SET5_HR = SET5_X2
ANATOMICAL = Path(os.path.dirname(nib.__file__)) / "tests" / "data" / "anatomical.nii"  # 33x41x25 int16
CORNER = np.array([-0.5, -0.5, -0.5, 1.0])  # the corner of the field of view, in voxel coordinates

Ginr = Callable[..., Result]


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ginr() -> Ginr:
    """Run `ginr ARGS...` in-process; stdout and stderr stay apart (result.stdout, result.stderr)."""
    runner = CliRunner()

    def invoke(*args) -> Result:
        return runner.invoke(app, [str(a) for a in args], env={"GINR_DEBUG": None})

    return invoke


def _model_folder(folder: Path, rank: int, seed: int, codec: bool = False) -> Path:
    torch.manual_seed(seed)
    save_model(untrained(MambaGINR(tiny_codec_config(rank) if codec else tiny_config(rank))), folder)
    return folder


@pytest.fixture(scope="session")
def codec_2d(tmp_path_factory) -> Path:
    """tiny_codec_config(2): a latent grid of 4 channels per 4x4 patch, 16x16 tiles."""
    return _model_folder(tmp_path_factory.mktemp("models") / "c2", 2, seed=0, codec=True)


@pytest.fixture(scope="session")
def codec_3d(tmp_path_factory) -> Path:
    """tiny_codec_config(3): a latent grid of 4 channels per 2^3 patch, 8^3 tiles."""
    return _model_folder(tmp_path_factory.mktemp("models") / "c3", 3, seed=0, codec=True)


@pytest.fixture(scope="session")
def model_2d(tmp_path_factory) -> Path:
    """tiny_config(2): RGB in and out, 16x16 tiles."""
    return _model_folder(tmp_path_factory.mktemp("models") / "m2", 2, seed=0)


@pytest.fixture(scope="session")
def model_3d(tmp_path_factory) -> Path:
    """tiny_config(3): one channel, 8x8x8 tiles."""
    return _model_folder(tmp_path_factory.mktemp("models") / "m3", 3, seed=0)


@pytest.fixture(scope="session")
def other_model_3d(tmp_path_factory) -> Path:
    """The same architecture as model_3d with other random weights (another fingerprint)."""
    return _model_folder(tmp_path_factory.mktemp("models") / "m3-other", 3, seed=1)


def hr_crop(index: int, box: tuple[int, int, int, int]) -> Image.Image:
    """An RGB crop (left, top, right, bottom) of Set5 HR image `index` (1-5)."""
    with Image.open(SET5_HR / f"img_{index:03d}_SRF_2_HR.png") as im:
        return im.convert("RGB").crop(box)


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """a.jpg RGB 24x20, b.png RGBA 24x20 (alpha ramps left to right), c.tif 16-bit gray 24x20, and
    d.jpg, which is text."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    hr_crop(1, (100, 100, 124, 120)).save(folder / "a.jpg", quality=95)
    rgba = np.array(hr_crop(2, (50, 50, 74, 70)).convert("RGBA"))
    rgba[..., 3] = np.linspace(0, 255, 24).round().astype(np.uint8)[None]
    Image.fromarray(rgba, "RGBA").save(folder / "b.png")
    gray = np.array(hr_crop(3, (60, 60, 84, 80)).convert("L")).astype(np.uint16) * 257
    tifffile.imwrite(folder / "c.tif", gray)
    (folder / "d.jpg").write_text("this is not a JPEG\n")
    return folder


@pytest.fixture(scope="session")
def nifti(tmp_path_factory) -> Path:
    """nibabel's anatomical.nii as .nii.gz: 33x41x25 int16, 2 mm voxels, sform and qform code 2."""
    path = tmp_path_factory.mktemp("nifti") / "anatomical.nii.gz"
    nib.save(nib.load(ANATOMICAL), path)
    return path


@pytest.fixture(scope="session")
def nifti_latent(ginr, nifti, model_3d, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("latents")
    result = ginr("encode", nifti, "-o", out, "--model", model_3d)
    assert result.exit_code == 0, result.output
    return out / "anatomical.safetensors"


@pytest.fixture(scope="session")
def nifti_decoded(ginr, nifti_latent, model_3d, tmp_path_factory) -> dict[str, Path]:
    """Full decodes of the NIfTI latent at scale 1 and scale 2."""
    out = tmp_path_factory.mktemp("decoded")
    paths = {"x1": out / "x1.nii.gz", "x2": out / "x2.nii.gz"}
    for key, extra in (("x1", []), ("x2", ["--scale", "2"])):
        result = ginr("decode", nifti_latent, "-o", paths[key], "--model", model_3d, *extra)
        assert result.exit_code == 0, result.output
    return paths


def file_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def ginr_script() -> str:
    path = shutil.which("ginr")
    assert path is not None, "the `ginr` console script is not on PATH (pip install -e .)"
    return path
