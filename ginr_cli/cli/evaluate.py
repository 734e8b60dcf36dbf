"""`ginr eval`: PSNR/SSIM of a model against classical interpolation, per item and averaged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ginr_cli.cli.common import DeviceOption, JsonOption, ModelOption, QuietOption, report_errors


@report_errors
def evaluate(
    data: Annotated[
        list[Path], typer.Argument(help="Image folders (LR/HR benchmark pairs or HR images) or volume files.")
    ],
    scales: Annotated[
        str, typer.Option("--scales", help="Comma-separated scales (volumes: whole factors along --axis).")
    ] = "2,3,4",
    axis: Annotated[int, typer.Option(min=0, max=2, help="Volumes: the axis made thick-sliced.")] = 2,
    adapt: Annotated[
        int, typer.Option(min=0, help="Volumes: fit the model to each input first, as upscale --adapt.")
    ] = 0,
    ensemble: Annotated[
        bool, typer.Option("--ensemble", help="Average ginr over the input's flips, as upscale --ensemble.")
    ] = False,
    consistency: Annotated[
        bool, typer.Option(help="Volumes: set ginr's slab means to the thick slices, as upscale does.")
    ] = True,
    kind: Annotated[
        str, typer.Option(help="image or volume (default: volume for NIfTI/TIFF files).")
    ] = "auto",
    plot: Annotated[Path | None, typer.Option(help="Write a PNG plot of PSNR against scale.")] = None,
    per_item: Annotated[bool, typer.Option("--per-item", help="Also print every item's scores.")] = False,
    codec: Annotated[
        bool,
        typer.Option(
            "--codec", help="Rate-distortion of latents (ginr encode) against JPEG, WebP and others."
        ),
    ] = False,
    qualities: Annotated[str, typer.Option(help="--codec: the encode qualities to measure.")] = "1,2,3,4,5",
    refine: Annotated[int, typer.Option(min=0, help="--codec: encode's refinement steps.")] = 0,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a model: ginr vs bicubic and Lanczos (images), vs trilinear and cubic spline (volumes).

    \b
    Examples:
      ginr eval Set5/ --scales 2,3,4 --plot set5.png
      ginr eval scan.nii.gz --scales 2,4 --axis 2
      ginr eval photos/ --codec --plot rd.png
    """
    from ginr_cli.cli.common import Models
    from ginr_cli.engine import evaluate as ev
    from ginr_cli.engine import targets
    from ginr_cli.engine.infer import pick_device
    from ginr_cli.errors import UsageError
    from ginr_cli.io.volumes import is_volume_path

    if kind not in ("auto", "image", "volume"):
        raise UsageError(f"--kind must be auto, image or volume, not {kind!r}")
    values = targets.parse_floats(scales, "--scales")
    which = kind if kind != "auto" else ("volume" if all(is_volume_path(p) for p in data) else "image")
    fractional = [v for v in values if not v.is_integer()]
    if which == "volume" and not codec and fractional:  # a slab is a whole number of slices
        raise UsageError(
            f"--scales {fractional[0]:g}: volumes are thick-sliced by whole factors (2, 3, 4...)"
        )
    torch_device = pick_device(device)
    net, fingerprint = Models(model, torch_device, codec=codec)(which)
    if codec:
        levels = [int(v) for v in targets.parse_floats(qualities, "--qualities")]
        _rate_distortion(
            net, fingerprint, torch_device, data, which, levels, refine, plot, per_item, quiet, as_json
        )
        return

    def show(score: ev.Score) -> None:
        if per_item and not quiet and not as_json:
            typer.echo(
                f"{score.item:<28} x{score.scale:<4g} {score.method:<13} {score.psnr:7.3f} dB  SSIM {score.ssim:.4f}"
            )

    scores: list[ev.Score] = []
    for item in data:
        if which == "image":
            scores += ev.evaluate_images(net, torch_device, item, values, on_score=show, ensemble=ensemble)
        else:
            factors = [int(v) for v in values]
            scores += ev.evaluate_volume(
                net,
                torch_device,
                item,
                factors,
                axis=axis,
                on_score=show,
                adapt=adapt,
                ensemble=ensemble,
                consistency=consistency,
            )
    rows = ev.averages(scores)
    if plot:
        ev.plot(rows, plot, f"{net.cfg.name} on {', '.join(p.name for p in data)}")
    if as_json:
        typer.echo(json.dumps({"model": net.cfg.name, "averages": rows, "items": ev.to_dicts(scores)}))
        return
    if not quiet:
        typer.echo(f"{'scale':>6} | {'method':<13} | {'n':>3} | {'PSNR dB':>8} | {'SSIM':>6}")
        for r in rows:
            typer.echo(
                f"{r['scale']:>6g} | {r['method']:<13} | {r['n']:>3} | {r['psnr']:>8.3f} | {r['ssim']:>6.4f}"
            )


def _rate_distortion(net, fingerprint, device, data, kind, qualities, refine, plot, per_item, quiet, as_json):
    """`ginr eval --codec`: every file encoded at each quality beside the classic codecs; a table of the
    means at each quality, and each baseline's PSNR at the same bits."""
    from ginr_cli.engine import rate_distortion as rd
    from ginr_cli.engine.codec import quality_step
    from ginr_cli.engine.data import find_files
    from ginr_cli.errors import GinrError

    for q in qualities:
        quality_step(q)  # refuses an unknown quality before any work
    files = []
    for item in data:
        found = find_files(item, kind) if item.is_dir() else [item]
        hr = [f for f in found if f.stem.endswith("_HR")]  # a benchmark folder: its HR images only
        files += hr or found
    points: list[rd.RatePoint] = []
    for path in files:
        if not path.is_file():
            raise GinrError("no such file", path)
        points += rd.baselines(path, kind)
        points += rd.ginr_points(net, fingerprint, device, path, kind, qualities, refine)
        if per_item and not quiet and not as_json:
            for p in points:
                if p.item == path.name:
                    typer.echo(
                        f"{p.item:<28} {p.method:<14} {p.setting:>3} {p.bits:7.4f} bits {p.psnr:7.3f} dB  SSIM {p.ssim:.4f}"
                    )
    rows = rd.summary(points)
    if plot:
        rd.plot(points, plot, f"{net.cfg.name} on {', '.join(p.name for p in data)}")
    if as_json:
        typer.echo(json.dumps({"model": net.cfg.name, "summary": rows, "items": rd.to_dicts(points)}))
        return
    if quiet:
        return
    unit = "pixel" if kind == "image" else "voxel"
    others = [k for k in rows[0] if k.endswith("_psnr")] if rows else []
    typer.echo(f"ginr ({net.cfg.name}) on {len(files)} file(s); baselines' PSNR at ginr's bits per {unit}")
    header = f"{'quality':>7} | {'bits':>7} | {'PSNR':>7} | {'SSIM':>6} | " + " | ".join(
        f"{k:>18}" for k in others
    )
    typer.echo(header)
    for r in rows:
        cells = " | ".join(f"{'-' if r[k] is None else format(r[k], '.3f'):>18}" for k in others)
        typer.echo(f"{r['quality']:>7} | {r['bits']:>7.4f} | {r['psnr']:>7.3f} | {r['ssim']:>6.4f} | {cells}")
    for key in (k for k in (rows[0] if rows else {}) if k.endswith("_bits")):
        typer.echo(f"{key[:-5]}: {rows[0][key]:.4f} bits per {unit}")
