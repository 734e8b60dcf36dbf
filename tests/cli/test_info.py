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


def test_info_describes_a_png_and_what_upscale_would_write(ginr, tmp_path):
    from PIL import Image, ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: shown rotated 90 degrees
    Image.new("RGBA", (20, 12), (10, 20, 30, 128)).save(
        tmp_path / "p.png", icc_profile=srgb, dpi=(300, 300), exif=exif
    )
    result = ginr("info", tmp_path / "p.png", "--json")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["kind"] == "image" and facts["format"] == "PNG" and facts["mode"] == "RGBA"
    assert facts["size"] == "20x12" and facts["size upright"] == "12x20" and facts["exif orientation"] == 6
    assert facts["bit depth"] == 8 and facts["alpha"] is True and facts["frames"] == 1
    assert facts["icc profile"].startswith("sRGB") and facts["dpi"] == "300 x 300"
    assert facts["upscale model"] == "image" and facts["upscale --scale 2 writes"] == "24x40 PNG"
    table = ginr("info", tmp_path / "p.png")
    assert table.exit_code == 0 and "upscale --scale 2 writes" in table.stdout and "24x40 PNG" in table.stdout


def test_info_describes_a_nifti(ginr, nifti):
    result = ginr("info", nifti, "--json")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["kind"] == "volume" and facts["format"] == "NIfTI" and facts["shape"] == "33x41x25"
    assert facts["voxel size"] == "2 x 2 x 2 mm" and facts["dtype"] == "int16" and facts["scaling"] == "none"
    assert facts["sform code"] == 2 and facts["qform code"] == 2 and facts["orientation"] == "LAS"
    assert facts["affine"][0] == [-2.0, 0.0, 0.0, 32.0]
    assert facts["upscale model"] == "volume"
    assert facts["upscale --scale 2 writes"] == "66x82x50 NIfTI int16, voxels half the size"
    assert ginr("info", nifti).exit_code == 0


def test_info_describes_a_tiff_stack_and_an_animated_gif(ginr, tmp_path):
    import numpy as np
    import tifffile
    from PIL import Image

    stack = np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8)
    tifffile.imwrite(tmp_path / "s.tif", stack, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"})  # fmt: skip
    facts = json.loads(ginr("info", tmp_path / "s.tif", "--json").stdout)
    assert facts["kind"] == "volume" and facts["format"] == "TIFF" and facts["shape"] == "4x6x8"
    assert facts["axes"] == "ZYX" and facts["voxel size"] == "1.5 x 0.5 x 0.5 um"
    assert facts["dtype"] == "uint16" and facts["value range"] == "0 to 191"
    assert facts["upscale --scale 2 writes"] == "8x12x16 TIFF uint16, voxels half the size"

    frames = [Image.new("RGB", (10, 6), (80 * t, 0, 0)) for t in range(3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50)
    facts = json.loads(ginr("info", tmp_path / "a.gif", "--json").stdout)
    assert facts["format"] == "GIF" and facts["frames"] == 3
    assert facts["upscale --scale 2 writes"] == "20x12 GIF, 3 frames"


def test_info_on_a_file_ginr_does_not_read_is_one_line(ginr, tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n and then nothing")
    for name, says in (("notes.txt", "not a file ginr reads"), ("broken.png", "not a PNG, JPEG")):
        result = ginr("info", tmp_path / name)
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and says in result.stderr
