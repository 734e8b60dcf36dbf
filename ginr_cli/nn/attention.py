"""Multi-head attention: the Trans-INR baseline's self-attention mixer and the decoder's cross-attention."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class MultiHeadAttention(nn.Module):
    """Queries from `x`, keys and values from `context` (self-attention when context is None)."""

    def __init__(self, d_model: int, n_heads: int, d_context: int | None = None):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_context or d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """x (b, q, d), context (b, m, d_context) -> (b, q, d)"""
        b, q, d = x.shape
        context = x if context is None else context
        h = self.n_heads
        query = self.q(x).view(b, q, h, d // h).transpose(1, 2)  # (b, h, q, d/h)
        key, value = self.kv(context).view(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)  # (b, h, m, d/h) each
        y = F.scaled_dot_product_attention(query, key, value)  # (b, h, q, d/h)
        return self.out(y.transpose(1, 2).reshape(b, q, d))  # (b, q, d)
