"""Mixed precision inside the plugin's hand-written autograd functions.

``torch.autocast`` changes the dtype of the ops it knows (matrix products run in bfloat16,
softmax and reductions in float32), but a custom ``torch.autograd.Function`` is opaque to it:
its forward sees whatever tensors it is given and its backward runs outside the autocast
region. The plugin's fused kernels (the output layer with its cross-entropy, the attentive
recurrence, the AWD Double-LSTM recurrence) therefore ask for the dtype themselves, *before*
``Function.apply``, and carry it into the backward as a plain argument:

    mm = matmul_dtype(x)          # torch.bfloat16 under autocast(x.device.type, bfloat16), else x.dtype

and then follow one rule: operands of matrix products are cast to ``mm`` (weights once per
call, not once per step); everything else - gate non-linearities, the LSTM cell state,
attention and output softmax, log-sum-exp, the loss and every gradient accumulator - stays in
float32 (float64 inputs stay float64, so the float64 reference tests are exact). Parameters,
their gradients and the optimizer state are never cast.
"""

from typing import Optional

import torch
from torch import Tensor


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The 16-bit dtype autocast uses on ``device_type`` ('cpu', 'cuda'), or None when off."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def matmul_dtype(x: Tensor) -> torch.dtype:
    """Dtype for the matrix products of a fused function whose main input is ``x``: the
    autocast dtype when autocast is on for ``x``'s device (and ``x`` is not float64), else
    x.dtype."""
    low = autocast_dtype(x.device.type)
    if low is not None and x.dtype in (torch.float32, torch.float16, torch.bfloat16):
        return low
    return x.dtype


def accumulate_dtype(mm_dtype: torch.dtype) -> torch.dtype:
    """Dtype of the element-wise maths and accumulators: float32 for 16-bit products."""
    return torch.float32 if mm_dtype in (torch.float16, torch.bfloat16) else mm_dtype


def mm(a: Tensor, b: Tensor, dtype: torch.dtype) -> Tensor:
    """a @ b with both operands in ``dtype``, the result in ``accumulate_dtype(dtype)``."""
    out = torch.mm(a.to(dtype), b.to(dtype))
    return out.to(accumulate_dtype(dtype))


def bf16_autocast(enabled: bool, device_type: str):
    """The context of ``--bf16-autocast``: torch.autocast(device_type, bfloat16) when enabled."""
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=bool(enabled))


def check_precision_flags(bf16_autocast_flag: bool, bf16: bool, fp16: bool, amp: bool, tpu: bool) -> None:
    """One-line errors for fairseq precision flags that cannot work with the plugin's tasks.

    fairseq's ``--bf16`` means TPU (it sets ``--tpu`` and fails without torch_xla), and its
    ``--fp16``/``--amp`` are CUDA-only and cannot be combined with ``--bf16-autocast``."""
    if bf16:
        try:
            import torch_xla  # noqa: F401
        except ImportError:
            raise SystemExit(
                "error: fairseq's --bf16 trains on a TPU (it implies --tpu) and no TPU is available: use "
                "--bf16-autocast for bfloat16 mixed precision on CPU or CUDA"
            ) from None
        if bf16_autocast_flag:
            raise SystemExit("error: --bf16-autocast and --bf16 (TPU) exclude each other: choose one")
    if bf16_autocast_flag and (fp16 or amp):
        raise SystemExit("error: --bf16-autocast and --fp16/--amp exclude each other: choose one precision")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bfloat16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def run_lstm(lstm: torch.nn.Module, x: Tensor, hx=None):
    """``lstm(x, hx)`` that also works under CPU autocast on CPUs without native bfloat16:
    oneDNN has no bfloat16 LSTM primitive there, so the LSTM runs in float32 outside the
    autocast region (its output is float32). Elsewhere autocast decides as usual."""
    if x.device.type == "cpu" and autocast_dtype("cpu") is not None and not cpu_has_fast_bf16():
        with torch.autocast("cpu", enabled=False):
            hx = None if hx is None else tuple(t.float() for t in hx)
            return lstm(x.float(), hx)
    return lstm(x, hx)
