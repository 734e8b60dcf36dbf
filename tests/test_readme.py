"""The README's examples run as written, in order, on the shipped models and the files in examples/."""

import shlex
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ginr_cli.cli.app import app
from tests.conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]


def readme_examples() -> list[list[str]]:
    """The `ginr ...` lines between the README's example markers, split as a shell would."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- examples: begin -->", 1)[1].split("<!-- examples: end -->", 1)[0]
    lines = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [words[1:] for words in lines if words and words[0] == "ginr"]


def test_every_command_has_an_example():
    commands = {args[0] for args in readme_examples()}
    assert commands == {"upscale", "encode", "decode", "train", "eval", "info"}


@pytest.mark.skipif(
    not (SHARED / "data" / "sr-benchmarks").is_dir(), reason="../shared is not beside the checkout"
)
def test_the_examples_run_in_order(tmp_path, monkeypatch):
    # A checkout-like folder: examples/ here, ../shared beside it; outputs land in the temporary folder.
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "shared").symlink_to(SHARED)
    monkeypatch.chdir(repo)
    torch.set_num_threads(2)
    runner = CliRunner()
    for args in readme_examples():
        result = runner.invoke(app, args, env={"GINR_DEBUG": None})
        assert result.exit_code == 0, f"ginr {shlex.join(args)}\n{result.output}"
    assert sorted(p.name for p in (repo / "out").iterdir())
