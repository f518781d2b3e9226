"""Output layer and summed cross-entropy in one autograd function.

For features x_n (N, D), weights W (V, D), a fixed additive bias b (V) and targets y_n:

    z_n   = W x_n + b
    loss  = -sum_n log_softmax(z_n)[y_n]
    dz_n  = softmax(z_n) - onehot(y_n)            (times the incoming gradient)
    dx    = dz W,     dW = dz^T x

Compared with ``F.cross_entropy(F.linear(x, W, b), y, reduction="sum")`` this never builds a
dense zero-filled (N, V) gradient of the log-probabilities: the backward turns the saved
log-probabilities into dz in place (exp, then -1 at the targets). The bias is a constant
(-inf for symbols that must never be predicted) and gets no gradient. Double backward is not
supported.

Precision (:mod:`davam_plugin.modules.precision`): the three products (W x, dz W, dz^T x) run
in the matmul dtype - bfloat16 under ``torch.autocast(..., dtype=torch.bfloat16)`` or for
16-bit inputs - while the logits, the log-softmax, the loss and dz are float32 (float64
inputs stay float64). The gradients come back in the dtypes of x and W.
"""

import torch
from torch import Tensor

from davam_plugin.modules.precision import accumulate_dtype, matmul_dtype


def _logits(x: Tensor, weight: Tensor, bias: Tensor, mm_dtype: torch.dtype) -> Tensor:
    acc = accumulate_dtype(mm_dtype)
    return torch.mm(x.to(mm_dtype), weight.to(mm_dtype).t()).to(acc).add_(bias.to(acc))


def _nll(logp: Tensor, target: Tensor) -> Tensor:
    return -logp.gather(1, target.unsqueeze(1)).sum()


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, target: Tensor, mm_dtype: torch.dtype) -> Tensor:
        x_mm, w_mm = x.to(mm_dtype), weight.to(mm_dtype)
        logp = torch.log_softmax(_logits(x_mm, w_mm, bias, mm_dtype), dim=1)
        loss = _nll(logp, target)
        ctx.save_for_backward(x_mm, w_mm, target, logp)
        ctx.dtypes = (x.dtype, weight.dtype)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        x_mm, w_mm, target, logp = ctx.saved_tensors
        x_dtype, w_dtype = ctx.dtypes
        dz = logp.exp_()  # softmax, in place of the saved log-probabilities
        dz.scatter_add_(1, target.unsqueeze(1), dz.new_full((dz.size(0), 1), -1.0))
        dz = dz.mul_(grad_loss).to(x_mm.dtype)
        dx = torch.mm(dz, w_mm).to(x_dtype) if ctx.needs_input_grad[0] else None
        dw = torch.mm(dz.t(), x_mm).to(w_dtype) if ctx.needs_input_grad[1] else None
        return dx, dw, None, None, None


def linear_cross_entropy(x: Tensor, weight: Tensor, bias: Tensor, target: Tensor) -> Tensor:
    """sum_n -log softmax(W x_n + b)[y_n] (see module docstring); the loss is float32 (or
    float64 for float64 inputs)."""
    mm_dtype = matmul_dtype(x)
    with torch.autocast(x.device.type, enabled=False):
        if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
            return LinearCrossEntropy.apply(x, weight, bias, target, mm_dtype)
        return _nll(torch.log_softmax(_logits(x, weight, bias, mm_dtype), dim=1), target)
