"""Gated causal 1-D convolution with a per-step cache (the layer of DAVAM's PixelCNN prior).

For an input sequence x_1..x_T (channels C) and kernel width k, a layer with shift s computes

    a_t, b_t = split(sum_{j=0}^{k-1} W_j x_{t-s-j} + c)          (2C channels -> C, C)
    g_t      = tanh(a_t) * sigmoid(b_t)                            (gated activation)
    y_t      = R g_t + r  (+ x_t if residual)                      (1x1 "residual" conv)

with x_{t'} = 0 for t' < 1 (left zero padding). With s = 1 the output at t depends on
x_{<t} only ("strictly causal", the prior's first layer: it reads the codes before t); with
s = 0 it depends on x_{<=t} (the later layers, whose inputs are already strictly causal).

Incremental use (sampling): :meth:`step` takes one new input column and a cache holding the
last ``k`` inputs the layer has seen, so one new position costs one k-tap product per layer
instead of re-running the whole prefix. For s = 1 the caller feeds x_{t-1} to obtain y_t
(the new column is the oldest tap's successor); for s = 0 it feeds x_t. In both cases the
cache after t steps holds exactly the columns the full convolution reads for y_t, so
:meth:`forward` and repeated :meth:`step` give the same values.

Computation: the k taps of every position are gathered into one row (``unfold``) and all
positions of the batch go through one matrix product with the (2C, C k) weight, then one with
R: on a CPU this is about twice as fast as ``conv1d`` (oneDNN) for the prior's shapes
(C = 512, k = 5, T ~ 25), forward and backward. The parameters stay ``nn.Conv1d`` modules
(same state dict as before). A stack of layers runs time-major ((B, T, C), as the
embeddings come) through :meth:`GatedCausalConv1d.forward_time_major` and :func:`pointwise`
1x1 convolutions: no transposes between layers, and the taps are gathered by stacking k
shifted slices, not with ``unfold`` on (B, C, T), whose backward took about a sixth of a
prior training step. A whole PTB prior step (15 layers of 512, batch 32 x 25,
``--bf16-autocast``, one thread) is 7-14% faster for it (docs/benchmark.md); the float32
forward is bit for bit the same.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class GatedCausalConv1d(nn.Module):
    """Gated causal convolution (see module docstring). Tensors are (B, C, T) like ``nn.Conv1d``."""

    def __init__(self, channels: int, kernel_size: int, strictly_causal: bool = False, residual: bool = True):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        if strictly_causal and residual:
            raise ValueError("a strictly causal layer cannot have an identity residual (it would leak x_t)")
        self.kernel_size = kernel_size
        self.shift = 1 if strictly_causal else 0
        self.residual = residual
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size)
        self.out = nn.Conv1d(channels, channels, 1)

    def _rows(self, cols: Tensor) -> Tensor:
        """Rows of gathered taps (N, C k) -> gated, projected outputs (N, C), before the residual."""
        C = self.out.out_channels
        pre = torch.addmm(self.conv.bias, cols, self.conv.weight.reshape(2 * C, -1).t())
        a, b = pre.chunk(2, dim=1)
        return torch.addmm(self.out.bias, torch.tanh(a) * torch.sigmoid(b), self.out.weight.view(C, C).t())

    def forward(self, x: Tensor) -> Tensor:
        """Full sequence: x (B, C, T) -> y (B, C, T) (``nn.Conv1d``'s layout; a stack of layers
        is cheaper in :meth:`forward_time_major`, which this wraps)."""
        return self.forward_time_major(x.transpose(1, 2)).transpose(1, 2)

    def forward_time_major(self, x: Tensor) -> Tensor:
        """Full sequence: x (B, T, C) -> y (B, T, C). Row (b, t) of the gathered taps holds
        x_{t-s-k+1+j} for j = 0..k-1, channel-major (c, j) as the conv weight (2C, C, k) is
        stored; the taps are k shifted slices of the left-padded input, stacked, whose
        backward is k slice additions (``unfold``'s backward is several times slower)."""
        B, T, C = x.shape
        k = self.kernel_size
        padded = F.pad(x, (0, 0, k - 1 + self.shift, 0))
        cols = torch.stack([padded[:, j : j + T] for j in range(k)], dim=3).reshape(B * T, C * k)
        y = self._rows(cols).view(B, T, C)
        return y + x if self.residual else y

    def init_cache(self, x: Tensor) -> Tensor:
        """Empty cache (all left padding) for a batch like ``x`` (B, C, ...)."""
        return x.new_zeros(x.size(0), x.size(1), self.kernel_size)

    def step(self, x_new: Tensor, cache: Tensor):
        """One position: x_new (B, C) -> (y (B, C), new cache). See the module docstring for
        which column to feed (x_{t-1} if strictly causal, else x_t)."""
        cache = torch.cat([cache[:, :, 1:], x_new.unsqueeze(2)], dim=2)
        y = self._rows(cache.reshape(cache.size(0), -1))
        return (y + x_new if self.residual else y), cache


def pointwise(conv: nn.Conv1d, x: Tensor) -> Tensor:
    """A kernel-1 ``nn.Conv1d`` applied to time-major features x (..., C_in) -> (..., C_out):
    the same map as the convolution on (B, C_in, T), without transposing to its layout."""
    return F.linear(x, conv.weight.squeeze(-1), conv.bias)
