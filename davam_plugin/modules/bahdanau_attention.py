"""Additive (Bahdanau) attention over a padded memory sequence.

For a query q_i (the decoder's previous hidden state) and memory vectors m_1..m_T

    score_{i,t} = v^T tanh(W_q q_i + W_m m_t + b)
    a_{i,t}     = softmax_t(score_{i,t})            (pad positions get probability 0)
    context_i   = sum_t a_{i,t} m_t

This is DAVAM's Eq. 3 with the concatenation ``W [q; m] + b`` of the authors' code written
as two projections, so that ``W_m m + b`` (the "keys") can be computed once per batch instead
of once per decoder step, and ``W_q q`` can be fused with other matrix products of the same
query (see :class:`davam_plugin.modules.latent_decoders.AttentiveLatentDecoder`).
"""

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def attention_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last dim (memory positions), computed in float32 for 16-bit scores."""
    if scores.dtype in (torch.float16, torch.bfloat16):
        return F.softmax(scores.float(), dim=-1).to(scores.dtype)
    return F.softmax(scores, dim=-1)


class BahdanauAttention(nn.Module):
    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int):
        super().__init__()
        self.query_proj = nn.Linear(query_dim, attention_dim, bias=False)
        self.memory_proj = nn.Linear(memory_dim, attention_dim, bias=True)
        self.v = nn.Parameter(torch.empty(attention_dim).uniform_(-0.1, 0.1))

    def project_memory(self, memory: Tensor) -> Tensor:
        """Keys ``W_m m + b`` for memory (B, T, memory_dim) -> (B, T, attention_dim)."""
        return self.memory_proj(memory)

    def weights(
        self, projected_query: Tensor, keys: Tensor, padding_mask: Optional[Tensor]
    ) -> Tensor:
        """Attention weights (B, T) from ``W_q q`` (B, A) and keys (B, T, A)."""
        scores = torch.matmul(torch.tanh(keys + projected_query.unsqueeze(1)), self.v)
        if padding_mask is not None:
            scores = scores.masked_fill(padding_mask, float("-inf"))
        return attention_softmax(scores)

    def forward(
        self, query: Tensor, memory: Tensor, padding_mask: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        """Unfused reference path: returns (context (B, memory_dim), weights (B, T))."""
        a = self.weights(self.query_proj(query), self.project_memory(memory), padding_mask)
        return torch.bmm(a.unsqueeze(1), memory).squeeze(1), a
