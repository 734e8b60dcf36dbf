from pathlib import Path

import pytest

from ginr_cli.engine.batch import (
    Job,
    Summary,
    count_unread,
    describe_unread,
    is_clutter,
    plan_jobs,
    run_jobs,
)
from ginr_cli.errors import GinrError, UsageError


def is_png(path: Path) -> bool:
    return path.suffix.lower() == ".png"


def touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")


def test_clutter_is_known_by_name():
    for name in ("._photo.jpg", "Thumbs.db", "thumbs.db", "desktop.ini", ".DS_Store"):
        assert is_clutter(Path("a") / name), name
    for name in ("photo.jpg", "_photo.jpg", ".hidden.png", "notes.txt", "db"):
        assert not is_clutter(Path("a") / name), name


def test_a_folder_counts_what_it_does_not_read(tmp_path):
    touch(tmp_path, "a.png", "B.PNG", "notes.txt", "more.TXT", "README", "Thumbs.db", "._a.png", ".DS_Store")
    plan = plan_jobs([tmp_path], tmp_path / "out", is_png)
    assert sorted(job.src.name for job in plan.jobs) == ["B.PNG", "a.png"]  # ._a.png is not a job
    assert sorted(p.name for p in plan.unread) == ["README", "more.TXT", "notes.txt"]
    assert sorted(p.name for p in plan.ignored) == [".DS_Store", "._a.png", "Thumbs.db"]
    assert count_unread(plan.unread) == {".txt": 2, "(no extension)": 1}
    assert describe_unread(plan.unread, plan.ignored) == (
        "not read: .txt 2, (no extension) 1; ignored: 3 system files"
    )
    summary = Summary(unread=plan.unread, ignored=plan.ignored).to_dict()
    assert summary["not_read"] == {".txt": 2, "(no extension)": 1} and summary["ignored"] == 3
    assert sorted(summary["ignored_files"]) == sorted(str(p) for p in plan.ignored)


def test_subfolders_count_only_when_recursive(tmp_path):
    touch(tmp_path, "a.png", "sub/b.png", "sub/c.txt", "sub/._b.png")
    flat = plan_jobs([tmp_path], tmp_path / "out", is_png)
    assert [job.src.name for job in flat.jobs] == ["a.png"] and flat.unread == [] and flat.ignored == []
    deep = plan_jobs([tmp_path], tmp_path / "out", is_png, recursive=True)
    assert [job.src.name for job in deep.jobs] == ["a.png", "b.png"]
    assert [p.name for p in deep.unread] == ["c.txt"] and [p.name for p in deep.ignored] == ["._b.png"]


@pytest.mark.parametrize(
    ("names", "says"),
    [
        (("notes.txt",), "nothing here this command reads (not read: .txt 1)"),
        (("Thumbs.db", "._a.png"), "nothing here this command reads (ignored: 2 system files)"),
        ((), "nothing here this command reads (no files)"),
    ],
)
def test_a_folder_with_nothing_to_read_is_an_error(tmp_path, names, says):
    folder = tmp_path / "in"
    folder.mkdir()
    touch(folder, *names)
    with pytest.raises(GinrError) as caught:
        plan_jobs([folder], tmp_path / "out", is_png)
    assert not isinstance(caught.value, UsageError)  # exit 1: the inputs, not the command line
    assert caught.value.message == says and caught.value.path == folder
    assert not (tmp_path / "out").exists()


def test_a_clutter_file_named_alone_fails_with_a_reason(tmp_path):
    touch(tmp_path, "._a.png")
    plan = plan_jobs([tmp_path / "._a.png"], tmp_path / "out", is_png)
    assert "operating system" in plan.jobs[0].problem


def _jobs(tmp_path: Path, names: list[str]) -> list[Job]:
    (tmp_path / "out").mkdir()
    return [Job(tmp_path / name, tmp_path / "out" / name) for name in names]


def test_ctrl_c_just_after_an_output_is_written_counts_it_done(tmp_path):
    jobs = _jobs(tmp_path, ["a.png", "b.png"])

    def write_then_interrupt(job):
        job.dst.write_bytes(b"complete")  # renamed into place, and then Ctrl+C comes
        raise KeyboardInterrupt

    summary = run_jobs(jobs, write_then_interrupt)
    assert summary.interrupted and summary.exit_code == 130
    assert [(o.job.dst.name, o.status) for o in summary.outcomes] == [("a.png", "done")]


def test_ctrl_c_before_an_output_is_written_counts_nothing(tmp_path):
    jobs = _jobs(tmp_path, ["a.png"])
    jobs[0].dst.write_bytes(b"an old output, overwritten")

    def interrupt(job):
        raise KeyboardInterrupt

    summary = run_jobs(jobs, interrupt, overwrite=True)
    assert summary.interrupted and summary.outcomes == []


def test_ctrl_c_after_an_outcome_is_counted_counts_it_once(tmp_path):
    jobs = _jobs(tmp_path, ["a.png", "b.png"])

    def interrupt_after_the_first(index, outcome):
        raise KeyboardInterrupt

    summary = run_jobs(jobs, lambda job: job.dst.write_bytes(b"complete"), on_end=interrupt_after_the_first)
    assert summary.interrupted
    assert [(o.job.dst.name, o.status) for o in summary.outcomes] == [("a.png", "done")]
