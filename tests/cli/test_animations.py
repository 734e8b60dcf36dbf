"""GIF, APNG and animated WebP through `ginr upscale`: every frame, its duration and the loop kept."""

import json

import numpy as np
import pytest
from PIL import Image

from ginr_cli.io.animation import read_animation
from tests.cli.conftest import hr_crop
from tests.cli.test_not_read import APPLEDOUBLE

DURATIONS = [60, 70, 80]


def animation(path, size=(16, 12), transparent=False):
    """Three frames of a photo crop sliding right, 60-80 ms, looping forever. With `transparent`, each
    frame has a transparent band, columns 4t to 4t+4, and the frames dispose to the background, keep,
    restore the previous: frame 2 shows through frame 3's band."""
    frames = []
    for t in range(3):
        crop = hr_crop(1, (100 + 3 * t, 90, 100 + 3 * t + size[0], 90 + size[1])).quantize(63)
        index = np.array(crop)
        if transparent:
            index[:, 4 * t : 4 * t + 4] = 63
        frame = Image.fromarray(index, "P")
        frame.putpalette(crop.getpalette()[: 63 * 3] + [0, 0, 0])
        frames.append(frame)
    options = {"disposal": [2, 1, 3], "transparency": 63} if transparent else {}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=DURATIONS, loop=0, **options)
    return path


def test_a_folder_of_gifs_and_clutter(ginr, model_2d, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    animation(folder / "moving.gif")
    hr_crop(2, (40, 40, 54, 50)).quantize(64).save(folder / "still.gif")
    hr_crop(3, (40, 40, 52, 52)).save(folder / "photo.png")
    (folder / "notes.txt").write_text("hello\n")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(60))
    (folder / "._x.jpg").write_bytes(APPLEDOUBLE)

    result = ginr("upscale", folder, out, "--scale", "2", "--model", model_2d)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.splitlines()[-1] == (
        "upscale: 3 done, 0 skipped, 0 failed; not read: .txt 1; ignored: 2 system files"
    )
    assert sorted(p.name for p in out.iterdir()) == ["moving.gif", "photo.png", "still.gif"]
    moving = read_animation(out / "moving.gif", max_pixels=None)
    assert len(moving.frames) == 3 and moving.frames[0].shape == (24, 32, 4)
    assert moving.durations == DURATIONS and moving.loop == 0 and moving.meta.format == "GIF"
    assert not np.array_equal(moving.frames[0], moving.frames[1])  # the frames, not the first one 3 times
    with Image.open(out / "still.gif") as still, Image.open(out / "photo.png") as photo:
        assert (still.format, still.size, getattr(still, "n_frames", 1)) == ("GIF", (28, 20), 1)
        assert (photo.format, photo.size) == ("PNG", (24, 24))

    again = json.loads(ginr("upscale", folder, out, "--scale", "2", "--model", model_2d, "--json").stdout)
    assert again["skipped"] == 3 and again["not_read"] == {".txt": 1} and again["ignored"] == 2


@pytest.mark.parametrize("ext", ["png", "webp"])
def test_each_frame_is_upscaled_as_a_still_image_would_be(ginr, model_2d, tmp_path, ext):
    """Losslessly as APNG or WebP: frame i of the output is frame i of the source upscaled alone,
    transparency and all, whatever the source's disposal methods."""
    source = animation(tmp_path / "moving.gif", transparent=True)
    canvases = read_animation(source, max_pixels=None).frames
    out = tmp_path / f"moving.{ext}"
    result = ginr("upscale", source, out, "--scale", "2", "--model", model_2d, "--ext", ext)
    assert result.exit_code == 0, result.output
    moving = read_animation(out, max_pixels=None)
    assert moving.meta.format == {"png": "PNG", "webp": "WEBP"}[ext] and len(moving.frames) == 3
    assert moving.durations == DURATIONS and moving.loop == 0
    for i, canvas in enumerate(canvases):
        Image.fromarray(canvas, "RGBA").save(tmp_path / f"frame{i}.png")
        one = ginr("upscale", tmp_path / f"frame{i}.png", tmp_path / f"up{i}.png", "-s", "2", "-m", model_2d)
        assert one.exit_code == 0, one.output
        expected = np.asarray(Image.open(tmp_path / f"up{i}.png").convert("RGBA")).astype(int)
        got = moving.frames[i].astype(int)
        assert np.abs(got[..., 3] - expected[..., 3]).max() <= 1, i
        seen = expected[..., 3] > 0  # the colour under fully transparent pixels is not stored
        assert np.abs(got[seen] - expected[seen]).max() <= 1, i
    bands = [(canvas[..., 3] == 0).all(axis=0).nonzero()[0].tolist() for canvas in canvases]
    assert bands == [[0, 1, 2, 3], [4, 5, 6, 7], []]  # the disposal methods were followed
    assert (moving.frames[0][:, 1:7, 3] < 40).all() and (moving.frames[1][:, 9:15, 3] < 40).all()
    assert (moving.frames[2][..., 3] == 255).all()


def test_a_truncated_gif_fails_alone(ginr, model_2d, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    raw = animation(tmp_path / "whole.gif").read_bytes()
    (folder / "cut.gif").write_bytes(raw[: len(raw) * 2 // 3])
    animation(folder / "whole.gif")
    result = ginr("upscale", folder, out, "--scale", "2", "--model", model_2d)
    assert result.exit_code == 1, result.output
    err = result.stderr.splitlines()
    assert err[0].startswith(f"failed  {folder / 'cut.gif'}: ") and "truncated or corrupt" in err[0]
    assert err[1] == "upscale: 1 done, 0 skipped, 1 failed"
    assert sorted(p.name for p in out.iterdir()) == ["whole.gif"]  # nothing for the cut one


def test_an_animation_to_a_still_format_or_to_encode_is_refused(ginr, model_2d, codec_2d, tmp_path):
    source = animation(tmp_path / "moving.gif")
    jpg = ginr("upscale", source, tmp_path / "out.jpg", "--scale", "2", "--model", model_2d)
    assert jpg.exit_code == 1 and "JPEG cannot hold an animation" in jpg.stderr
    encoded = ginr("encode", source, "-o", tmp_path / "lat.safetensors", "--model", codec_2d)
    assert encoded.exit_code == 1 and "an animation of 3 frames; encode takes still images" in encoded.stderr
    assert not (tmp_path / "out.jpg").exists() and not (tmp_path / "lat.safetensors").exists()
