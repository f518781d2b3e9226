"""Gradient reversal layer (Ganin et al., 2016), the last piece of AWD's adversary.

    forward:   R(x) = x
    backward:  dL/dx = -scale * dL/dR

so a module placed before R is trained to *increase* the loss that the modules after R
minimise. In AWD the adversary's word-dropout mask passes through R: the VAE minimises the
negative ELBO, the adversary (with scale 1, the paper's pseudo-function -I) maximises it.
``scale`` (>= 0) weights the reversed gradient; no gradient flows to ``scale`` itself.
"""

import torch
from torch import Tensor


class GradientReversal(torch.autograd.Function):
    """Identity forward, gradient multiplied by ``-scale`` backward (see module docstring)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float = 1.0) -> Tensor:
        ctx.scale = float(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        return grad_output * (-ctx.scale), None


def grad_reverse(x: Tensor, scale: float = 1.0) -> Tensor:
    """Return ``x`` unchanged; its gradient is multiplied by ``-scale`` in the backward pass."""
    if scale < 0:
        raise ValueError(f"gradient reversal scale must be >= 0, got {scale}")
    return GradientReversal.apply(x, scale)
