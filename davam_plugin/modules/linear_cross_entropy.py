"""Output layer and summed cross-entropy in one autograd function.

For features x_n (N, D), weights W (V, D), a fixed additive bias b (V) and targets y_n:

    z_n   = W x_n + b
    loss  = -sum_n log_softmax(z_n)[y_n]
    dz_n  = softmax(z_n) - onehot(y_n)            (times the incoming gradient)
    dx    = dz W,     dW = dz^T x

Compared with ``F.cross_entropy(F.linear(x, W, b), y, reduction="sum")`` this never builds a
dense zero-filled (N, V) gradient of the log-probabilities: the backward turns the saved
log-probabilities into dz in place (exp, then -1 at the targets). The bias is a constant
(-inf for symbols that must never be predicted) and gets no gradient. Logits are kept in float32 for 16-bit inputs.
Double backward is not supported.
"""

import torch
from torch import Tensor


def _logits(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    logits = torch.addmm(bias.to(x.dtype), x, weight.t())
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _nll(logp: Tensor, target: Tensor) -> Tensor:
    return -logp.gather(1, target.unsqueeze(1)).sum()


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, target: Tensor) -> Tensor:
        logp = torch.log_softmax(_logits(x, weight, bias), dim=1)
        loss = _nll(logp, target)
        ctx.save_for_backward(x, weight, target, logp)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        x, weight, target, logp = ctx.saved_tensors
        dz = logp.exp_()  # softmax, in place of the saved log-probabilities
        dz.scatter_add_(1, target.unsqueeze(1), dz.new_full((dz.size(0), 1), -1.0))
        dz = dz.mul_(grad_loss).to(x.dtype)
        return torch.mm(dz, weight), torch.mm(dz.t(), x), None, None


def linear_cross_entropy(x: Tensor, weight: Tensor, bias: Tensor, target: Tensor) -> Tensor:
    """sum_n -log softmax(W x_n + b)[y_n] (see module docstring)."""
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return LinearCrossEntropy.apply(x, weight, bias, target)
    return _nll(torch.log_softmax(_logits(x, weight, bias), dim=1), target)
