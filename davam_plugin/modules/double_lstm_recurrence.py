"""The Double-LSTM recurrence of the AWD decoder, with a hand-written backward.

For t = 1..T, given the word-input pre-activations of the update cell X_t (B, 4H) (the word
embedding's part of its gates, already masked by the word dropout), the per-sentence
constants P = W_pz z + b_p and U = W_uz z + b_u (B, 4H) (the z parts of the two cells' gates,
biases included), the start state (h_0, c_0) (B, H) and the recurrent weights W_p, W_u (4H, H):

    i, f, g, o  = sigma, sigma, tanh, sigma of (P + W_p h_{t-1})          ("predict" cell)
    c'_t        = f * c_{t-1} + i * g,   h'_t = o * tanh(c'_t)
    i, f, g, o  = sigma, sigma, tanh, sigma of (X_t + U + W_u h'_t)       ("update" cell)
    c_t         = f * c'_t + i * g,      h_t = o * tanh(c_t)

Outputs: h_1..h_T, h_T, c_T.

Only the two hidden-state products W_p h_{t-1} and W_u h'_t run inside the forward loop. The
backward (back-propagation through time written out) keeps inside the reverse loop only the
gate derivatives dg2_t (update cell) and dg1_t (predict cell) and the two products that carry
the gradient back, dh'_t = W_u^T dg2_t and dh_{t-1} = W_p^T dg1_t. Everything that is a sum
over steps is formed once after the loop, as single matrix products or sums:

    dW_p = sum_t dg1_t h_{t-1}^T,   dW_u = sum_t dg2_t h'_t^T,
    dP   = sum_t dg1_t,             dU   = sum_t dg2_t,          dX_t = dg2_t

whereas autograd would build and accumulate two weight-sized gradients at every step. Buffers
are time-major (T, B, ...) so that every per-step slice is contiguous.

Mixed precision (:mod:`davam_plugin.modules.precision`): the caller's ``matmul_dtype(X)`` is
passed in; the weights are cast to it once per call and the operands of every matrix product
are in it, while gates, cell states, hidden states and all gradient accumulators are in float32
(float64 inputs stay float64). The gradients of the weights come back in their own dtype.

On CPU the per-step products run over row blocks of the weight of about
``PRODUCT_BLOCK_BYTES`` each: with B rows of activations a product streams the whole weight
from memory, and MKL does it about 1.7x faster in blocks that stay in cache than in one call
(H = 2048, B = 32, one thread: 29 ms instead of 50 ms per product).
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from davam_plugin.modules.lstm_cell_backward import lstm_gate_grads
from davam_plugin.modules.precision import accumulate_dtype, matmul_dtype, mm

# row blocks of the recurrent weights for the per-step products on CPU
PRODUCT_BLOCK_BYTES = 4 * 2**20


def _row_blocks(w: Tensor) -> List[Tensor]:
    """W (N, K) as row blocks of about PRODUCT_BLOCK_BYTES (whole off the CPU)."""
    if w.device.type != "cpu":
        return [w]
    rows = max(1, PRODUCT_BLOCK_BYTES // (w.size(1) * w.element_size()))
    return list(w.split(rows, dim=0))


def _product(out: Tensor, a: Tensor, blocks: List[Tensor], add: Optional[Tensor] = None) -> Tensor:
    """out = add + a W^T for W given as row blocks; ``a`` and W in the product dtype, ``out``
    and ``add`` in the accumulation dtype."""
    j = 0
    for w in blocks:
        cols = slice(j, j + w.size(0))
        if a.dtype == out.dtype:
            if add is None:
                torch.mm(a, w.t(), out=out[:, cols])
            else:
                torch.addmm(add[:, cols], a, w.t(), out=out[:, cols])
        elif add is None:
            out[:, cols] = torch.mm(a, w.t())
        else:
            torch.add(add[:, cols], torch.mm(a, w.t()), out=out[:, cols])
        j += w.size(0)
    return out


def _cell(gates: Tensor, c_prev: Tensor, act: Tensor, h_out: Tensor) -> Tuple[Tensor, Tensor]:
    """LSTM cell from its gate pre-activations; the activations go to ``act``, h to ``h_out``."""
    H = c_prev.size(1)
    torch.sigmoid(gates, out=act)  # i, f, o (the g block is overwritten next)
    torch.tanh(gates[:, 2 * H : 3 * H], out=act[:, 2 * H : 3 * H])
    i, f, g, o = act.chunk(4, dim=1)
    c = torch.addcmul(f * c_prev, i, g)
    return torch.mul(o, torch.tanh(c), out=h_out), c


def _forward(x, p, u, h0, c0, w_p, w_u, mm_dtype: torch.dtype, save: bool):
    B, T, G = x.shape
    H = G // 4
    acc = accumulate_dtype(mm_dtype)
    xu = x.new_empty(T, B, G, dtype=acc).copy_(x.transpose(0, 1))
    xu += u.to(acc)  # X_t + U, time-major
    p = p.to(acc)
    h, c = h0.to(acc), c0.to(acc)
    blocks_p, blocks_u = _row_blocks(w_p.to(mm_dtype)), _row_blocks(w_u.to(mm_dtype))
    hs = xu.new_empty(T, B, H)
    gates = xu.new_empty(B, G)
    if save:
        hps, cps, cs = xu.new_empty(T, B, H), xu.new_empty(T, B, H), xu.new_empty(T, B, H)
        act_p, act_u = xu.new_empty(T, B, G), xu.new_empty(T, B, G)
    else:
        hp_buf, act_buf = xu.new_empty(B, H), xu.new_empty(B, G)
    for t in range(T):
        _product(gates, h.to(mm_dtype), blocks_p, p)
        hp, cp = _cell(gates, c, act_p[t] if save else act_buf, hps[t] if save else hp_buf)
        _product(gates, hp.to(mm_dtype), blocks_u, xu[t])
        h, c = _cell(gates, cp, act_u[t] if save else act_buf, hs[t])
        if save:
            cps[t] = cp
            cs[t] = c
    saved = (h0.to(acc), c0.to(acc), hs, hps, cps, cs, act_p, act_u) if save else None
    return hs.transpose(0, 1), h, c, saved


class DoubleLSTMRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p, u, h0, c0, w_p, w_u, mm_dtype):
        with torch.autocast(x.device.type, enabled=False):
            hs, h, c, saved = _forward(x, p, u, h0, c0, w_p, w_u, mm_dtype, save=True)
        ctx.save_for_backward(w_p, w_u, *saved)
        ctx.mm_dtype, ctx.device_type = mm_dtype, x.device.type
        ctx.dtypes = (x.dtype, p.dtype, u.dtype, h0.dtype, c0.dtype)
        return hs, h, c

    @staticmethod
    def backward(ctx, d_hs, d_h_last, d_c_last):
        with torch.autocast(ctx.device_type, enabled=False):
            return DoubleLSTMRecurrence._backward(ctx, d_hs, d_h_last, d_c_last)

    @staticmethod
    def _backward(ctx, d_hs, d_h_last, d_c_last):
        w_p, w_u, h0, c0, hs, hps, cps, cs, act_p, act_u = ctx.saved_tensors
        mm_dtype = ctx.mm_dtype
        T, B, H = hps.shape
        dh = d_h_last.to(hs.dtype) if d_h_last is not None else hs.new_zeros(B, H)
        dc = d_c_last.to(hs.dtype) if d_c_last is not None else hs.new_zeros(B, H)
        d_hs_t = d_hs.transpose(0, 1).to(hs.dtype) if d_hs is not None else None  # (T, B, H)
        # W^T as row blocks: dh = dg W = dg (W^T)^T
        blocks_pt = _row_blocks(w_p.to(mm_dtype).t().contiguous())
        blocks_ut = _row_blocks(w_u.to(mm_dtype).t().contiguous())
        d_gp, d_gu = hs.new_empty(T, B, 4 * H), hs.new_empty(T, B, 4 * H)
        for t in reversed(range(T)):
            if d_hs_t is not None:
                dh = dh + d_hs_t[t]
            # update cell: h_t, c_t from (X_t + U + W_u h'_t, c'_t)
            tanh_c = torch.tanh(cs[t])
            dc = dc + torch.ops.aten.tanh_backward(dh * act_u[t, :, 3 * H :], tanh_c)
            dg = lstm_gate_grads(d_gu[t], act_u[t], cps[t], tanh_c, dh, dc)
            dc = dc * act_u[t, :, H : 2 * H]
            dh = _product(hs.new_empty(B, H), dg.to(mm_dtype), blocks_ut)
            # predict cell: h'_t, c'_t from (P + W_p h_{t-1}, c_{t-1})
            tanh_c = torch.tanh(cps[t])
            dc = dc + torch.ops.aten.tanh_backward(dh * act_p[t, :, 3 * H :], tanh_c)
            dg = lstm_gate_grads(d_gp[t], act_p[t], cs[t - 1] if t > 0 else c0, tanh_c, dh, dc)
            dc = dc * act_p[t, :, H : 2 * H]
            dh = _product(hs.new_empty(B, H), dg.to(mm_dtype), blocks_pt)
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]], dim=0)
        d_w_p = mm(d_gp.view(T * B, 4 * H).t(), h_prev.view(T * B, H), mm_dtype)
        d_w_u = mm(d_gu.view(T * B, 4 * H).t(), hps.view(T * B, H), mm_dtype)
        x_dtype, p_dtype, u_dtype, h0_dtype, c0_dtype = ctx.dtypes
        return (
            d_gu.transpose(0, 1).to(x_dtype),
            d_gp.sum(0).to(p_dtype),
            d_gu.sum(0).to(u_dtype),
            dh.to(h0_dtype),
            dc.to(c0_dtype),
            d_w_p.to(w_p.dtype),
            d_w_u.to(w_u.dtype),
            None,
        )


def double_lstm_recurrence(
    x: Tensor, p: Tensor, u: Tensor, h0: Tensor, c0: Tensor, w_p: Tensor, w_u: Tensor
) -> Tuple[Tensor, Tensor, Tensor]:
    """Run the recurrence (see module docstring) over x (B, T, 4H); returns (h_1..h_T as
    (B, T, H), h_T, c_T), in float32 under autocast (float64 for float64 inputs)."""
    mm_dtype = matmul_dtype(x)
    acc = accumulate_dtype(mm_dtype)
    if x.size(1) == 0:
        return x.new_zeros(x.size(0), 0, h0.size(1), dtype=acc), h0.to(acc), c0.to(acc)
    tensors = (x, p, u, h0, c0, w_p, w_u)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return DoubleLSTMRecurrence.apply(x, p, u, h0, c0, w_p, w_u, mm_dtype)
    with torch.autocast(x.device.type, enabled=False):
        hs, h, c, _ = _forward(x, p, u, h0, c0, w_p, w_u, mm_dtype, save=False)
    return hs, h, c
