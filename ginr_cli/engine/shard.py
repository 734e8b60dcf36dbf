"""Batches across processes and machines: `torchrun ... -m ginr_cli upscale|encode|decode IN OUT`.

torchrun starts one process (rank) per GPU or share of the CPU and sets RANK, WORLD_SIZE and LOCAL_RANK;
without it there is one rank and nothing here talks to anyone. Under torchrun:
- every rank plans the batch (a bad command line fails on each alike), then all follow rank 0's plan:
  each job given to one rank, balanced by size (largest first, each to the least loaded rank); outputs
  that already exist weigh nothing, so a rerun after a kill balances what is left;
- each rank runs its share with the one-process guarantees (`batch.run_jobs`): atomic outputs, skips,
  failures recorded and the batch going on;
- rank 0 gathers the outcomes into one summary in the job order; a rank interrupted (Ctrl+C reaches every
  rank; torchrun's SIGTERM is taken as one) reports its own part and does not wait for the others.
The process group is gloo: only the plan and the summaries travel, a few kilobytes.
"""

from __future__ import annotations

import datetime
import heapq
import math
import os
import signal
from dataclasses import dataclass, field

from ginr_cli.engine.batch import Job, Summary

# A rank that finishes first waits in the final gather for the slowest: long files take hours.
GATHER_TIMEOUT = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1


def current() -> Ranks:
    """This process's place, from torchrun's environment (one rank without it)."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    return Ranks(
        int(env.get("RANK", "0")),
        world,
        int(env.get("LOCAL_RANK", "0")),
        int(env.get("LOCAL_WORLD_SIZE", str(world))),
    )


def join(ranks: Ranks) -> None:
    """Join torchrun's process group, take this rank's share of the CPU threads, and turn the SIGTERM with
    which torchrun stops a run into Ctrl+C, so a file being written is cleaned up as on Ctrl+C."""
    import torch
    import torch.distributed as dist

    if not ranks.distributed or dist.is_initialized():
        return
    dist.init_process_group("gloo", timeout=GATHER_TIMEOUT)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // ranks.local_world))
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def leave(ranks: Ranks) -> None:
    import torch.distributed as dist

    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def work_of(job: Job, overwrite: bool) -> float:
    """What a job costs, roughly: its input's values (pixels, voxels) where the header says, else its bytes
    on disk; nothing when its output exists and will be skipped."""
    if job.problem or (job.dst.exists() and not overwrite):
        return 0.0
    try:
        return float(_values(job))
    except Exception:  # the job itself will report a damaged file
        return 0.0


def _values(job: Job) -> int:
    if job.series is not None:
        return job.series.bytes
    name = job.src.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        return math.prod(nib.load(job.src).shape)
    if name.endswith((".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")):
        from PIL import Image

        with Image.open(job.src) as image:
            frames = getattr(image, "n_frames", 1) if image.format in ("GIF", "PNG", "WEBP") else 1
            return image.width * image.height * len(image.getbands()) * frames
    return job.src.stat().st_size


def assign(costs: list[float], world: int) -> list[int]:
    """The rank of each job: largest first, each to the least loaded rank (ties: the lower rank)."""
    owner = [0] * len(costs)
    loads = [(0.0, r) for r in range(world)]
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, rank = heapq.heappop(loads)
        owner[index] = rank
        heapq.heappush(loads, (load + costs[index], rank))
    return owner


@dataclass
class Share:
    """This rank's jobs, with their places in the whole batch."""

    jobs: list[Job]
    indices: list[int] = field(default_factory=list)
    total: int = 0


def share(jobs: list[Job], ranks: Ranks, overwrite: bool) -> Share:
    """This rank's part of the batch. Rank 0's plan is the one every rank follows: the ranks plan at
    slightly different moments, and a file finished in between would change another rank's plan."""
    if not ranks.distributed:
        return Share(jobs, list(range(len(jobs))), len(jobs))
    import torch.distributed as dist

    plan = [None]
    if ranks.rank == 0:
        plan = [(jobs, assign([work_of(job, overwrite) for job in jobs], ranks.world))]
    dist.broadcast_object_list(plan, src=0)
    jobs, owner = plan[0]
    mine = [i for i, r in enumerate(owner) if r == ranks.rank]
    return Share([jobs[i] for i in mine], mine, len(jobs))


def gather(summary: Summary, part: Share, ranks: Ranks) -> Summary | None:
    """Rank 0: every rank's outcomes in the batch's order; None on the other ranks. An interrupted rank
    (or every rank, when a peer is gone) returns its own summary instead, without waiting for the others."""
    if not ranks.distributed or summary.interrupted:
        return summary
    import torch.distributed as dist

    mine = (list(zip(part.indices, summary.outcomes, strict=False)), summary.interrupted)
    parts = [None] * ranks.world if ranks.rank == 0 else None
    try:
        dist.gather_object(mine, parts, dst=0)
    except RuntimeError:  # a peer is gone (killed, or stopped by Ctrl+C before this point): each rank
        summary.interrupted = True  # reports its own part, and a rerun finishes the batch
        return summary
    if ranks.rank != 0:
        return None
    merged = Summary(interrupted=any(interrupted for _, interrupted in parts))
    merged.outcomes = [o for _, o in sorted((pair for pairs, _ in parts for pair in pairs), key=_index)]
    return merged


def _index(pair) -> int:
    return pair[0]
