import json

from typer.testing import CliRunner

from ginr_cli.cli.app import app
from ginr_cli.io.checkpoints import save_model
from ginr_cli.nn.ginr import MambaGINR
from tests.conftest import tiny_config

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "info" in result.output


def test_info_describes_a_model_folder(tmp_path):
    fp = save_model(MambaGINR(tiny_config(3)), tmp_path / "vol")
    result = runner.invoke(app, ["info", str(tmp_path / "vol"), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["kind"] == "volume" and facts["fingerprint"] == fp and facts["tile"] == "8x8x8"
    table = runner.invoke(app, ["info", str(tmp_path / "vol")])
    assert table.exit_code == 0 and fp in table.output


def test_info_on_a_missing_model_is_one_line_and_exit_1(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "nothing: no model folder" in result.stderr
