"""Learnable position tokens (LPs): M parameter vectors interleaved into the patch-token sequence.

One index buffer per token count decides where the LPs sit; `interleave` writes them there and `extract`
reads them back from the same indices, so insertion and extraction cannot disagree. With "per-token"
placement (codec models), one learned vector is placed before every patch token: the scan tells the
copies apart, and their outputs form a grid over the tile, one per patch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ginr_cli.nn.config import PositionConfig


def lp_indices(n: int, m: int, placement: str, group_size: int = 2) -> list[int]:
    """Positions of the m LPs in a sequence of n + m tokens, ascending.

    equidistant: LP i after floor(i * n / m) patch tokens, i.e. at i + floor(i * n / m)
                 (n=64, m=16 -> 0, 5, 10, ..., 75)
    middle:      all LPs together, after the first n // 2 patch tokens
    n-group:     m / group_size groups of adjacent LPs, the patch tokens spread evenly between groups
                 (equidistant is n-group with groups of one)
    per-token:   one LP before every patch token (m = n): 0, 2, 4, ...
    """
    if placement == "per-token":
        if m != n:
            raise ValueError(f"per-token placement: {m} LPs for {n} patch tokens")
        return list(range(0, 2 * n, 2))
    if placement == "middle":
        return list(range(n // 2, n // 2 + m))
    if placement in ("equidistant", "n-group"):
        size = 1 if placement == "equidistant" else group_size
        if m % size:
            raise ValueError(f"n-group placement: {m} LPs do not split into groups of {size}")
        groups = m // size
        return [j * size + j * n // groups + i for j in range(groups) for i in range(size)]
    raise ValueError(f"unknown LP placement {placement!r}")


class LearnablePositions(nn.Module):
    def __init__(self, cfg: PositionConfig, d_model: int):
        super().__init__()
        self.cfg = cfg
        if cfg.placement == "per-token" and cfg.num_lp != 1:
            raise ValueError(f"per-token placement shares one LP vector; num_lp must be 1, not {cfg.num_lp}")
        self.lps = nn.Parameter(torch.randn(cfg.num_lp, d_model) * 0.02)  # (m, d)
        self._orders: dict[int, tuple[Tensor, Tensor, Tensor]] = {}

    def count(self, n: int) -> int:
        """m, the LPs in a sequence with n patch tokens."""
        return n if self.cfg.placement == "per-token" else self.cfg.num_lp

    def indices(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """For n patch tokens: (lp_index (m,), order (n + m,), token_index (n,)), cached per n.

        `order[j]` is the row of cat([lps, tokens]) that lands at sequence position j; `lp_index` are the
        positions of the LPs, derived from the same placement, so order[lp_index] == arange(m), and
        `token_index` the positions of the patch tokens, in their order: order[token_index] == m + arange(n).
        """
        # Built as normal tensors even under inference mode: the same model may be trained afterwards
        # (`ginr upscale --adapt`), and autograd cannot save inference tensors.
        with torch.inference_mode(False):
            if n not in self._orders:
                m = self.count(n)
                lp_index = torch.tensor(lp_indices(n, m, self.cfg.placement, self.cfg.group_size))
                is_lp = torch.zeros(n + m, dtype=torch.bool)
                is_lp[lp_index] = True
                order = torch.empty(n + m, dtype=torch.long)
                order[is_lp] = torch.arange(m)
                order[~is_lp] = torch.arange(m, n + m)
                self._orders[n] = (lp_index, order, (~is_lp).nonzero()[:, 0])
            device = self.lps.device
            if self._orders[n][0].device != device:  # built once per device, not copied on every call
                self._orders[n] = tuple(index.to(device) for index in self._orders[n])
        return self._orders[n]

    def _tokens(self, length: int) -> int:
        """n, the patch tokens in a sequence of `length`."""
        return length // 2 if self.cfg.placement == "per-token" else length - self.cfg.num_lp

    def interleave(self, tokens: Tensor) -> Tensor:
        """tokens (b, n, d) -> sequence (b, n + m, d) with the LPs at their positions."""
        b, n, _ = tokens.shape
        _, order, _ = self.indices(n)
        lps = self.lps.to(tokens.dtype).expand(b, self.count(n), -1)  # (b, m, d)
        return torch.cat([lps, tokens], dim=1)[:, order]  # (b, n + m, d)

    def extract(self, seq: Tensor) -> Tensor:
        """sequence (b, n + m, d) -> the LP outputs (b, m, d)."""
        n = self._tokens(seq.shape[1])
        lp_index, _, _ = self.indices(n)
        return seq[:, lp_index]  # (b, m, d)

    def extract_tokens(self, seq: Tensor) -> Tensor:
        """sequence (b, n + m, d) -> the patch tokens' outputs (b, n, d), in their input order."""
        n = self._tokens(seq.shape[1])
        _, _, token_index = self.indices(n)
        return seq[:, token_index]  # (b, n, d)
