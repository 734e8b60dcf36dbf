"""Model configuration: one frozen dataclass per component, nested into `GINRConfig`, and named presets.

`GINRConfig.from_dict` rejects unknown keys by name, so a checkpoint from another version fails loudly
instead of silently building a different network, and checks each value against its field's type (a
Literal's choices) and range, naming the key: `"d_model": "256"` is refused as such, not as a crash later.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

Placement = Literal["equidistant", "middle", "n-group", "per-token"]


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    patch_size: int = 4
    # "fourier" adds a fixed encoding of each patch's centre. Attention is blind to order without it;
    # Mamba reads order from the scan, so the Mamba presets leave it off, as the seed design does.
    pos_embed: Literal["none", "fourier"] = "none"


@dataclass(frozen=True, kw_only=True)
class PositionConfig:
    num_lp: int = 16  # M learnable position tokens ("per-token": one shared vector, M = n)
    placement: Placement = "equidistant"
    group_size: int = 2  # LPs per group, for placement "n-group"


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    d_model: int = 256
    n_layers: int = 6
    mixer: Literal["mamba", "attention"] = "mamba"  # attention: the Trans-INR baseline
    d_state: int = 16  # N in the Mamba paper
    d_conv: int = 4
    # d_inner = expand * d_model. 1, not Mamba's 2: each direction has its own in_proj and out_proj, so at 2 a
    # BiMamba mixer holds 3.3x the weights of an attention mixer of the same width (at 1, 1.7x); see
    # scripts/bench_encoder.py --expand 1 2 for the time and the model cards for the scores.
    expand: int = 1
    n_heads: int = 8  # attention mixer only
    mlp_ratio: float = 4.0
    scan_backend: Literal["auto", "reference", "torch", "cpp", "triton", "cuda"] = "auto"


@dataclass(frozen=True, kw_only=True)
class HyponetConfig:
    d_hidden: int = 256
    n_freqs: int = 16  # Fourier frequencies per coordinate axis, log-spaced from 1 to 2**(n_freqs/2)
    n_heads: int = 8
    n_attn_layers: int = 2  # cross-attention layers from query points to the LP latents
    n_mlp_layers: int = 2
    # The decoder may be given a base: the input interpolated at the query points. It then predicts a
    # correction to it (upscaling starts from bicubic quality); without one (decoding a stored latent)
    # it predicts the values themselves. One model serves both; training alternates the two.
    use_base: bool = True


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    """Learned local features (LIIF-style). With `local`, a convolutional stem runs on the input before
    tokenisation, the encoder's output for every patch token is kept as a feature grid, and each query reads
    the 2^k grid cells around it; the LP latents still bring the tile's context. Off: the decoder sees the
    input only through its raw neighbourhood (the base) and the LPs."""

    local: bool = False
    stem_width: int = 64  # channels of the stem's convolutions
    stem_blocks: int = 2  # residual blocks (conv, ReLU, conv) after the stem's first convolution


@dataclass(frozen=True, kw_only=True)
class LatentConfig:
    """A codec model's latent (`nn/latent_grid.py`). With `grid`, one LP sits before every patch token, its
    output is mapped to `width` channels, and the decoder reads that grid locally (through a small synthesis)
    instead of attending to it: what `ginr encode` stores is `width` integers per patch."""

    grid: bool = False
    width: int = 16  # channels per LP
    synthesis_width: int = 32  # channels of the synthesis convolutions
    synthesis_blocks: int = 2
    # Bits per pixel (voxel) are worth this much squared error in model units (values span 2): the
    # operating point training and refinement aim for.
    rate_weight: float = 2e-3
    # The quantisation step (model units) of the DCT codec an untrained codec model starts as.
    init_step: float = 0.1


@dataclass(frozen=True, kw_only=True)
class GINRConfig:
    name: str = "custom"
    rank: Literal[2, 3] = 2  # k: spatial dimensions, 2 for images, 3 for volumes
    in_channels: int = 3
    out_channels: int = 3
    input_size: int = 32  # the side of the encoder's input tile, in pixels or voxels
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    positions: PositionConfig = field(default_factory=PositionConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    hyponet: HyponetConfig = field(default_factory=HyponetConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GINRConfig:
        return _from_dict(cls, data, "config")

    def replace(self, **changes: Any) -> GINRConfig:
        return dataclasses.replace(self, **changes)


def _from_dict(cls: type, data: dict[str, Any], where: str):
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        sub = _NESTED.get((cls, key))
        kwargs[key] = (
            _from_dict(sub, value, f"{where}.{key}") if sub else _checked(value, hints[key], key, where)
        )
    return cls(**kwargs)


# Counts are at least 1 and reals above 0, except these, which may be 0.
_MAY_BE_ZERO = {"n_attn_layers", "n_mlp_layers", "stem_blocks", "synthesis_blocks", "rate_weight"}
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _checked(value: Any, hint: Any, key: str, where: str) -> Any:
    """`value` as the field `key` of type `hint` takes it; ValueError naming `where.key` otherwise."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if any(value == c and type(value) is type(c) for c in choices):
            return value
        raise ValueError(f"{where}.{key}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {
        bool: isinstance(value, bool),
        int: number and isinstance(value, int),
        float: number and math.isfinite(value),
        str: isinstance(value, str),
    }[hint]
    if not ok:
        raise ValueError(f"{where}.{key}: expected {_TYPE_NAMES[hint]}, got {value!r}")
    if hint in (int, float) and (value < 0 or (value == 0 and key not in _MAY_BE_ZERO)):
        least = "at least 0" if key in _MAY_BE_ZERO else ("at least 1" if hint is int else "above 0")
        raise ValueError(f"{where}.{key}: expected {least}, got {value!r}")
    return float(value) if hint is float else value


_NESTED = {
    (GINRConfig, "tokenizer"): TokenizerConfig,
    (GINRConfig, "positions"): PositionConfig,
    (GINRConfig, "encoder"): EncoderConfig,
    (GINRConfig, "hyponet"): HyponetConfig,
    (GINRConfig, "features"): FeatureConfig,
    (GINRConfig, "latent"): LatentConfig,
}

PRESETS: dict[str, GINRConfig] = {
    # Small enough to train and run on a laptop CPU.
    "tiny-2d": GINRConfig(
        name="tiny-2d",
        input_size=32,
        positions=PositionConfig(num_lp=32),
        encoder=EncoderConfig(d_model=96, n_layers=3, d_state=8, n_heads=4),
        hyponet=HyponetConfig(d_hidden=96, n_heads=4, n_freqs=12),
    ),
    # Learned local features: a conv stem, one token per pixel (48x48 tiles: 2304 tokens), each query reading
    # the encoder's outputs around it (see FeatureConfig).
    "local-2d": GINRConfig(
        name="local-2d",
        input_size=48,
        tokenizer=TokenizerConfig(patch_size=1),
        positions=PositionConfig(num_lp=32),
        encoder=EncoderConfig(d_model=96, n_layers=3, d_state=8, n_heads=4),
        hyponet=HyponetConfig(d_hidden=96, n_heads=4, n_freqs=12),
        features=FeatureConfig(local=True, stem_width=64, stem_blocks=3),
    ),
    # The seed's worked example: 32x32 RGB, 4x4 patches (64 tokens), 16 LPs, width 256, depth 6.
    "base-2d": GINRConfig(name="base-2d"),
    # Single-channel volumes, small enough to train on a CPU: 32^3 tiles of 4^3 patches (512 tokens).
    "tiny-3d": GINRConfig(
        name="tiny-3d",
        rank=3,
        in_channels=1,
        out_channels=1,
        input_size=32,
        positions=PositionConfig(num_lp=64),
        encoder=EncoderConfig(d_model=64, n_layers=3, d_state=8, n_heads=4),
        hyponet=HyponetConfig(d_hidden=64, n_heads=4, n_freqs=12),
    ),
    # Volumes with learned local features: a conv stem, 32^3 tiles of 2^3 patches (4096 tokens).
    "local-3d": GINRConfig(
        name="local-3d",
        rank=3,
        in_channels=1,
        out_channels=1,
        input_size=32,
        tokenizer=TokenizerConfig(patch_size=2),
        positions=PositionConfig(num_lp=64),
        encoder=EncoderConfig(d_model=64, n_layers=3, d_state=8, n_heads=4),
        hyponet=HyponetConfig(d_hidden=64, n_heads=4, n_freqs=12),
        features=FeatureConfig(local=True, stem_width=24, stem_blocks=2),
    ),
    # Codecs: the latent is a grid of `width` integers per 4x4 (4^3) patch, as many as the patch's values
    # (the rate term leaves most at zero where the picture is smooth), decoded locally.
    "codec-2d": GINRConfig(
        name="codec-2d",
        input_size=64,
        positions=PositionConfig(num_lp=1, placement="per-token"),
        encoder=EncoderConfig(d_model=96, n_layers=3, d_state=8, n_heads=4),
        hyponet=HyponetConfig(
            d_hidden=64, n_heads=4, n_freqs=4, n_attn_layers=0, n_mlp_layers=3, use_base=False
        ),
        latent=LatentConfig(
            grid=True, width=48, synthesis_width=64, synthesis_blocks=2, rate_weight=3e-3, init_step=0.15
        ),
    ),
    "codec-3d": GINRConfig(
        name="codec-3d",
        rank=3,
        in_channels=1,
        out_channels=1,
        input_size=32,
        positions=PositionConfig(num_lp=1, placement="per-token"),
        encoder=EncoderConfig(d_model=64, n_layers=3, d_state=8, n_heads=4),
        hyponet=HyponetConfig(
            d_hidden=48, n_heads=4, n_freqs=4, n_attn_layers=0, n_mlp_layers=3, use_base=False
        ),
        latent=LatentConfig(grid=True, width=64, synthesis_width=32, synthesis_blocks=2, rate_weight=1.5e-3),
    ),
    # Single-channel volumes, 32^3 tiles of 4^3 patches (512 tokens).
    "base-3d": GINRConfig(
        name="base-3d",
        rank=3,
        in_channels=1,
        out_channels=1,
        input_size=32,
        positions=PositionConfig(num_lp=64),
        encoder=EncoderConfig(d_model=128, n_layers=4, n_heads=4),
        hyponet=HyponetConfig(d_hidden=128, n_heads=4),
    ),
}


def preset(name: str, **changes: Any) -> GINRConfig:
    """A named preset, optionally with top-level fields replaced."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name].replace(**changes) if changes else PRESETS[name]
