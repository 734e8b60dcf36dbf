"""GIF, APNG and animated WebP through ginr_cli.io.animation and io.images (Pillow; tiny files)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ginr_cli.errors import GinrError
from ginr_cli.io.animation import read_animation, write_animation
from ginr_cli.io.images import ImageMeta, read_image, write_image

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def square(x: int, color) -> Image.Image:
    """A 12x8 transparent canvas with a 4x4 square at column x."""
    a = np.zeros((8, 12, 4), np.uint8)
    a[2:6, x : x + 4] = (*color, 255)
    return Image.fromarray(a, "RGBA")


@pytest.fixture
def disposals(tmp_path):
    """A transparent GIF whose frames dispose in each way: restore to background, keep, restore to
    previous, then background again; 40 to 70 ms, looping 3 times."""
    frames = [square(0, RED), square(4, GREEN), square(8, BLUE), square(2, YELLOW)]
    path = tmp_path / "moves.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[40, 50, 60, 70], loop=3,
                   disposal=[2, 1, 3, 2], transparency=0)  # fmt: skip
    return path


def covered(frame: np.ndarray) -> list[int]:
    """Which columns of row 3 are opaque."""
    return (frame[3, :, 3] == 255).astype(int).tolist()


def test_frames_are_the_canvases_a_viewer_shows(disposals):
    anim = read_animation(disposals, max_pixels=None)
    assert anim.durations == [40, 50, 60, 70] and anim.loop == 3 and anim.meta.format == "GIF"
    # 1: red; 2: red disposed (background), green; 3: green kept, blue beside it;
    # 4: blue's frame restored to before it (green alone), yellow over it
    assert covered(anim.frames[0]) == [1] * 4 + [0] * 8
    assert covered(anim.frames[1]) == [0] * 4 + [1] * 4 + [0] * 4
    assert covered(anim.frames[2]) == [0] * 4 + [1] * 8
    assert covered(anim.frames[3]) == [0] * 2 + [1] * 6 + [0] * 4
    assert anim.frames[3][3, 2:6, :3].tolist() == [list(YELLOW)] * 4
    assert anim.frames[3][3, 6:8, :3].tolist() == [list(GREEN)] * 2
    assert read_image(disposals).meta.frames == 4


@pytest.mark.parametrize("ext", ["gif", "png", "webp"])
def test_an_animation_round_trips_in_each_format(disposals, tmp_path, ext):
    anim = read_animation(disposals, max_pixels=None)
    out = write_animation(tmp_path / f"out.{ext}", anim.frames, anim.durations, anim.loop, anim.meta)
    again = read_animation(out, max_pixels=None)
    assert again.meta.format == {"gif": "GIF", "png": "PNG", "webp": "WEBP"}[ext]
    assert again.durations == anim.durations and again.loop == 3
    assert len(again.frames) == 4  # every frame differs from the one before, so each is kept
    for a, b in zip(anim.frames, again.frames, strict=True):
        assert np.array_equal(a[..., 3], b[..., 3])  # transparency exactly where it was
        assert np.array_equal(a[a[..., 3] > 0], b[b[..., 3] > 0])  # few colours: the palette is exact
    assert not list(tmp_path.glob(".*.part"))


def test_a_gif_without_a_loop_plays_once_in_every_format(tmp_path):
    frames = [square(0, RED), square(6, BLUE)]
    frames[0].save(tmp_path / "once.gif", save_all=True, append_images=frames[1:], duration=100)
    anim = read_animation(tmp_path / "once.gif", max_pixels=None)
    assert anim.loop is None
    write_animation(tmp_path / "once2.gif", anim.frames, anim.durations, anim.loop, anim.meta)
    write_animation(tmp_path / "once.png", anim.frames, anim.durations, anim.loop, anim.meta)
    assert read_animation(tmp_path / "once2.gif", max_pixels=None).loop is None
    assert read_animation(tmp_path / "once.png", max_pixels=None).loop == 1  # APNG: 1 play


def test_many_colours_get_one_good_shared_palette(tmp_path):
    y, x = np.mgrid[0:24, 0:32]
    frames = []
    for t in range(3):  # smooth gradients, 2238 colours in all
        rgb = np.stack([x * 8, y * 10, (x + y + 20 * t) * 4], -1).clip(0, 255)
        frames.append(np.dstack([rgb, np.full((24, 32), 255)]).astype(np.uint8))
    meta = ImageMeta(format="GIF", size=(24, 32))
    write_animation(tmp_path / "g.gif", frames, [80] * 3, 0, meta)
    again = read_animation(tmp_path / "g.gif", max_pixels=None)
    for a, b in zip(frames, again.frames, strict=True):
        error = np.abs(a.astype(int) - b.astype(int))[..., :3]
        web = Image.fromarray(a[..., :3]).convert("P", palette=Image.Palette.WEB, dither=Image.Dither.NONE)
        web_error = np.abs(a[..., :3].astype(int) - np.asarray(web.convert("RGB")))
        assert error.mean() < 7 and error.mean() < 0.6 * web_error.mean()  # fitted, not a fixed palette
        assert (b[..., 3] == 255).all()


def test_an_animation_cannot_be_written_to_a_still_format(disposals, tmp_path):
    anim = read_animation(disposals, max_pixels=None)
    with pytest.raises(GinrError, match="cannot hold an animation"):
        write_animation(tmp_path / "out.jpg", anim.frames, anim.durations, anim.loop, anim.meta)


def test_a_still_gif_reads_like_a_palette_image_and_writes_back(tmp_path):
    a = np.zeros((6, 10, 4), np.uint8)
    a[:, :5] = (*RED, 255)
    a[:, 5:] = (*BLUE, 0)  # transparent half
    Image.fromarray(a, "RGBA").save(tmp_path / "still.gif", transparency=0)
    image = read_image(tmp_path / "still.gif")
    assert image.meta.format == "GIF" and image.meta.frames == 1 and image.meta.mode == "P"
    assert image.alpha is not None and image.alpha[:, :5].min() == 1 and image.alpha[:, 5:].max() == 0
    write_image(tmp_path / "again.gif", image.color, image.alpha, image.meta)
    with Image.open(tmp_path / "again.gif") as im:
        assert im.format == "GIF" and im.size == (10, 6)
        rgba = np.asarray(im.convert("RGBA"))
    assert rgba[:, :5].tolist() == [[[*RED, 255]] * 5] * 6 and (rgba[:, 5:, 3] == 0).all()


@pytest.mark.parametrize("keep", [0.4, 0.7, 0.9])
def test_a_truncated_gif_is_one_line(disposals, tmp_path, keep):
    raw = disposals.read_bytes()
    cut = tmp_path / "cut.gif"
    cut.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(GinrError, match="truncated or corrupt") as caught:
        read_animation(cut, max_pixels=None)
    assert "\n" not in str(caught.value) and caught.value.path == cut
