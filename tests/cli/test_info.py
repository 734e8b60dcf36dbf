import dataclasses
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
    cfg = tiny_config(3)
    cfg = cfg.replace(encoder=dataclasses.replace(cfg.encoder, expand=2))
    fp = save_model(MambaGINR(cfg), tmp_path / "vol")
    result = runner.invoke(app, ["info", str(tmp_path / "vol"), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["kind"] == "volume" and facts["fingerprint"] == fp and facts["tile"] == "8x8x8"
    assert facts["inner width x state"] == f"{2 * cfg.encoder.d_model} x {cfg.encoder.d_state}"
    assert facts["patch"] == "2x2x2" and facts["local features"] == "none"
    table = runner.invoke(app, ["info", str(tmp_path / "vol")])
    assert table.exit_code == 0 and fp in table.output


def test_info_names_a_models_local_features(tmp_path):
    from ginr_cli.nn.config import FeatureConfig

    cfg = tiny_config(2, features=FeatureConfig(local=True, stem_width=8, stem_blocks=2))
    save_model(MambaGINR(cfg), tmp_path / "local")
    facts = json.loads(runner.invoke(app, ["info", str(tmp_path / "local"), "--json"]).stdout)
    assert facts["local features"] == "stem 8 wide, 2 residual blocks" and facts["patch"] == "4x4"


def test_info_on_a_missing_model_is_one_line_and_exit_1(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "nothing: no model folder" in result.stderr


def test_info_describes_a_latent(ginr, nifti_latent, model_3d):
    fp = json.loads(ginr("info", model_3d, "--json").stdout)["fingerprint"]
    result = ginr("info", nifti_latent, "--json")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["fingerprint"] == fp and facts["model"] == "test-3d-mamba"
    assert facts["source"] == "nifti anatomical.nii.gz" and facts["shape"] == "33x41x25"
    assert facts["dtype"] == "int16" and facts["spacing"] == "2 x 2 x 2 mm"
    assert facts["size KiB"] == round(nifti_latent.stat().st_size / 1024, 1)
    table = ginr("info", nifti_latent)
    assert table.exit_code == 0 and fp in table.stdout and "33x41x25" in table.stdout


def test_info_describes_a_codec_model_and_its_latent(ginr, codec_3d, nifti, tmp_path):
    result = ginr("info", codec_3d, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["latent"] == "a grid, 4 integers per patch (rate weight 0.002)"
    latent = tmp_path / "a.safetensors"
    assert ginr("encode", nifti, "-o", latent, "--model", codec_3d, "--refine", "0").exit_code == 0
    facts = json.loads(ginr("info", latent, "--json").stdout)
    assert facts["format"] == 2
    assert facts["bits per voxel"] == round(8 * latent.stat().st_size / (33 * 41 * 25), 4)
