"""Fuzzing the command line: random argument lists, built from the real commands, options and tricky
values, through the CLI. Every run ends with exit 0, 1 or 2 and a message, never a traceback.

The vocabulary is chosen so that no case can start real work beyond a tiny image: no folder of
training images, no digits in random text (no huge --scale or --steps), no '', '.' or '/' (the current
folder or the whole disk as an input).
"""

import os
import shutil
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from ginr_cli.cli.app import app
from tests.io.test_fuzz import EXAMPLES, FUZZ, metadata, report_count

RUN = Counter()
COMMANDS = typer.main.get_command(app).commands
OPTIONS = sorted(
    {opt for command in COMMANDS.values() for p in command.params for opt in p.opts if opt[0] == "-"}
)
VALUES = [
    "2", "0.5", "1,1,2", "1,2", "0", "-1", "nan", "inf", "1e309", "1e-300", "abc", "4x3", "0x3", "x", "2x",
    "0:4,0:3", "3:1,0:2", "0:4", "2=1", "9=1", "=", "auto", "keep", "float32", "int8", "image", "volume",
    "movie", "png", "jpg", "nii.gz", "tif", "bogus", "cpu", "cuda", "cuda:7", "mps", "tpu", "fp32", "bf16",
    "fp16", "fp8", "tiny-2d", "tiny-3d", "base-9d", "_x2", "-", "--", "100", "101", "3", "1",
]  # fmt: skip
PATHS = ["a.png", "out", "out.png", "out.jpg", "model", "lat.safetensors", "empty", "missing", "missing.nii"]
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Nd", "Cs"), blacklist_characters="/.\\\x00"),
    min_size=1,
    max_size=6,
)
TOKEN = st.one_of(st.sampled_from(OPTIONS), st.sampled_from(VALUES), st.sampled_from(PATHS), TEXT)
RANDOM = st.tuples(
    st.sampled_from([*COMMANDS, "--help", "--version", "upscal", "-h"]), st.lists(TOKEN, max_size=8)
)


@st.composite
def command_lines(draw) -> tuple[str, list[str]]:
    """A real command, 0-2 paths, then options of that command, each with a value where it takes one."""
    name = draw(st.sampled_from(sorted(COMMANDS)))
    args = draw(st.lists(st.sampled_from(PATHS), max_size=2))
    options = [p for p in COMMANDS[name].params if p.opts[0].startswith("-")]
    for param in draw(st.lists(st.sampled_from(options), max_size=5)):
        args.append(draw(st.sampled_from(param.opts)))
        if not param.is_flag:
            args.append(draw(st.one_of(st.sampled_from(VALUES), st.sampled_from(PATHS), TEXT)))
    return name, args


ARGS = st.one_of(RANDOM, command_lines())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, model_2d, ginr) -> Path:
    """a.png (8 x 6), a tiny model folder, a latent of a.png and an empty folder."""
    folder = tmp_path_factory.mktemp("fuzz-args")
    Image.new("RGB", (8, 6), (10, 200, 30)).save(folder / "a.png")
    shutil.copytree(model_2d, folder / "model")
    (folder / "empty").mkdir()
    result = ginr("encode", folder / "a.png", "-o", folder / "lat.safetensors", "--model", model_2d)
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    yield
    report_count(request, "command lines fuzzed", RUN)


def run_in(folder: Path, argv: list[str]):
    """`ginr ARGV` in `folder`; whatever the run writes there is removed afterwards."""
    before = set(os.listdir(folder))
    try:
        return CliRunner().invoke(app, argv, env={"GINR_DEBUG": None, "COLUMNS": "100"})
    finally:
        for name in set(os.listdir(folder)) - before:
            path = folder / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()


@FUZZ
@given(args=ARGS)
def test_any_command_line_ends_cleanly(workdir, monkeypatch, args):
    command, rest = args
    argv = [command, *rest]
    monkeypatch.chdir(workdir)
    result = run_in(workdir, argv)
    RUN[f"exit {result.exit_code}"] += 1
    assert result.exception is None or isinstance(result.exception, SystemExit), (argv, result.exception)
    assert result.exit_code in (0, 1, 2), (argv, result.output)
    assert "Traceback" not in result.output, (argv, result.output)
    assert "unexpected error" not in result.output, (argv, result.output)  # a bug caught by the batch
    if result.exit_code == 2:
        assert result.stderr.strip(), argv  # a usage message
    if result.exit_code == 1:
        assert "ginr: error: " in result.stderr or "failed" in result.stderr, (argv, result.output)


def _base_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


@pytest.fixture(scope="module")
def base_latent(workdir) -> tuple[dict, dict[str, str]]:
    return load_file(workdir / "lat.safetensors"), _base_metadata(workdir / "lat.safetensors")


@pytest.fixture(scope="module")
def volume_latent(workdir, model_3d, ginr) -> tuple[dict, dict[str, str]]:
    """An 8^3 NIfTI encoded with the tiny 3D model (copied to workdir/model3)."""
    shutil.copytree(model_3d, workdir / "model3")
    ramp = np.add.outer(np.add.outer(np.arange(8.0), np.arange(8.0)), np.arange(8.0)).astype(np.int16)
    nib.save(nib.Nifti1Image(ramp, np.diag([1.0, 1.0, 2.5, 1.0])), workdir / "v.nii.gz")
    result = ginr("encode", workdir / "v.nii.gz", "-o", workdir / "v.safetensors", "--model", model_3d)
    assert result.exit_code == 0, result.output
    path = workdir / "v.safetensors"
    return load_file(path), _base_metadata(path)


def decode_with_metadata(workdir: Path, tensors, meta: dict[str, str], model: str):
    """Decode `tensors` with `meta` at scale 1.5: it works, or fails as this file's one-line error."""
    save_file(tensors, workdir / "fuzz.safetensors", metadata=meta)
    try:
        result = run_in(workdir, ["decode", "fuzz.safetensors", "-o", "out", "--model", model, "-s", "1.5"])
    finally:
        (workdir / "fuzz.safetensors").unlink()
    assert result.exit_code in (0, 1), (meta, result.output)
    assert "Traceback" not in result.output and "unexpected error" not in result.output, (meta, result.output)
    if result.exit_code == 1:
        assert result.stderr.startswith("failed  fuzz.safetensors: "), (meta, result.output)
    return result


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(data=st.data())
def test_decode_of_an_image_latent_with_any_metadata(workdir, base_latent, monkeypatch, data):
    tensors, base = base_latent
    monkeypatch.chdir(workdir)
    result = decode_with_metadata(workdir, tensors, data.draw(metadata(base)), "model")
    RUN[f"decode image latent: exit {result.exit_code}"] += 1


@settings(FUZZ, max_examples=max(1, EXAMPLES // 4))
@given(data=st.data())
def test_decode_of_a_volume_latent_with_any_metadata(workdir, volume_latent, monkeypatch, data):
    tensors, base = volume_latent
    monkeypatch.chdir(workdir)
    result = decode_with_metadata(workdir, tensors, data.draw(metadata(base)), "model3")
    RUN[f"decode volume latent: exit {result.exit_code}"] += 1
