"""The training engine: resumes exactly, runs data-parallel under torchrun, guards against NaN."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from ginr_cli.engine.train import TrainOptions, learning_rate, train
from ginr_cli.io.checkpoints import fingerprint, load_model
from tests.conftest import SET5_X2

SET5 = SET5_X2


@pytest.fixture
def photos(tmp_path):
    """Three small real photos (crops of Set5 HR images), or synthetic texture if the set is absent."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, path in enumerate(sorted(SET5.glob("*_HR.png"))[:3]):
        Image.open(path).convert("RGB").crop((0, 0, 64, 56)).save(folder / f"p{i}.png")
    if not any(folder.iterdir()):
        g = torch.Generator().manual_seed(0)
        for i in range(3):
            array = (torch.rand(56, 64, 3, generator=g) * 255).byte().numpy()
            Image.fromarray(array).save(folder / f"p{i}.png")
    return folder


def options(data, out, **changes):
    base = dict(
        data=str(data),
        out=str(out),
        model="tiny-2d",
        steps=6,
        batch=2,
        queries=64,
        warmup=2,
        checkpoint_every=3,
        validate_every=3,
        log_every=1,
        seed=3,
    )
    base.update(changes)
    return TrainOptions(**base)


def losses(run: Path) -> list[tuple[int, float]]:
    with (run / "log.csv").open() as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def test_a_resumed_run_continues_the_same_loss_curve(photos, tmp_path):
    straight = tmp_path / "straight"
    train(options(photos, straight))
    # The same run stopped at its step-3 checkpoint, then resumed.
    resumed = tmp_path / "resumed"
    train(options(photos, resumed, steps=6, checkpoint_every=3), stop_after=3)
    assert losses(resumed)[-1][0] == 3
    train(options(photos, resumed, resume=True))
    assert [s for s, _ in losses(resumed)] == list(range(1, 7))
    for (s1, l1), (s2, l2) in zip(losses(straight), losses(resumed), strict=True):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-4, abs=1e-6)
    a, _ = load_model(straight / "model")
    b, _ = load_model(resumed / "model")
    for name, tensor in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[name], tensor, rtol=1e-4, atol=1e-6)


def test_a_kill_between_the_checkpoint_renames_or_mid_log_row_still_resumes(photos, tmp_path):
    straight = tmp_path / "straight"
    train(options(photos, straight))
    torn = tmp_path / "torn"
    train(options(photos, torn), stop_after=3)
    # As if killed after the old checkpoint was moved aside and before the new one took its place, and
    # while a log row was half written.
    (torn / "checkpoint").rename(torn / "checkpoint.new")
    with (torn / "log.csv").open("a") as f:
        f.write("4,0.01")
    train(options(photos, torn, resume=True))
    assert [s for s, _ in losses(torn)] == list(range(1, 7))
    for (_, l1), (_, l2) in zip(losses(straight), losses(torn), strict=True):
        assert l1 == pytest.approx(l2, rel=1e-4, abs=1e-6)
    assert sorted(p.name for p in torn.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint"]


def test_resume_without_a_checkpoint_is_a_clear_error(photos, tmp_path):
    from ginr_cli.errors import GinrError

    with pytest.raises(GinrError, match="nothing to resume"):
        train(options(photos, tmp_path / "none", resume=True))


def test_learning_rate_warms_up_then_decays():
    opts = options(".", ".", steps=100, warmup=10, lr=1e-3)
    rates = [learning_rate(s, opts) for s in range(100)]
    assert rates[0] < rates[9] == pytest.approx(1e-3)
    assert rates[10] > rates[50] > rates[99] >= 0.05e-3


def test_two_processes_under_torchrun_hold_identical_weights(photos, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29533",
        "-m",
        "ginr_cli",
        "train",
        "--data",
        str(photos),
        "--out",
        str(run),
        "--steps",
        "4",
        "--batch",
        "4",
        "--queries",
        "64",
        "--warmup",
        "1",
        "--checkpoint-every",
        "2",
        "--validate-every",
        "2",
        "-q",
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        result.stderr[:1500] + " ... " + result.stderr[-1500:]
    )  # the cause is first
    ranks = json.loads((run / "ranks.json").read_text())["fingerprints"]
    assert len(ranks) == 2 and ranks[0] == ranks[1]
    model, fp = load_model(run / "model")
    assert fingerprint(model.state_dict()) == ranks[0]
    assert json.loads((run / "train.json").read_text())["world"] == 2


POISONED_RUN = """
import sys

import torch

from ginr_cli.engine import data, train

original = data.SuperResolutionSamples.__getitem__


def poisoned(self, index):  # rank 1's first sample of step 2 (of 0-3; 2 a rank): NaN targets
    sample = original(self, index)
    if index == 9:
        sample["target"] = torch.full_like(sample["target"], float("nan"))
    return sample


data.SuperResolutionSamples.__getitem__ = poisoned
train.train(train.TrainOptions(data=sys.argv[1], out=sys.argv[2], steps=4, batch=4, queries=64, warmup=1,
                               checkpoint_every=2, validate_every=2, log_every=1))
"""


def test_a_non_finite_loss_on_one_rank_skips_the_step_on_every_rank(photos, tmp_path):
    """Only rank 1 sees a NaN loss (at step 2, counted from 0). Had it skipped backward() alone, rank 0
    would wait in DDP's gradient all-reduce for a rank that had moved on: a hang, or ranks a step apart.
    The ranks agree first, skip the step together, and end with the same weights."""
    script, run = tmp_path / "poisoned.py", tmp_path / "ddp"
    script.write_text(POISONED_RUN)
    # Each rank started here, as torchrun would (it starts ranks in sessions of their own, which a
    # timeout could not reach), so a hung run is killed rank by rank.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}
    env["MASTER_PORT"] = "29541"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(photos), str(run)],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    deadline = time.monotonic() + 240
    try:
        stderr = "".join(p.communicate(timeout=max(1, deadline - time.monotonic()))[1] for p in procs)
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.communicate()
        pytest.fail("the data-parallel run hung after a non-finite loss on one rank")
    assert [p.returncode for p in procs] == [0, 0], stderr[:1500] + " ... " + stderr[-1500:]
    assert stderr.count("non-finite loss") == stderr.count("step 2: non-finite loss") == 2, stderr  # both
    ranks = json.loads((run / "ranks.json").read_text())["fingerprints"]
    assert len(ranks) == 2 and ranks[0] == ranks[1]
    assert [s for s, _ in losses(run)] == [1, 2, 3, 4]


def test_init_from_starts_from_that_models_weights(photos, tmp_path):
    first = train(options(photos, tmp_path / "first", steps=2))
    # With a zero learning rate the fine-tuned model must come out exactly as it went in.
    tuned = train(options(photos, tmp_path / "tuned", steps=1, lr=0.0, init_from=str(first)))
    a, _ = load_model(first)
    b, _ = load_model(tuned)
    assert fingerprint(a.state_dict()) == fingerprint(b.state_dict())


def test_sample_workers_give_the_same_run(photos, tmp_path):
    train(options(photos, tmp_path / "inline", steps=4))
    train(options(photos, tmp_path / "workers", steps=4, workers=2))
    for (s1, l1), (s2, l2) in zip(losses(tmp_path / "inline"), losses(tmp_path / "workers"), strict=True):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-4, abs=1e-6)


def test_a_time_limit_ends_the_run_with_a_validated_final_model(photos, tmp_path):
    run = tmp_path / "timed"
    final = train(options(photos, run, steps=1000, time_limit=0.0))
    assert final == run / "model" and (final / "model.safetensors").is_file()
    with (run / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert int(rows[-1]["step"]) < 1000 and rows[-1]["psnr"] != ""
    assert (run / "checkpoint" / "trainer.safetensors").is_file()  # and it can be resumed


def test_under_a_time_limit_the_learning_rate_anneals_by_the_clock():
    opts = options(".", ".", steps=10_000, warmup=10, lr=1e-3, time_limit=1.0)
    assert learning_rate(100, opts, elapsed=0.0) == pytest.approx(
        learning_rate(100, options(".", ".", steps=10_000, warmup=10, lr=1e-3))
    )
    assert learning_rate(100, opts, elapsed=30.0) == pytest.approx(
        0.525e-3, rel=1e-3
    )  # half way: cosine midpoint
    assert learning_rate(100, opts, elapsed=60.0) == pytest.approx(0.05e-3)


def test_a_model_with_local_features_trains(photos, tmp_path):
    final = train(options(photos, tmp_path / "local", model="local-2d", steps=2, queries=32))
    model, _ = load_model(final)
    assert model.cfg.features.local and model.stem is not None


def test_a_config_file_names_the_model_to_train_and_a_bad_one_is_a_usage_error(photos, tmp_path):
    from ginr_cli.errors import UsageError
    from tests.conftest import tiny_config

    config = tmp_path / "mine.json"
    config.write_text(json.dumps(tiny_config(2).to_dict()))
    final = train(options(photos, tmp_path / "run", model=str(config), steps=1))
    assert load_model(final)[0].cfg == tiny_config(2)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**tiny_config(2).to_dict(), "depth": 3}))
    with pytest.raises(UsageError, match="broken.json as a model config: .*unknown key"):
        train(options(photos, tmp_path / "bad", model=str(broken), steps=1))
