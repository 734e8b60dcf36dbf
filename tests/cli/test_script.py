import os
import subprocess

from PIL import Image

from tests.cli.conftest import ginr_script, hr_crop


def test_the_installed_script_upscales(model_2d, tmp_path):
    hr_crop(4, (10, 10, 34, 30)).save(tmp_path / "in.png")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("GINR_DEBUG", None)
    command = [ginr_script(), "upscale", tmp_path / "in.png", tmp_path / "out", "--scale", "2"]
    done = subprocess.run(
        [*command, "--model", model_2d], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "upscale: 1 done, 0 skipped, 0 failed" in done.stdout
    with Image.open(tmp_path / "out" / "in.png") as im:
        assert (im.size, im.mode) == ((48, 40), "RGB")
