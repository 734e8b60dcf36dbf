"""The training engine: arbitrary-scale super-resolution on a folder of images or volumes.

One process, or data-parallel under `torchrun` (DDP: NCCL on CUDA, gloo on CPU; only rank 0 writes).
A run folder holds:
    train.json          the resolved training options and model config
    log.csv             step, loss, learning rate, seconds, and validation PSNR when measured
    checkpoint/         config.json + model.safetensors + trainer.safetensors (optimizer, step), atomic
    model/              the final model folder, ready for `ginr upscale --model`
    preview-STEP.png    input | bicubic | ginr | truth, side by side (images)
Resuming restores model, optimizer, schedule and step; samples depend only on (seed, index), so a resumed
run on the CPU continues the same loss curve.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ginr_cli.engine import data as training_data
from ginr_cli.engine import metrics
from ginr_cli.engine.infer import pick_device
from ginr_cli.errors import GinrError, UsageError
from ginr_cli.io.atomic import atomic_path, fsync_folder
from ginr_cli.io.checkpoints import find_model, load_model, save_model
from ginr_cli.nn.config import GINRConfig, preset
from ginr_cli.nn.ginr import MambaGINR

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    data: str
    out: str
    kind: str = "image"  # "image" or "volume"
    model: str = "tiny-2d"  # a preset name for a new model
    name: str | None = None  # the new model's name (default: the preset's)
    init_from: str | None = None  # a model folder or shipped model to fine-tune instead
    val_data: str | None = None  # held-out files for the validation PSNR (default: the training files)
    steps: int = 2000
    batch: int = 8
    queries: int = 1024
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup: int = 100
    clip: float = 1.0
    scale_min: float = 1.0
    scale_max: float = 4.0
    base_prob: float = 0.5  # share of samples decoded with the interpolation base (upscaling)
    seed: int = 0
    checkpoint_every: int = 200
    validate_every: int = 200
    log_every: int = 10
    device: str = "auto"
    resume: bool = False
    workers: int = 0  # processes preparing samples (0: in the training process)
    time_limit: float | None = None  # minutes: the run ends there as if its steps were done


def learning_rate(step: int, opts: TrainOptions, elapsed: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak. Under a time limit the decay follows the
    steps or the clock, whichever is further on, so a run cut by its limit has still annealed."""
    if step < opts.warmup:
        return opts.lr * (step + 1) / opts.warmup
    progress = min(1.0, (step - opts.warmup) / max(1, opts.steps - opts.warmup))
    if opts.time_limit is not None:
        progress = max(progress, min(1.0, elapsed / max(60 * opts.time_limit, 1e-9)))
    return opts.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _save_trainer(path: Path, optimizer: torch.optim.Optimizer, step: int) -> None:
    """Optimizer state as flat tensors plus JSON metadata: no pickle."""
    state = optimizer.state_dict()
    tensors = {
        f"state.{index}.{key}": value.detach().cpu().contiguous()
        for index, slots in state["state"].items()
        for key, value in slots.items()
    }
    meta = {"param_groups": json.dumps(state["param_groups"]), "step": str(step)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _save_checkpoint(model: MambaGINR, optimizer: torch.optim.Optimizer, step: int, folder: Path) -> None:
    """Weights and trainer state together: written complete beside `folder`, then swapped in by renames,
    so a kill at any moment leaves one whole checkpoint (`folder`, or `<folder>.new` between renames)."""
    staging, old = folder.with_name(folder.name + ".new"), folder.with_name(folder.name + ".old")
    shutil.rmtree(staging, ignore_errors=True)
    save_model(model, staging)
    _save_trainer(staging / "trainer.safetensors", optimizer, step)
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    fsync_folder(folder.parent)  # the renames survive a power cut
    shutil.rmtree(old, ignore_errors=True)


def _last_checkpoint(folder: Path) -> Path | None:
    """`folder`; without it, its `.new` twin, complete when its trainer file (written last) is there."""
    candidate = folder if folder.exists() else folder.with_name(folder.name + ".new")
    return candidate if (candidate / "trainer.safetensors").is_file() else None


def _load_trainer(path: Path, optimizer: torch.optim.Optimizer) -> int:
    from safetensors import safe_open

    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        slots.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": slots, "param_groups": json.loads(meta["param_groups"])})
    return int(meta["step"])


def _build_model(opts: TrainOptions) -> MambaGINR:
    if opts.init_from:
        model, _ = load_model(find_model(opts.init_from))
        return model.train()
    if opts.model.endswith(".json"):  # a config file, as a model folder's config.json
        try:
            cfg = GINRConfig.from_dict(json.loads(Path(opts.model).read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise UsageError(f"cannot use {opts.model} as a model config: {err}") from err
    else:
        try:
            cfg = preset(opts.model)
        except KeyError as err:
            raise UsageError(str(err.args[0])) from err
    cfg = cfg.replace(name=opts.name) if opts.name else cfg
    expected_rank = 2 if opts.kind == "image" else 3
    if cfg.rank != expected_rank:
        raise UsageError(f"preset {opts.model!r} is for rank {cfg.rank} data, but --kind is {opts.kind}")
    try:
        return MambaGINR(cfg)
    except (ValueError, TypeError, ZeroDivisionError) as err:
        raise UsageError(f"cannot use {opts.model} as a model config: {err}") from err


@torch.no_grad()
def validate(
    model: MambaGINR, arrays, spec: training_data.SampleSpec, device, seed: int, preview: Path | None
):
    """PSNR (model units span 2, so peak 2) of ginr with its base and of plain bicubic, on whole crops."""
    model.eval()
    ours, bicubic = [], []
    panels = []
    scales = (2.0, 4.0)
    for scale in scales:
        rng = np.random.default_rng([seed, 99, int(scale)])
        array = arrays[int(rng.integers(len(arrays)))]
        t = spec.tile
        # Images: both axes; volumes: thick slices along the last axis, as `ginr eval` measures them.
        factors = [scale] * 2 if model.cfg.rank == 2 else [1.0, 1.0, scale]
        hr = [min(n, round(t * f)) for n, f in zip(array.shape[1:], factors, strict=True)]
        start = [(n - h) // 2 for n, h in zip(array.shape[1:], hr, strict=True)]  # central: not background
        crop = array[(slice(None), *(slice(a, a + h) for a, h in zip(start, hr, strict=True)))].float()[None]
        mode = "bicubic" if model.cfg.rank == 2 else "area"
        kw = {"antialias": True, "align_corners": False} if mode == "bicubic" else {}
        lr = F.interpolate(crop, size=[t] * model.cfg.rank, mode=mode, **kw).to(device)
        latents, field = model.encode_with_features(lr)
        pred = model.decode_grid(latents, hr, x=lr, field=field).cpu()
        interp = "bicubic" if model.cfg.rank == 2 else "trilinear"
        base = F.interpolate(lr.cpu(), size=hr, mode=interp, align_corners=False)
        ours.append(_psnr(pred, crop))
        bicubic.append(_psnr(base, crop))
        if model.cfg.rank == 2:
            panels.append((lr.cpu(), base, pred, crop))
    model.train()
    if preview is not None and panels:
        _write_preview(preview, panels[-1])
    return float(np.mean(ours)), float(np.mean(bicubic))


@torch.no_grad()
def validate_codec(model: MambaGINR, arrays, spec: training_data.SampleSpec, device, seed: int):
    """A codec model on central crops, latents rounded as stored: (PSNR at scale 1, bits per pixel)."""
    model.eval()
    scores, rates = [], []
    for i in range(4):
        array = arrays[int(np.random.default_rng([seed, 98, i]).integers(len(arrays)))]
        t = spec.tile
        start = [(n - t) // 2 for n in array.shape[1:]]
        crop = array[(slice(None), *(slice(a, a + t) for a in start))].float()[None].to(device)
        latents = torch.round(model.encode(crop))
        rates.append(model.rate(latents).sum().item() / t**model.cfg.rank)
        pred = model.decode_grid(latents, crop.shape[2:], shape=crop.shape[2:])
        scores.append(_psnr(pred.cpu(), crop.cpu()))
    model.train()
    return float(np.mean(scores)), float(np.mean(rates))


def _validate_any(model: MambaGINR, arrays, spec, device, seed: int, out: Path, step: int) -> dict:
    """The log's validation columns: PSNR and bicubic's for an upscaler, PSNR and bits for a codec."""
    if model.cfg.latent.grid:
        ours, bits = validate_codec(model, arrays, spec, device, seed)
        return {"psnr": round(ours, 3), "val_bpp": round(bits, 4)}
    preview = out / f"preview-{step:06d}.png" if model.cfg.rank == 2 else None
    ours, bicubic = validate(model, arrays, spec, device, seed, preview)
    return {"psnr": round(ours, 3), "psnr_bicubic": round(bicubic, 3)}


def _psnr(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """PSNR in model units (values span [-1, 1]: a data range of 2), by the package's one PSNR."""
    return metrics.psnr(pred.clamp(-1, 1).float().numpy(), truth.float().numpy(), 2.0)


def _write_preview(path: Path, panel) -> None:
    from ginr_cli.io.images import ImageMeta, write_image

    lr, base, pred, truth = panel
    size = truth.shape[-2:]
    lr_big = F.interpolate(lr, size=size, mode="nearest")
    row = torch.cat([lr_big, base, pred, truth], dim=-1)[0]  # (c, h, 4w)
    color = ((row.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
    write_image(path, color, None, ImageMeta(format="PNG", mode="RGB", bit_depth=8, size=color.shape[:2]))


def train(
    opts: TrainOptions, on_log: Callable[[dict], None] | None = None, stop_after: int | None = None
) -> Path:
    """Run (or resume) a training run. Returns the folder of the final model.

    `stop_after` ends the run early at that step, as a kill would, leaving its checkpoint to resume from.
    """
    rank, world = _distributed()
    out = Path(opts.out)
    device = pick_device(opts.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.manual_seed(opts.seed)
    model = _build_model(opts).to(device)
    cfg = model.cfg
    files = training_data.find_files(opts.data, opts.kind)
    arrays = _load_arrays(files, opts.kind, cfg.in_channels)
    val_arrays = (
        _load_arrays(training_data.find_files(opts.val_data, opts.kind), opts.kind, cfg.in_channels)
        if opts.val_data
        else arrays
    )
    codec = cfg.latent.grid
    scales = (1.0, 1.0) if codec else (opts.scale_min, opts.scale_max)  # a codec reproduces its input
    spec = training_data.SampleSpec(cfg.input_size, opts.queries, *scales)
    samples = training_data.SuperResolutionSamples(
        arrays, spec, length=opts.steps * opts.batch, seed=opts.seed
    )
    optimizer = torch.optim.AdamW(_param_groups(model), lr=opts.lr, weight_decay=opts.weight_decay)
    step = 0
    checkpoint = out / "checkpoint"
    if opts.resume:
        last = _last_checkpoint(checkpoint)
        if last is None:
            raise GinrError("nothing to resume: no checkpoint in this run folder", out)
        resumed, _ = load_model(last)
        model.load_state_dict(resumed.state_dict())
        step = _load_trainer(last / "trainer.safetensors", optimizer)
        if rank == 0:
            _truncate_log(out / "log.csv", step)
    net = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "train.json") as tmp:
            tmp.write_text(
                json.dumps({"options": asdict(opts), "model": cfg.to_dict(), "world": world}, indent=2)
            )
    per_rank = max(1, opts.batch // world)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the stem's convolutions always see the same shapes
    board = _tensorboard(out) if rank == 0 else None
    started = time.perf_counter()
    model.train()
    last = opts.steps if stop_after is None else min(stop_after, opts.steps)
    loader = torch.utils.data.DataLoader(
        samples,
        batch_sampler=_batches(range(step, last), per_rank, rank, world, len(samples)),
        num_workers=opts.workers,
        pin_memory=device.type == "cuda",
    )
    timed_out = False
    for batch in loader:
        elapsed = _elapsed(started, device, world) if opts.time_limit is not None else 0.0
        if opts.time_limit is not None and elapsed > 60 * opts.time_limit:
            timed_out = True
            break
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        use_base = np.random.default_rng([opts.seed, 7, step]).random() < opts.base_prob
        rate = learning_rate(step, opts, elapsed)
        for group in optimizer.param_groups:
            group["lr"] = rate * group["lr_scale"]
        with autocast:
            if codec:
                pred, bits, steps = net(batch["lr"], batch["coords"], batch["cell"], with_rate=True)
            else:
                pred = net(batch["lr"], batch["coords"], batch["cell"], use_base=use_base)
        if codec:  # rate and distortion, as the codec is judged: squared error plus its bits' worth at the
            # sample's step (rate_weight * step^2, the slope of a uniform quantiser's rate-distortion curve)
            error = (pred.float() - batch["target"]).square().mean(dim=(1, 2))  # (b,)
            loss = (error + cfg.latent.rate_weight * steps.float().square() * bits.float()).mean()
        else:
            loss = F.l1_loss(pred.float(), batch["target"])
        optimizer.zero_grad(set_to_none=True)
        if _finite_everywhere(loss, world):
            # The gradient of log(loss): refining an interpolation and reconstructing from the latents
            # alone have errors an order of magnitude apart, and Adam would otherwise tune its step to the
            # larger one.
            # (A codec's loss is a rate-distortion trade-off, whose terms must keep their weights.)
            (loss if codec else loss / loss.detach().clamp_min(1e-8)).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip)
            optimizer.step()
        else:  # NaN guard: skip the update on every rank, keep going
            log.warning("step %d: non-finite loss (on this or another rank), update skipped", step)
        step += 1
        if rank != 0:
            continue
        row = {
            "step": step,
            "loss": round(loss.item(), 6),
            "lr": f"{rate:.3e}",
            "seconds": round(time.perf_counter() - started, 2),
            "psnr": "",
            "psnr_bicubic": "",
            **({"bpp": round(bits.float().mean().item(), 4), "val_bpp": ""} if codec else {}),
        }
        if step % opts.validate_every == 0 or step == opts.steps:
            row.update(_validate_any(model, val_arrays, spec, device, opts.seed, out, step))
        if step % opts.log_every == 0 or row["psnr"] != "":
            _append_csv(out / "log.csv", row)
            if board:
                for key in ("loss", "psnr", "psnr_bicubic"):
                    if row[key] != "":
                        board.add_scalar(key, row[key], step)
            if on_log:
                on_log(row)
        if step % opts.checkpoint_every == 0 or step == opts.steps:
            _save_checkpoint(model, optimizer, step, checkpoint)
    if timed_out and rank == 0:
        log.warning("time limit of %s minutes reached at step %d of %d", opts.time_limit, step, opts.steps)
        row = {"step": step, "loss": "", "lr": "", "seconds": round(time.perf_counter() - started, 2)}
        row.update({"psnr": "", "psnr_bicubic": "", **({"bpp": "", "val_bpp": ""} if codec else {})})
        _append_csv(
            out / "log.csv", {**row, **_validate_any(model, val_arrays, spec, device, opts.seed, out, step)}
        )
        _save_checkpoint(model, optimizer, step, checkpoint)
    if step < opts.steps and not timed_out:  # stopped early: no final model
        return checkpoint
    final = out / "model"
    if rank == 0:
        save_model(model, final)
    if world > 1:
        _record_rank_fingerprints(model, out, rank, world)
        # Every rank done communicating before any tears its group down: gloo could abort a process
        # ("terminate called without an active exception") when a peer left mid-exchange.
        dist.barrier()
        dist.destroy_process_group()
    return final


RATE_LR_SCALE = 30.0


def _param_groups(model: MambaGINR) -> list[dict]:
    """The optimizer's parameter groups. A codec's rate model (two numbers a channel) learns RATE_LR_SCALE
    times faster than the rest: when its scales lag behind the latents, the rate term's gradient shrinks
    the latents instead, and the codec loses fidelity to save bits it only seems to spend."""
    rate = [] if model.rate is None else list(model.rate.parameters())
    ids = {id(p) for p in rate}
    groups = [{"params": [p for p in model.parameters() if id(p) not in ids], "lr_scale": 1.0}]
    return groups + ([{"params": rate, "lr_scale": RATE_LR_SCALE, "weight_decay": 0.0}] if rate else [])


def _batches(steps: range, per_rank: int, rank: int, world: int, length: int):
    """The sample indices of each step for this rank, made as they are needed: rank r takes every
    world-th sample from r (as torch's DistributedSampler without shuffling), `per_rank` a step."""
    for s in steps:
        yield [((s * per_rank + j) * world + rank) % length for j in range(per_rank)]


def _finite_everywhere(loss: torch.Tensor, world: int) -> bool:
    """Whether the loss is finite on every rank. The ranks agree before any skips backward(): a rank that
    skipped it alone would leave the others waiting in DDP's gradient all-reduce."""
    finite = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
    if world > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def _elapsed(started: float, device: torch.device, world: int) -> float:
    """Seconds since `started` as rank 0 counts them, so every rank takes the same learning rate and stops
    at the same step."""
    if world == 1:
        return time.perf_counter() - started
    value = torch.tensor([time.perf_counter() - started], dtype=torch.float64, device=device)
    dist.broadcast(value, 0)
    return value.item()


def _load_arrays(files: list[Path], kind: str, channels: int) -> list[torch.Tensor]:
    if kind == "image":
        return training_data.load_image_arrays(files, channels)
    return training_data.load_volume_arrays(files)


def _truncate_log(path: Path, step: int) -> None:
    """On resume, drop log rows written after the checkpoint, so the log reads as one run."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], [r for r in reader if _step_of(r) <= step]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _step_of(row: dict) -> float:
    """A log row's step; a row torn by a kill (fields missing) counts as after any checkpoint."""
    try:
        return int(row["step"]) if row.get("seconds") not in (None, "") else math.inf
    except (TypeError, ValueError):
        return math.inf


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _record_rank_fingerprints(model: MambaGINR, out: Path, rank: int, world: int) -> None:
    """Gather every rank's weight fingerprint; rank 0 writes them to ranks.json (they must all agree)."""
    from ginr_cli.io.checkpoints import fingerprint

    fingerprints: list[str | None] = [None] * world
    dist.all_gather_object(fingerprints, fingerprint(model.state_dict()))
    if rank == 0:
        with atomic_path(out / "ranks.json") as tmp:
            tmp.write_text(json.dumps({"fingerprints": fingerprints}))
