"""Pure metric and schedule math (no fairseq imports), shared by criterions and scripts.

Conventions: all values are in nats. Token counts are target tokens, i.e. words + EOS
(fairseq appends one EOS per sentence; it is counted, BOS is not).
"""

import math

import torch
from torch import Tensor


def code_perplexity(counts: Tensor) -> Tensor:
    """exp(entropy in nats) of a code histogram; 0 for an empty histogram."""
    counts = torch.as_tensor(counts).double()
    total = counts.sum()
    if total <= 0:
        return counts.new_zeros(())
    p = counts / total
    return torch.exp(-(p * torch.log(p.clamp_min(1e-300))).sum())


def code_usage(counts: Tensor) -> int:
    """Number of distinct codes that occur in a histogram."""
    return int((torch.as_tensor(counts) > 0).sum())


def linear_warmup(num_updates: int, start: float, end: float, warmup_updates: int) -> float:
    """``start`` at update 0, rising linearly to ``end`` at ``warmup_updates``, then flat."""
    if warmup_updates <= 0:
        return float(end)
    frac = min(1.0, max(0, num_updates) / warmup_updates)
    return float(start + (end - start) * frac)


def perplexity(nll_sum: float, ntokens: float) -> float:
    """exp(nll_sum / ntokens), inf on overflow."""
    try:
        return math.exp(nll_sum / max(ntokens, 1))
    except OverflowError:
        return float("inf")
