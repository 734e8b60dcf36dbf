"""A LIIF-style peer, for timing only (random weights): an EDSR-baseline encoder and LIIF's MLP decoder.

Written from the LIIF paper's description (Chen, Liu and Wang, "Learning Continuous Image Representation
with Local Implicit Image Function", CVPR 2021), not from its code:

- encoder: EDSR-baseline without its upsampler: a 3x3 conv to 64 features, 16 residual blocks
  (conv-ReLU-conv, 64 features), a 3x3 conv, and a skip from the first conv; one latent code per pixel;
- feature unfolding: each latent code is the concatenation of its 3x3 neighbourhood (64 * 9 = 576);
- local ensemble: a query is decoded from each of the 4 latent codes nearest to it, and the 4 predictions
  are averaged with weights equal to the area of the rectangle between the query and the diagonally
  opposite code, normalised;
- decoder: an MLP of 4 hidden layers of 256 with ReLU, taking the code, the query's offset from the code
  in units of the latent grid, and the target cell size in the same units (cell decoding).

Queries are decoded in chunks. Coordinates are cell centres in [-1, 1] (axis order), as in ginr.

    python scripts/liif_peer.py                    # time x2 and x4 of a 512x512 input: table
    python scripts/liif_peer.py --quick --json     # tiny sizes; last line {"results": [...]}
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ResBlock(nn.Module):
    def __init__(self, feats: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(feats, feats, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(feats, feats, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class EDSRBaseline(nn.Module):
    """(b, 3, h, w) -> latent codes (b, feats, h, w): EDSR-baseline without its upsampler."""

    def __init__(self, feats: int = 64, blocks: int = 16, in_channels: int = 3):
        super().__init__()
        self.head = nn.Conv2d(in_channels, feats, 3, padding=1)
        self.body = nn.Sequential(
            *[ResBlock(feats) for _ in range(blocks)], nn.Conv2d(feats, feats, 3, padding=1)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(x)
        return x + self.body(x)


class LIIF(nn.Module):
    def __init__(
        self, feats: int = 64, blocks: int = 16, hidden: int = 256, layers: int = 4, out_channels: int = 3
    ):
        super().__init__()
        self.encoder = EDSRBaseline(feats, blocks)
        dims = [feats * 9 + 2 + 2, *[hidden] * layers]
        mlp: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            mlp += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.mlp = nn.Sequential(*mlp, nn.Linear(hidden, out_channels))

    def codes(self, x: Tensor) -> Tensor:
        """(b, 3, h, w) in [0, 1] -> unfolded latent codes (b, h * w, 9 * feats), row-major."""
        feat = self.encoder((x - 0.5) / 0.5)  # (b, f, h, w)
        unfolded = F.unfold(feat, 3, padding=1)  # (b, 9 f, h w): each code's 3x3 neighbourhood
        return unfolded.transpose(1, 2).contiguous()  # (b, h w, 9 f)

    def query(self, codes: Tensor, hw: tuple[int, int], coords: Tensor, cell: Tensor) -> Tensor:
        """codes (b, h w, 9 f), coords (b, q, 2) in [-1, 1], cell (b, q, 2) -> values (b, q, 3) in [0, 1]."""
        h, w = hw
        size = coords.new_tensor([h, w])
        radius = 1 / size  # half a latent cell, in [-1, 1] units
        eps = 1e-6
        preds, areas = [], []
        for vy in (-1, 1):
            for vx in (-1, 1):
                shifted = coords + coords.new_tensor([vy, vx]) * radius + eps
                shifted = shifted.clamp(-1 + eps, 1 - eps)
                idx = ((shifted + 1) / 2 * size).floor().long()  # (b, q, 2): the code nearest to the shift
                idx = torch.minimum(idx, size.long() - 1)
                flat = idx[..., 0] * w + idx[..., 1]  # (b, q)
                code = codes.gather(1, flat[..., None].expand(-1, -1, codes.shape[-1]))  # (b, q, 9 f)
                centre = (idx.to(coords.dtype) + 0.5) / size * 2 - 1  # (b, q, 2)
                offset = (coords - centre) * size  # (b, q, 2), in latent cells
                preds.append(self.mlp(torch.cat([code, offset, cell * size], dim=-1)))  # (b, q, 3)
                areas.append((offset[..., 0] * offset[..., 1]).abs() + 1e-9)  # (b, q)
        total = sum(areas)
        # Each prediction is weighted by the area opposite to it: (-,-) <-> (+,+), (-,+) <-> (+,-).
        out = sum(p * (a / total)[..., None] for p, a in zip(preds, reversed(areas), strict=True))
        return out * 0.5 + 0.5


def liif_upscale(model: LIIF, x: Tensor, out_hw: tuple[int, int], chunk: int = 30000) -> Tensor:
    """Upscale x (1, 3, h, w) in [0, 1] to (1, 3, H, W), decoding `chunk` query points at a time."""
    H, W = out_hw
    ys = (torch.arange(H, dtype=x.dtype, device=x.device) * 2 + 1) / H - 1
    xs = (torch.arange(W, dtype=x.dtype, device=x.device) * 2 + 1) / W - 1
    coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).view(1, -1, 2)  # (1, q, 2)
    cell = x.new_tensor([2 / H, 2 / W]).expand_as(coords)  # (1, q, 2)
    with torch.inference_mode():
        codes = model.codes(x)
        out = torch.cat(
            [
                model.query(codes, x.shape[2:], coords[:, i : i + chunk], cell[:, i : i + chunk])
                for i in range(0, coords.shape[1], chunk)
            ],
            dim=1,
        )  # (1, q, 3)
    return out.clamp(0, 1).transpose(1, 2).reshape(1, 3, H, W)


def liif_flops(model: LIIF, hw: tuple[int, int], out_hw: tuple[int, int]) -> float:
    """FLOPs (2 per multiply-add) of one upscale: the encoder's convolutions, 4 MLP passes per query."""
    convs = sum(m.weight.numel() for m in model.encoder.modules() if isinstance(m, nn.Conv2d))
    linears = sum(m.weight.numel() for m in model.mlp if isinstance(m, nn.Linear))
    return 2.0 * convs * hw[0] * hw[1] + 2.0 * 4 * linears * out_hw[0] * out_hw[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=512, help="input side (a random image)")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--chunk", type=int, default=30000, help="query points decoded at once")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--plot", help="write a PNG plot of output MP/s per scale (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = parser.parse_args()
    if args.quick:
        args.size, args.repeats = 24, 1
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = LIIF().eval()
    x = torch.rand(1, 3, args.size, args.size)
    results = []
    for scale in args.scales:
        out_hw = (args.size * scale, args.size * scale)
        liif_upscale(model, x, out_hw, args.chunk)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            liif_upscale(model, x, out_hw, args.chunk)
            times.append(time.perf_counter() - start)
        seconds = sorted(times)[len(times) // 2]
        flops = liif_flops(model, (args.size, args.size), out_hw)
        results.append(
            dict(
                scale=scale,
                in_shape=[args.size, args.size],
                out_shape=list(out_hw),
                seconds=seconds,
                mp_per_s=out_hw[0] * out_hw[1] / seconds / 1e6,
                gflop=flops / 1e9,
                gflops=flops / seconds / 1e9,
            )
        )

    params = sum(p.numel() for p in model.parameters())
    print(
        f"LIIF-style peer (EDSR-baseline + MLP, {params / 1e6:.2f} M parameters, random weights), "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"{'scale':>5} | {'input':>9} | {'output':>11} | {'time s':>8} | {'out MP/s':>8} | "
        f"{'GFLOP':>8} | GFLOP/s"
    )
    for r in results:
        print(
            f"{r['scale']:>5} | {'x'.join(map(str, r['in_shape'])):>9} | "
            f"{'x'.join(map(str, r['out_shape'])):>11} | "
            f"{r['seconds']:>8.3f} | {r['mp_per_s']:>8.3f} | {r['gflop']:>8.1f} | {r['gflops']:.1f}"
        )

    def draw(plt):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.bar([f"x{r['scale']}" for r in results], [r["mp_per_s"] for r in results])
        ax.set(ylabel="output MP/s", title=f"LIIF-style peer, {args.size}^2 input")
        return fig

    from benchlib import save_plot

    save_plot(args.plot, draw)
    if args.json:
        print(json.dumps({"params": params, "threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
