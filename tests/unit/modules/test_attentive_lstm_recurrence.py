"""The hand-written backward of the attentive LSTM recurrence equals autograd's."""

import pytest
import torch

from davam_plugin.modules import attentive_lstm_recurrence as recurrence
from davam_plugin.modules.attentive_lstm_recurrence import AttentiveLSTMRecurrence, attentive_lstm_recurrence
from helpers import SENTENCES, make_batch, tiny_model


def random_inputs(B=3, L=4, T=5, H=3, A=2, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return (0.5 * torch.randn(*shape, generator=g, dtype=torch.double)).requires_grad_(True)

    mask = torch.zeros(B, T, dtype=torch.double)
    mask[0, 3:] = float("-inf")  # a padded memory row
    mask[2, 1:] = float("-inf")  # a one-position memory
    return (r(B, L, 4 * H), r(B, H), r(B, H), r(B, T, A), r(B, T, H), mask, r(A + 4 * H, H), r(4 * H, H), r(A))


@pytest.mark.parametrize("store_activations", [True, False])
def test_gradcheck_hand_written_backward(store_activations, monkeypatch):
    if not store_activations:  # force the recompute-in-backward path
        monkeypatch.setattr(recurrence, "STORE_ATTENTION_ACTIVATIONS_MAX", 0)
    inputs = random_inputs()

    def fn(*args):
        hs, ctxs, _, h, c = AttentiveLSTMRecurrence.apply(*args)
        return hs, ctxs, h, c

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_no_grad_path_equals_autograd_function_forward():
    inputs = random_inputs(seed=1)
    with_grad = AttentiveLSTMRecurrence.apply(*inputs)
    with torch.no_grad():
        without = attentive_lstm_recurrence(*inputs)
    for a, b in zip(with_grad, without, strict=True):
        assert torch.equal(a.detach(), b)


def test_model_gradients_equal_plain_autograd_path():
    """All parameter gradients of the fused decoder equal those of the nn.LSTMCell path."""
    model, d = tiny_model()
    model.double().eval()  # eval: no dropout, so both paths see identical inputs
    batch = make_batch(d, SENTENCES)
    n = batch["net_input"]
    target = batch["target"]
    w = torch.randn(target.shape + (len(d),), dtype=torch.double).masked_fill(target.eq(d.pad()).unsqueeze(-1), 0)

    def grads(decode):
        model.zero_grad()
        enc = model.encoder(n["src_tokens"], n["src_lengths"])
        out = decode(n["prev_output_tokens"], enc)
        (out.masked_fill(out.isinf(), 0) * w).sum().backward()
        return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    fused = grads(lambda prev, enc: model.decoder(prev, enc)[0])
    plain = grads(model.decoder.forward_unfused)
    assert fused.keys() == plain.keys()
    assert len(fused) == len(list(model.parameters()))
    for k in fused:
        assert torch.allclose(fused[k], plain[k], atol=1e-10), k


def test_fused_linear_cross_entropy_equals_reference():
    import torch.nn.functional as F

    from davam_plugin.modules.linear_cross_entropy import linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=g, dtype=torch.double, requires_grad=True)
    w = torch.randn(11, 5, generator=g, dtype=torch.double, requires_grad=True)
    bias = torch.zeros(11, dtype=torch.double)
    bias[[1, 9]] = float("-inf")  # never-predicted symbols
    y = torch.tensor([0, 2, 3, 4, 5, 10, 3])
    loss = linear_cross_entropy(x, w, bias, y)
    ref = F.cross_entropy(F.linear(x, w, bias), y, reduction="sum")
    assert torch.allclose(loss, ref)
    gx, gw = torch.autograd.grad(3.0 * loss, (x, w))
    rx, rw = torch.autograd.grad(3.0 * ref, (x, w))
    assert torch.allclose(gx, rx) and torch.allclose(gw, rw)
    with torch.no_grad():
        assert torch.allclose(linear_cross_entropy(x, w, bias, y), ref)
    # the backward reuses the saved logits in place: a second backward must fail loudly
    loss = linear_cross_entropy(x, w, bias, y)
    torch.autograd.grad(loss, (x, w), retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(loss, (x, w))


def test_mask_dropout_distribution_scaling_and_gradient():
    from davam_plugin.modules.mask_dropout import MaskDropout

    torch.manual_seed(0)
    drop = MaskDropout(0.3)
    x = torch.ones(200, 500, requires_grad=True)
    y = drop(x)
    kept = y.ne(0)
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # 100k Bernoulli(0.7) draws
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d y / d x = mask / (1 - p)
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError):
        MaskDropout(1.0)
