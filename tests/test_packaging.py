"""A plain (non-editable) install carries the shipped models as package data and finds them."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_models_and_finds_them(tmp_path):
    # Built from a fresh copy of what the package is made of: an in-tree build/ left by an earlier build
    # would lend files that the package data rules no longer ship.
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", "LICENSE", "ginr_cli", "models"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif (ROOT / name).exists():
            src.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("ginr-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in ("image", "volume"):
        for file in ("config.json", "model.safetensors", "README.md"):
            assert f"ginr_cli/models/{model}/{file}" in names
    assert not any(name.startswith("models/") for name in names)  # no top-level `models` package
    # The compiled kernels build at first use from their sources: every one of them, headers too.
    for source in (ROOT / "ginr_cli" / "nn" / "csrc").iterdir():
        assert f"ginr_cli/nn/csrc/{source.name}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # Run from the unpacked wheel alone (not this checkout): the shipped models must be found there.
    code = "from ginr_cli.io.checkpoints import find_model; print(find_model('image'))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == site / "ginr_cli" / "models" / "image"
