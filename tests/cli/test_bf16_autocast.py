"""--bf16-autocast: the fused kernels under torch.autocast(bfloat16) against float64
references, the quantizer's float32 island, a whole DAVAM step, and the CLI flags.

Tolerances: bfloat16 keeps 8 significant bits (relative rounding error 2^-9 ~ 0.2%); a
product of length K accumulates in float32 inside the kernel and is rounded once, so
results carry relative errors of a few 2^-9. The tests allow 2% relative error (plus a small
absolute term for values near 0) on losses, outputs and gradients of O(1) random inputs,
i.e. about ten times the expected error, and still fail if any product silently ran in float32
where it should not (checked separately: the result differs from float32's) or if a float32
quantity (loss, cell state, softmax) were rounded to bfloat16 (then the error is larger or
the dtype is wrong).
"""

import pytest
import torch
import torch.nn.functional as F

from davam_plugin.modules.attentive_lstm_recurrence import attentive_lstm_recurrence
from davam_plugin.modules.linear_cross_entropy import linear_cross_entropy
from davam_plugin.modules.ema_vector_quantizer import EMAVectorQuantizer
from davam_plugin.modules.precision import matmul_dtype
from conftest import TRAIN_TINY, run_cli
from helpers import SENTENCES, make_batch, tiny_model

REL = 0.02


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def close(a, ref, rel=REL, abs_=1e-3):
    a, ref = a.double(), ref.double()
    return bool(((a - ref).abs() <= abs_ + rel * ref.abs().max()).all())


def test_matmul_dtype_follows_autocast():
    x = torch.zeros(2, 2)
    assert matmul_dtype(x) == torch.float32
    with bf16():
        assert matmul_dtype(x) == torch.bfloat16
        assert matmul_dtype(x.double()) == torch.float64  # float64 references stay exact


def test_linear_cross_entropy_bf16_against_float64():
    g = torch.Generator().manual_seed(0)
    x64 = torch.randn(40, 24, generator=g, dtype=torch.double, requires_grad=True)
    w64 = (0.3 * torch.randn(50, 24, generator=g, dtype=torch.double)).requires_grad_(True)
    bias = torch.zeros(50, dtype=torch.double)
    bias[[1, 7]] = float("-inf")
    y = torch.randint(0, 50, (40,), generator=g)
    y[y.eq(1) | y.eq(7)] = 0
    ref = F.cross_entropy(F.linear(x64, w64, bias), y, reduction="sum")
    rx, rw = torch.autograd.grad(ref, (x64, w64))

    x = x64.detach().float().requires_grad_(True)
    w = w64.detach().float().requires_grad_(True)
    with bf16():
        loss = linear_cross_entropy(x, w, bias.float(), y)
    assert loss.dtype == torch.float32  # the loss is never rounded to bfloat16
    gx, gw = torch.autograd.grad(loss, (x, w))
    assert gx.dtype == torch.float32 and gw.dtype == torch.float32
    assert close(loss, ref) and close(gx, rx) and close(gw, rw)
    # the products really ran in bfloat16: the result differs from float32's
    fp32 = linear_cross_entropy(x, w, bias.float(), y)
    assert not torch.equal(loss, fp32)
    with torch.no_grad(), bf16():
        assert torch.equal(linear_cross_entropy(x, w, bias.float(), y), loss.detach())


def recurrence_inputs(seed=0, B=3, L=6, T=5, H=8, A=4):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return (0.5 * torch.randn(*shape, generator=g, dtype=torch.double)).requires_grad_(True)

    mask = torch.zeros(B, T, dtype=torch.double)
    mask[0, 3:] = float("-inf")
    mask[2, 1:] = float("-inf")
    return [r(B, L, 4 * H), r(B, H), r(B, H), r(B, T, A), r(B, T, H), mask, r(A + 4 * H, H), r(4 * H, H), r(A)]


def test_attentive_recurrence_bf16_against_float64():
    inputs = recurrence_inputs()
    grad_idx = [0, 1, 2, 3, 4, 6, 7, 8]

    def run(args):
        hs, ctxs, attn, h, c = attentive_lstm_recurrence(*args)
        loss = (hs * torch.linspace(-1, 1, hs.size(-1), dtype=hs.dtype)).sum() + ctxs.pow(2).sum() + c.sum()
        return loss, (hs, ctxs, attn, c), torch.autograd.grad(loss, [args[i] for i in grad_idx])

    ref_loss, ref_out, ref_grads = run(inputs)
    f32 = [t.detach().float().requires_grad_(t.requires_grad) for t in inputs]
    with bf16():
        loss, out, grads = run(f32)
    for o in out:  # outputs, attention and cell state stay float32
        assert o.dtype == torch.float32
    for gr, t in zip(grads, [f32[i] for i in grad_idx], strict=True):
        assert gr.dtype == t.dtype == torch.float32
    assert close(loss, ref_loss)
    for o, r in zip(out, ref_out, strict=True):
        assert close(o, r)
    for gr, r in zip(grads, ref_grads, strict=True):
        assert close(gr, r)
    plain_loss, _, _ = run([t.detach().float().requires_grad_(t.requires_grad) for t in inputs])
    assert not torch.equal(plain_loss, loss)  # the step products ran in bfloat16


def test_quantizer_is_a_float32_island_under_autocast():
    torch.manual_seed(0)
    q = EMAVectorQuantizer(16, 4)
    h = torch.randn(2, 5, 4, requires_grad=True)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[1, 3:] = True
    q.eval()
    plain = q(h, mask)
    with bf16():
        mixed = q(h.bfloat16(), mask)  # what a Linear under autocast hands it
    assert mixed["quantized"].dtype == torch.float32
    assert torch.equal(mixed["codes"], q(h.bfloat16().float(), mask)["codes"])
    # the quantized values are exactly the float32 codes (not rounded to bfloat16)
    real = ~mask
    assert torch.equal(mixed["quantized"][real], q.codebook[mixed["codes"][real]])
    assert plain["commitment"].dtype == mixed["commitment"].dtype == torch.float32
    assert q.codebook.dtype == q.cluster_sum.dtype == torch.float32


def test_davam_training_step_under_autocast_keeps_float32_state():
    model, d = tiny_model()
    batch = make_batch(d, SENTENCES)
    model.train()
    from davam_plugin.criterions.davam import DavamCriterion
    from helpers import TinyTask

    crit = DavamCriterion(TinyTask(d), beta_start=0.25, beta_max=1.0, beta_warmup_updates=0)
    with torch.no_grad():
        model.eval()
        ref, _, _ = crit(model, batch)
        with bf16():
            low, _, _ = crit(model, batch)
    assert low.dtype == torch.float32
    assert abs(float(low) - float(ref)) <= 0.01 * abs(float(ref))
    model.train()
    with bf16():
        loss, _, _ = crit(model, batch)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32 and (p.grad is None or p.grad.dtype == torch.float32), name
    for name, b in model.named_buffers():
        if b.is_floating_point():
            assert b.dtype == torch.float32, name


def test_cli_bf16_autocast_trains_validates_generates(tiny_data, tmp_path):
    save = tmp_path / "ckpt"
    out = run_cli("fairseq-train", tiny_data, *TRAIN_TINY, "--max-update", "6", "--save-dir", save, "--bf16-autocast")
    assert '"train_rec"' in out.stdout + out.stderr
    ckpt = save / "checkpoint_last.pt"
    val = run_cli("fairseq-validate", tiny_data, "--user-dir", TRAIN_TINY[1], "--task", "sentence_vae", "--path",
                  ckpt, "--batch-size", "16", "--cpu", "--bf16-autocast")  # fmt: skip
    assert "valid_rec" in val.stdout + val.stderr or "| rec" in val.stdout + val.stderr
    gen = run_cli("fairseq-generate", tiny_data, "--user-dir", TRAIN_TINY[1], "--task", "sentence_vae", "--path",
                  ckpt, "--gen-subset", "valid", "--beam", "2", "--batch-size", "16", "--cpu", "--bf16-autocast")  # fmt: skip
    assert sum(line.startswith("H-") for line in gen.stdout.splitlines()) == 40


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--bf16"], "use --bf16-autocast"),
        (["--bf16-autocast", "--fp16"], "exclude each other"),
    ],
)
def test_cli_refuses_fairseq_bf16_without_tpu(tiny_data, tmp_path, flags, message):
    out = run_cli("fairseq-train", tiny_data, *TRAIN_TINY, "--max-update", "1", "--save-dir", tmp_path, *flags,
                  check=False)  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode != 0 and message in text and "Traceback" not in text


def test_task_config_built_outside_the_cli_is_not_taken_for_bf16():
    """The plugin's tools build SentenceVAEConfig directly: its fields interpolated from
    fairseq's common options stay unresolved strings, which mean 'not given'."""
    from davam_plugin.tasks.autocast import check_task_precision
    from davam_plugin.tasks.sentence_vae import SentenceVAEConfig

    cfg = SentenceVAEConfig(data="x")
    assert isinstance(cfg.bf16, str) and cfg.bf16.startswith("${")
    check_task_precision(cfg)  # no SystemExit
    cfg.bf16 = True
    with pytest.raises(SystemExit, match="use --bf16-autocast"):
        check_task_precision(cfg)
