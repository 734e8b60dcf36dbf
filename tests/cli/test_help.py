import re
import subprocess
import sys

import pytest

from ginr_cli import __version__
from ginr_cli.nn.config import PRESETS

COMMANDS = ["upscale", "encode", "decode", "train", "eval", "info"]
KEY_OPTION = {
    "upscale": "--scale",
    "encode": "--check",
    "decode": "--roi",
    "train": "--steps",
    "eval": "--scales",
    "info": "--json",
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(ginr, command, flag):
    result = ginr(command, flag)
    assert result.exit_code == 0, result.output
    assert f"Usage: ginr {command}" in result.stdout
    assert KEY_OPTION[command] in result.stdout


def test_no_arguments_shows_the_help_listing_every_command(ginr):
    result = ginr()
    assert result.exit_code == 2  # click's no_args_is_help: help, with the usage-error code
    assert "Usage: ginr" in result.output  # click prints it to stderr
    for command in COMMANDS:
        assert command in result.output


def test_version(ginr):
    result = ginr("--version")
    assert result.exit_code == 0
    assert result.stdout == f"ginr {__version__}\n"


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ginr_cli.cli.app import app\n"
        "for c in ('upscale', 'encode', 'decode', 'train', 'eval', 'info'):\n"
        "    assert CliRunner().invoke(app, [c, '--help']).exit_code == 0\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_an_example(ginr, command):
    result = ginr(command, "--help")
    assert "Examples:" in result.stdout
    assert f"ginr {command} " in result.stdout or f"ginr_cli {command} " in result.stdout


def test_train_help_lists_every_preset(ginr):
    """From the registry: the hand-written list lacked codec-2d and codec-3d."""
    text = re.sub(r"\s+", " ", ginr("train", "--help").stdout).replace("- ", "-")  # unwrapped
    for name in PRESETS:
        assert name in text
