"""One bf16 training step of each local preset on a device: does the Mamba path train there?

    python scripts/gpu_smoke.py cuda                            # exit 0 when both presets train
    python scripts/gpu_smoke.py cuda --attention-configs DIR    # write DIR/<preset>-attention.json

The second form writes the same presets with an attention mixer (and a Fourier position encoding, since
attention is blind to order): scripts/gpu_check.sh trains those instead should the Mamba step fail.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from ginr_cli.nn.config import preset
from ginr_cli.nn.ginr import MambaGINR

PRESETS = ("local-2d", "local-3d")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("device")
    parser.add_argument("--attention-configs", type=Path, help="write the attention variants here instead")
    args = parser.parse_args()
    if args.attention_configs:
        for name in PRESETS:
            cfg = preset(name)
            cfg = cfg.replace(
                name=f"{name}-attention",
                encoder=dataclasses.replace(cfg.encoder, mixer="attention"),
                tokenizer=dataclasses.replace(cfg.tokenizer, pos_embed="fourier"),
            )
            (args.attention_configs / f"{name}-attention.json").write_text(json.dumps(cfg.to_dict()))
        return
    device = torch.device(args.device)
    for name in PRESETS:
        model = MambaGINR(preset(name)).to(device)
        k, t = model.cfg.rank, model.cfg.input_size
        x = torch.rand(2, model.cfg.in_channels, *[t] * k, device=device)
        coords = torch.rand(2, 256, k, device=device) * 2 - 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(x, coords).float().square().mean()
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), (
            "a gradient is missing or not finite"
        )
        print(f"{name} trains on {device}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
