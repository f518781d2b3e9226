"""The backward of one LSTM cell step, shared by the plugin's hand-written recurrences.

For gate activations i, f, g, o = sigma, sigma, tanh, sigma of the pre-activations and
c = f * c_prev + i * g, h = o * tanh(c), given dh and the total dc of the step's output:

    d(pre_i) = dc g  i (1 - i)          d(pre_f) = dc c_prev f (1 - f)
    d(pre_g) = dc i  (1 - g^2)          d(pre_o) = dh tanh(c) o (1 - o)
"""

import torch
from torch import Tensor


def lstm_gate_grads(out: Tensor, act: Tensor, c_prev: Tensor, tanh_c: Tensor, dh: Tensor, dc: Tensor) -> Tensor:
    """d(gate pre-activations) (B, 4H) of one cell into ``out``, from its activations ``act``
    (B, 4H: i, f, g, o), c_prev, tanh(c), dh and the total dc of its output."""
    i, f, g, o = act.chunk(4, dim=1)
    return torch.cat(
        [
            torch.ops.aten.sigmoid_backward(dc * g, i),
            torch.ops.aten.sigmoid_backward(dc * c_prev, f),
            torch.ops.aten.tanh_backward(dc * i, g),
            torch.ops.aten.sigmoid_backward(dh * tanh_c, o),
        ],
        dim=1,
        out=out,
    )
