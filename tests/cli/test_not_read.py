"""Nothing in a folder is passed over in silence: unread files counted by type, clutter ignored and counted,
`-v` naming both; a folder with nothing to read is one line and exit 1."""

import json

from PIL import Image

APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)  # a ._ file's header


def folder_with_clutter(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (12, 10), (200, 30, 40)).save(folder / "a.png")
    Image.new("RGB", (12, 10), (20, 130, 40)).save(folder / "b.jpg")
    (folder / "notes.txt").write_text("hello\n")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(60))
    (folder / "._b.jpg").write_bytes(APPLEDOUBLE)
    return folder


def test_the_summary_counts_unread_and_ignored_files(ginr, model_2d, tmp_path):
    folder, out = folder_with_clutter(tmp_path), tmp_path / "out"
    result = ginr("upscale", folder, out, "--scale", "2", "--model", model_2d)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # the ._ file is not a failed JPEG
    assert result.stdout.splitlines()[-1] == (
        "upscale: 2 done, 0 skipped, 0 failed; not read: .txt 1; ignored: 2 system files"
    )
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]


def test_verbose_names_them_and_json_counts_them(ginr, model_2d, tmp_path):
    folder, out = folder_with_clutter(tmp_path), tmp_path / "out"
    verbose = ginr("upscale", folder, out, "--scale", "2", "--model", model_2d, "-v")
    assert verbose.exit_code == 0, verbose.output
    lines = verbose.stdout.splitlines()
    assert f"  not read  {folder / 'notes.txt'}" in lines
    assert f"  ignored   {folder / '._b.jpg'}" in lines and f"  ignored   {folder / 'Thumbs.db'}" in lines

    again = ginr("upscale", folder, out, "--scale", "2", "--model", model_2d, "--json")
    summary = json.loads(again.stdout)
    assert summary["skipped"] == 2 and summary["failed"] == []
    assert summary["not_read"] == {".txt": 1} and summary["ignored"] == 2
    assert summary["not_read_files"] == [str(folder / "notes.txt")]


def test_a_folder_with_nothing_to_read_is_one_line_and_exit_1(ginr, model_2d, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello\n")
    for command in (["upscale", folder, out], ["encode", folder, "-o", out]):
        result = ginr(*command, "--model", model_2d)
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        assert result.stderr == f"ginr: error: {folder}: nothing here this command reads (not read: .txt 1)\n"
        assert not out.exists()  # nothing written, not even the output folder
