"""Buffers the encoder's blocks share during one inference forward.

Each BiMamba block makes four (b, >= 2e, l) tensors: 320 MB at L = 16384, d = 256. Allocated fresh in
every block, each is a new memory mapping whose pages fault in on first touch, a cost that grows faster
than the work (scripts/bench_workspace.py measures it; the README's Performance section has the figures).
With a workspace the first block allocates them and the others write into the same memory; it is dropped
with the forward, so nothing is held afterwards.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Workspace:
    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """An uninitialised buffer of `shape` with `like`'s dtype and device, the same memory on every call
        with that name and shape. Its previous contents must no longer be needed."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
            buf = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._buffers[name] = buf
        return buf
