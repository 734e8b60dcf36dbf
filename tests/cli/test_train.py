import csv

from PIL import Image

from tests.cli.conftest import hr_crop


def test_a_short_run_writes_a_usable_model(ginr, mixed_folder, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    hr_crop(1, (60, 60, 108, 108)).save(data / "one.png")
    hr_crop(2, (60, 60, 108, 108)).save(data / "two.png")
    run = tmp_path / "run"
    result = ginr(
        "train", "--data", data, "--out", run, "--steps", "3", "--batch", "2", "--queries", "64",
        "--model", "tiny-2d", "--checkpoint-every", "2", "--validate-every", "2", "--log-every", "1",
        "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"model written to {run / 'model'}"

    assert sorted(p.name for p in (run / "model").iterdir()) == ["config.json", "model.safetensors"]
    assert (run / "checkpoint" / "trainer.safetensors").is_file()
    with open(run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert [r["psnr"] != "" for r in rows] == [False, True, True]  # validated every 2 steps and at the end
    with Image.open(run / "preview-000002.png") as preview:
        w, h = preview.size
        assert preview.mode == "RGB" and w == 4 * h  # input | bicubic | ginr | truth

    out = tmp_path / "up.png"
    up = ginr("upscale", mixed_folder / "a.jpg", out, "--model", run / "model", "--scale", "2")
    assert up.exit_code == 0, up.output
    with Image.open(out) as im:
        assert (im.size, im.mode) == ((48, 40), "RGB")
