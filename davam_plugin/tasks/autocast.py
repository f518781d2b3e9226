"""``--bf16-autocast`` for the plugin's tasks (``sentence_vae``, ``davam_prior``).

fairseq v1 has no bfloat16 mixed precision for CPU or CUDA: its ``--bf16`` means TPU and its
``--fp16``/``--amp`` are CUDA-only float16. With ``--bf16-autocast`` the task runs the
model's forward pass (training, validation, generation) under
``torch.autocast(<device of the model>, dtype=torch.bfloat16)``; the backward pass runs
outside the autocast region, as PyTorch recommends, and follows the dtypes the forward chose
(the plugin's hand-written autograd functions carry their matmul dtype into the backward:
:mod:`davam_plugin.modules.precision`). Nothing is cast: parameters, gradients, optimizer
state and the EMA codebook statistics stay float32. bfloat16 has float32's exponent range,
so no loss scaling is needed.

Speed depends on the hardware: GPUs from Ampere on and CPUs with AVX512-BF16 or AMX run
bfloat16 matrix products about 2x faster than float32; CPUs without them (AVX2 only) emulate
them and are much slower, so the task warns there.
"""

import logging

import torch
from omegaconf import II  # noqa: F401  (re-exported for the task configs)

from davam_plugin.modules.precision import bf16_autocast, check_precision_flags, cpu_has_fast_bf16

logger = logging.getLogger(__name__)

BF16_AUTOCAST_HELP = (
    "bfloat16 mixed precision on the device in use (CPU or CUDA): the model's forward runs under "
    "torch.autocast(bfloat16) in training, validation and generation; parameters, gradients, optimizer "
    "state and codebook statistics stay float32 (fairseq's own --bf16 means TPU)"
)


def _common_flag(cfg, name: str) -> bool:
    """A task field interpolated from fairseq's common options (``II("common.bf16")``); a task
    config built outside fairseq's CLI (e.g. by the plugin's tools) keeps the unresolved
    ``"${common.bf16}"`` string, which means the option was not given."""
    value = getattr(cfg, name, False)
    if isinstance(value, str):
        return False
    return bool(value)


def check_task_precision(cfg) -> None:
    """One-line errors for impossible precision flags; a warning for slow CPU bfloat16."""
    enabled = _common_flag(cfg, "bf16_autocast")
    check_precision_flags(
        enabled,
        _common_flag(cfg, "bf16"),
        _common_flag(cfg, "fp16"),
        _common_flag(cfg, "amp"),
        _common_flag(cfg, "tpu"),
    )
    if enabled and not torch.cuda.is_available() and not cpu_has_fast_bf16():
        logger.warning(
            "--bf16-autocast: this CPU has no native bfloat16 matrix instructions (AVX512-BF16/AMX): "
            "bfloat16 products are emulated and slower than float32 here"
        )


def autocast_for(cfg, model):
    """--bf16-autocast's context on the device of ``model`` (a disabled context when off)."""
    enabled = bool(getattr(cfg, "bf16_autocast", False))
    device_type = next(model.parameters()).device.type if enabled else "cpu"
    return bf16_autocast(enabled, device_type)


class Bf16AutocastTaskMixin:
    """train_step / valid_step of a FairseqTask with --bf16-autocast (forward only)."""

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, **kwargs):
        if not getattr(self.cfg, "bf16_autocast", False):
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        model.train()
        model.set_num_updates(update_num)
        with torch.autograd.profiler.record_function("forward"), autocast_for(self.cfg, model):
            loss, sample_size, logging_output = criterion(model, sample)
        if ignore_grad:
            loss *= 0
        with torch.autograd.profiler.record_function("backward"):
            optimizer.backward(loss)
        return loss, sample_size, logging_output

    def valid_step(self, sample, model, criterion, **kwargs):
        with autocast_for(self.cfg, model):
            return super().valid_step(sample, model, criterion)
