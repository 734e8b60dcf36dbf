"""Sharding a batch between torchrun ranks: balanced by size, outputs that exist weigh nothing, and one
process is one rank that keeps its whole batch."""

from pathlib import Path

import numpy as np
from PIL import Image

from ginr_cli.engine import shard
from ginr_cli.engine.batch import Job, Outcome, Summary


def test_jobs_are_balanced_by_size_not_by_count():
    costs = [100.0, 1.0, 1.0, 1.0, 1.0, 60.0, 40.0]
    owner = shard.assign(costs, 2)
    loads = [sum(c for c, r in zip(costs, owner, strict=True) if r == rank) for rank in range(2)]
    assert sorted(loads) == [102.0, 102.0]  # by count it would be 4 and 3 jobs: 104 against 100 at best
    assert owner[0] != owner[5] or owner[0] != owner[6]  # the big ones are spread
    assert shard.assign([], 3) == []
    assert sorted(set(shard.assign([1.0] * 7, 3))) == [0, 1, 2]


def test_work_is_the_input_size_and_nothing_for_finished_outputs(tmp_path):
    small, big = tmp_path / "small.png", tmp_path / "big.png"
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(small)
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(big)
    done = tmp_path / "done.png"
    done.write_bytes(b"x")
    assert shard.work_of(Job(small, tmp_path / "a.png"), False) == 10 * 20 * 3
    assert shard.work_of(Job(big, tmp_path / "b.png"), False) == 40 * 50 * 3
    assert shard.work_of(Job(big, done), False) == 0.0  # skipped on a rerun
    assert shard.work_of(Job(big, done), True) == 40 * 50 * 3  # --overwrite redoes it
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert shard.work_of(Job(broken, tmp_path / "c.png"), False) == 0.0  # the job reports it


def test_one_process_keeps_the_whole_batch(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ranks = shard.current()
    assert not ranks.distributed
    jobs = [Job(Path(f"{i}.png"), Path(f"out/{i}.png")) for i in range(3)]
    part = shard.share(jobs, ranks, overwrite=False)
    assert part.jobs == jobs and part.indices == [0, 1, 2]
    summary = Summary([Outcome(job, "done") for job in jobs])
    assert shard.gather(summary, part, ranks) is summary


def test_torchrun_environment_is_read(monkeypatch):
    for key, value in {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    assert shard.current() == shard.Ranks(3, 4, 1, 2)
