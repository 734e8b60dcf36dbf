"""`ginr train --data DIR`: train a model on a folder of images or volumes (under torchrun: data-parallel)."""

from __future__ import annotations

from typing import Annotated

import typer

from ginr_cli.cli.common import DeviceOption, JsonOption, QuietOption, report_errors
from ginr_cli.nn.config import PRESETS  # no torch: `ginr --help` stays quick


@report_errors
def train(
    data: Annotated[
        str, typer.Option("--data", help="Folder of training images or volumes (searched recursively).")
    ],
    out: Annotated[
        str, typer.Option("--out", "-o", help="Run folder: log, checkpoints, previews, final model.")
    ] = "runs/train",
    kind: Annotated[str, typer.Option(help="image or volume.")] = "image",
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help=f"Preset for a new model ({', '.join(PRESETS)}), or a config .json file.",
        ),
    ] = "tiny-2d",
    name: Annotated[str | None, typer.Option(help="Name of the new model (default: the preset's).")] = None,
    init_from: Annotated[
        str | None, typer.Option(help="Fine-tune this model folder or shipped model instead.")
    ] = None,
    val_data: Annotated[str | None, typer.Option(help="Held-out files for validation PSNR.")] = None,
    steps: Annotated[int, typer.Option(min=1)] = 2000,
    batch: Annotated[int, typer.Option(min=1, help="Samples per step, over all processes.")] = 8,
    queries: Annotated[int, typer.Option(min=1, help="Query points per sample.")] = 1024,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (AdamW).")] = 5e-4,
    warmup: Annotated[int, typer.Option(min=0)] = 100,
    scale_min: Annotated[float, typer.Option(min=1.0)] = 1.0,
    scale_max: Annotated[float, typer.Option(min=1.0)] = 4.0,
    base_prob: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of steps that refine the interpolation.")
    ] = 0.5,
    seed: int = 0,
    checkpoint_every: Annotated[int, typer.Option(min=1)] = 200,
    validate_every: Annotated[int, typer.Option(min=1)] = 200,
    log_every: Annotated[int, typer.Option(min=1)] = 10,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=0, help="Processes preparing samples (0: the training process; a GPU wants several)."
        ),
    ] = 0,
    time_limit: Annotated[
        float | None,
        typer.Option(min=0.0, help="Minutes: stop there and write the model as if the steps were done."),
    ] = None,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train (or fine-tune) a model; arbitrary-scale, on random crops of your own data.

    \b
    Examples:
      ginr train --data photos/ --out runs/mine --steps 3000
      torchrun --nproc-per-node 2 -m ginr_cli train --data photos/
    """
    import json

    from ginr_cli.engine.train import TrainOptions
    from ginr_cli.engine.train import train as run

    if kind not in ("image", "volume"):
        from ginr_cli.errors import UsageError

        raise UsageError(f"--kind must be image or volume, not {kind!r}")
    opts = TrainOptions(
        data=data,
        out=out,
        kind=kind,
        model=model,
        name=name,
        init_from=init_from,
        val_data=val_data,
        steps=steps,
        batch=batch,
        queries=queries,
        lr=lr,
        warmup=warmup,
        scale_min=scale_min,
        scale_max=max(scale_min, scale_max),
        base_prob=base_prob,
        seed=seed,
        checkpoint_every=checkpoint_every,
        validate_every=validate_every,
        log_every=log_every,
        resume=resume,
        device=device,
        workers=workers,
        time_limit=time_limit,
    )

    def show(row: dict) -> None:
        if not quiet and not as_json:
            if row["psnr"] == "":
                psnr = ""
            elif "val_bpp" in row:  # a codec: its PSNR at its bits
                psnr = f"  val PSNR {row['psnr']} dB at {row['val_bpp']} bits a pixel (voxel)"
            else:
                psnr = f"  val PSNR {row['psnr']} dB (bicubic {row['psnr_bicubic']})"
            typer.echo(
                f"step {row['step']:>6}  loss {row['loss']:.5f}  lr {row['lr']}  {row['seconds']:.0f}s{psnr}"
            )

    final = run(opts, on_log=show)
    if as_json:
        typer.echo(json.dumps({"model": str(final), "run": out}))
    elif not quiet:
        typer.echo(f"model written to {final}")
