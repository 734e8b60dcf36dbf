"""Model folders: `config.json` + `model.safetensors` (as timm and diffusers save them). No pickle, ever.

The fingerprint is a hash of the stored weights (names, dtypes, shapes and bytes). Latents carry it, so a
latent can only be decoded by the model that made it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ginr_cli.errors import GinrError
from ginr_cli.io.atomic import atomic_path
from ginr_cli.nn.config import GINRConfig
from ginr_cli.nn.ginr import MambaGINR

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """A short, stable hash of a state dict: 16 hex digits of SHA-256 over names, dtypes, shapes, bytes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def save_model(model: MambaGINR, folder: str | Path, dtype: torch.dtype | None = None) -> str:
    """Write `model` to `folder`; floating weights cast to `dtype` when given. Returns the fingerprint."""
    folder = Path(folder)
    state = {
        name: (t.to(dtype) if dtype is not None and t.is_floating_point() else t).detach().cpu().contiguous()
        for name, t in model.state_dict().items()
    }
    fp = fingerprint(state)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"ginr.fingerprint": fp, "ginr.name": model.cfg.name})
    with atomic_path(folder / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(model.cfg.to_dict(), indent=2) + "\n")
    return fp


def load_config(folder: str | Path) -> GINRConfig:
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
        return GINRConfig.from_dict(data)
    except FileNotFoundError as err:
        raise GinrError("not a model folder (no config.json)", Path(folder)) from err
    except (json.JSONDecodeError, ValueError, TypeError) as err:
        raise GinrError(f"invalid model config: {err}", path) from err


def build_model(cfg: GINRConfig, path: str | Path) -> MambaGINR:
    """The network of `cfg`; a config whose values do not fit together (say a width that its heads do not
    divide) is the user's error, named with `path`."""
    try:
        return MambaGINR(cfg)
    except (ValueError, TypeError, ZeroDivisionError) as err:
        raise GinrError(f"invalid model config: {err}", path) from err


def load_model(folder: str | Path, device: torch.device | str = "cpu") -> tuple[MambaGINR, str]:
    """Build the model of `folder` and load its weights in float32. Returns (model in eval mode, fingerprint).

    Missing and unexpected weights are named; a config with unknown keys is refused.
    """
    folder = Path(folder)
    cfg = load_config(folder)
    path = folder / WEIGHTS_FILE
    try:
        state = load_file(str(path))
    except FileNotFoundError as err:
        raise GinrError("not a model folder (no model.safetensors)", folder) from err
    except (SafetensorError, OSError, ValueError) as err:
        raise GinrError(f"unreadable weights: {err}", path) from err
    model = build_model(cfg, folder / CONFIG_FILE)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = [
            f"missing {', '.join(missing)}" if missing else "",
            f"unexpected {', '.join(unexpected)}" if unexpected else "",
        ]
        raise GinrError(f"weights do not match the config: {'; '.join(p for p in parts if p)}", path)
    wrong = [n for n in expected if expected[n].shape != state[n].shape]
    if wrong:
        raise GinrError(f"weights of the wrong shape for the config: {', '.join(wrong)}", path)
    fp = fingerprint(state)
    model.load_state_dict({n: t.float() if t.is_floating_point() else t for n, t in state.items()})
    return model.to(device).eval(), fp


def shipped_models_dir() -> Path:
    """Where the shipped model folders are: `ginr_cli/models` when installed, `models/` in a checkout."""
    package = Path(__file__).resolve().parents[1]  # ginr_cli/
    installed = package / "models"
    return installed if installed.is_dir() else package.parent / "models"


def shipped_models() -> list[str]:
    root = shipped_models_dir()
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file()) if root.is_dir() else []


def find_model(name_or_path: str | Path) -> Path:
    """A model folder given as a path, or a shipped model given by name."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    shipped = shipped_models_dir() / str(name_or_path)
    if (shipped / CONFIG_FILE).is_file():
        return shipped
    known = ", ".join(shipped_models()) or "none"
    raise GinrError(f"no model folder or shipped model of that name (shipped: {known})", path)


def describe_model(folder: str | Path) -> dict:
    """What `ginr info` shows of a model folder, without building the network."""
    folder = Path(folder)
    cfg = load_config(folder)
    path = folder / WEIGHTS_FILE
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise GinrError(f"unreadable weights: {err}", path) from err
    return {
        "path": str(folder),
        "name": cfg.name,
        "kind": "image" if cfg.rank == 2 else "volume",
        "channels": f"{cfg.in_channels} in, {cfg.out_channels} out",
        "tile": "x".join([str(cfg.input_size)] * cfg.rank),
        "mixer": cfg.encoder.mixer,
        **(
            {"inner width x state": f"{cfg.encoder.expand * cfg.encoder.d_model} x {cfg.encoder.d_state}"}
            if cfg.encoder.mixer == "mamba"
            else {}
        ),
        "width x depth": f"{cfg.encoder.d_model} x {cfg.encoder.n_layers}",
        "patch": "x".join([str(cfg.tokenizer.patch_size)] * cfg.rank),
        "local features": (
            f"stem {cfg.features.stem_width} wide, {cfg.features.stem_blocks} residual blocks"
            if cfg.features.local
            else "none"
        ),
        **(
            {
                "latent": f"a grid, {cfg.latent.width} integers per patch "
                f"(rate weight {cfg.latent.rate_weight:g})"
            }
            if cfg.latent.grid
            else {"latent (m x d)": f"{cfg.positions.num_lp} x {cfg.encoder.d_model}"}
        ),
        "parameters": sum(t.numel() for t in state.values()),
        "weights MB": round(path.stat().st_size / 2**20, 2),
        "fingerprint": fingerprint(state),
    }
