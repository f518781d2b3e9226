"""The AWD Double-LSTM recurrence (hand-written backward) against a plain float64 autograd
reference, step by step: forward values, every input and parameter gradient, the blocked
per-step products, the no-grad path, the model with uneven lengths and adversarial keep masks,
and bfloat16 autocast."""

import pytest
import torch

import davam_plugin.models.awd as awd_module
from davam_plugin.modules import double_lstm_recurrence as recurrence
from davam_plugin.modules.double_lstm_recurrence import DoubleLSTMRecurrence, double_lstm_recurrence
from helpers import SENTENCES, make_batch
from helpers import OPTION_CASES, criterion, tiny_awd


def _cell(gates, c):
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def reference(x, p, u, h0, c0, w_p, w_u):
    """The equations of the module docstring, one autograd step at a time."""
    h, c, out = h0, c0, []
    for t in range(x.size(1)):
        h, c = _cell(p + h @ w_p.t(), c)
        h, c = _cell(x[:, t] + u + h @ w_u.t(), c)
        out.append(h)
    hs = torch.stack(out, 1) if out else h0.new_zeros(h0.size(0), 0, h0.size(1))
    return hs, h, c


def random_inputs(B=3, T=5, H=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return (0.5 * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype).requires_grad_(True)

    return [r(B, T, 4 * H), r(B, 4 * H), r(B, 4 * H), r(B, H), r(B, H), r(4 * H, H), r(4 * H, H)]


def weighted_sum(outputs, seed=1):
    """A loss that gives every output (h_1..h_T, h_T, c_T) its own random incoming gradient."""
    g = torch.Generator().manual_seed(seed)
    return sum((o.double() * torch.randn(o.shape, generator=g, dtype=torch.float64)).sum() for o in outputs)


@pytest.mark.parametrize("block_bytes", [recurrence.PRODUCT_BLOCK_BYTES, 3 * 4 * 8])  # default; 3 rows of 4 floats
@pytest.mark.parametrize("T", [1, 5])
def test_forward_and_every_gradient_equal_the_step_by_step_reference(block_bytes, T, monkeypatch):
    monkeypatch.setattr(recurrence, "PRODUCT_BLOCK_BYTES", block_bytes)
    inputs = random_inputs(T=T)
    got = double_lstm_recurrence(*inputs)
    want = reference(*inputs)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == torch.float64 and torch.allclose(a, b, rtol=0, atol=1e-14)
    d_got = torch.autograd.grad(weighted_sum(got), inputs)
    d_want = torch.autograd.grad(weighted_sum(want), inputs)
    for name, a, b in zip(["x", "p", "u", "h0", "c0", "w_p", "w_u"], d_got, d_want, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-10, atol=1e-13), name


def test_gradients_when_only_some_outputs_are_used():
    inputs = random_inputs(seed=2)
    for pick in ([0], [1], [2], [1, 2]):
        got = double_lstm_recurrence(*inputs)
        want = reference(*inputs)
        d_got = torch.autograd.grad(weighted_sum([got[i] for i in pick]), inputs)
        d_want = torch.autograd.grad(weighted_sum([want[i] for i in pick]), inputs)
        for a, b in zip(d_got, d_want, strict=True):
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-13), pick


def test_gradcheck():
    inputs = random_inputs(B=2, T=3, H=2, seed=3)
    fn = lambda *a: DoubleLSTMRecurrence.apply(*a, torch.float64)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


def test_no_grad_path_and_empty_input():
    inputs = random_inputs(seed=4)
    with_grad = double_lstm_recurrence(*inputs)
    with torch.no_grad():
        without = double_lstm_recurrence(*inputs)
    for a, b in zip(with_grad, without, strict=True):
        assert torch.equal(a.detach(), b)
    x, p, u, h0, c0, w_p, w_u = inputs
    hs, h, c = double_lstm_recurrence(x[:, :0], p, u, h0, c0, w_p, w_u)
    assert hs.shape == (3, 0, 4) and torch.equal(h, h0) and torch.equal(c, c0)


def _reference_recurrence(x, p, u, h0, c0, w_p, w_u):
    """Model hook: the plain autograd recurrence in place of the fused one."""
    return reference(x, p, u, h0, c0, w_p, w_u)


@pytest.mark.parametrize("case", ["authors", "legacy"])
@pytest.mark.parametrize("mode", ["adversarial", "uniform"])
def test_model_loss_and_all_gradients_equal_the_plain_autograd_recurrence(case, mode, monkeypatch):
    """The whole AWD model in float64, training mode: uneven lengths with padding, word inputs
    dropped by the adversary (its gradient reversed through the relaxed top-K) or uniformly."""
    sentences = [[4 + (i + j) % 15 for j in range(n)] for i, n in enumerate([9, 1, 4, 0, 6])]

    def run(fused):
        model, d = tiny_awd(mode, seed=1, **OPTION_CASES[case])
        model = model.double().train()
        if not fused:
            monkeypatch.setattr(awd_module, "double_lstm_recurrence", _reference_recurrence)
        sample = make_batch(d, sentences + SENTENCES, extra_pad=2)
        torch.manual_seed(11)
        loss, _, log = criterion(d)(model, sample)
        loss.backward()
        monkeypatch.undo()
        assert log["n_dropped"] > 0
        return loss, {k: p.grad for k, p in model.named_parameters() if p.grad is not None}

    (loss, grads), (ref_loss, ref_grads) = run(True), run(False)
    assert torch.allclose(loss, ref_loss, rtol=1e-12)
    assert grads.keys() == ref_grads.keys()
    assert any(".adversary." in k for k in grads) == (mode == "adversarial")
    assert "decoder.predict_cell.weight_hh" in grads and "decoder.update_cell.weight_ih" in grads
    for k in grads:
        assert torch.allclose(grads[k], ref_grads[k], rtol=1e-10, atol=1e-13), k


def test_bfloat16_autocast_is_close_to_the_float64_reference():
    """Under torch.autocast('cpu', bfloat16) the products run in bfloat16 and everything else in
    float32: h_1..h_T, h_T and c_T are float32 and within 1e-2 of the float64 reference, every
    gradient is float32 and within 2e-2, both relative to the largest entry of the reference
    tensor (bfloat16 keeps 8 significant bits; over 12 steps of two cells the errors measured
    were 1e-3..4e-3 for the outputs and 1.5e-3..8e-3 for the gradients on five seeds). float64
    inputs are not touched by autocast: exact."""
    inputs64 = random_inputs(B=4, T=12, H=16, seed=5)
    inputs32 = [t.detach().float().requires_grad_(True) for t in inputs64]
    want = reference(*inputs64)
    d_want = torch.autograd.grad(weighted_sum(want), inputs64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = double_lstm_recurrence(*inputs32)
        loss = weighted_sum(got)
        exact = double_lstm_recurrence(*inputs64)
    d_got = torch.autograd.grad(loss, inputs32)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == torch.float32
        assert (a.double() - b).abs().max() <= 1e-2 * b.abs().max()
    for name, a, b in zip(["x", "p", "u", "h0", "c0", "w_p", "w_u"], d_got, d_want, strict=True):
        assert a.dtype == torch.float32, name
        assert (a.double() - b).abs().max() <= 2e-2 * b.abs().max(), name
    # the products really ran in bfloat16: float32 would be ~1e-7 from the reference
    assert max((a.double() - b).abs().max() / b.abs().max() for a, b in zip(got, want, strict=True)) > 1e-4
    for a, b in zip(exact, want, strict=True):
        assert a.dtype == torch.float64 and torch.allclose(a, b, rtol=0, atol=1e-14)
