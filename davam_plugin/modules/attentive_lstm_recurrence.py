"""LSTM recurrence with additive attention and input feeding, with a hand-written backward.

For i = 1..L, given per-step input pre-activations X_i (B, 4H) (the input-embedding and
constant parts of the LSTM gates, biases included), attention keys K = W_m m + b (B, T, A),
the memory m (B, T, H), an additive mask (B, T) (0 or -inf) and weights
W = [W_q; W_hh] (A + 4H, H), W_c (4H, H), v (A):

    [q_i; r_i]    = W h_{i-1}
    a_i           = softmax_t(v^T tanh(K_t + q_i) + mask_t)
    ctx_i         = sum_t a_{i,t} m_t
    i, f, g, o    = sigma, sigma, tanh, sigma of (X_i + r_i + W_c ctx_i)
    c_i           = f * c_{i-1} + i * g,   h_i = o * tanh(c_i)

Outputs: h_1..h_L, ctx_1..ctx_L, a_1..a_L (not differentiable), h_L, c_L.

The backward (back-propagation through time written out) keeps only what is inherently
sequential inside the reverse loop - the gate derivatives, the attention-softmax derivative
and the product with W that carries the gradient to h_{i-1}. Gradients that are sums over
steps are formed once after the loop as single matrix products:

    dW = sum_i dz_i h_{i-1}^T,   dW_c = sum_i dgates_i ctx_i^T,   dm = sum_i a_i dctx_i^T

whereas autograd would build and accumulate weight- and memory-sized gradients at every
step. The attention non-linearity is evaluated as tanh(x) = 2 sigma(2x) - 1, whose constant
part drops out of the softmax: scores are (2v).sigma(2(K + q_i)) (sigmoid is several times
faster than tanh on CPU). sigma(2(K + q_i)) is kept from the forward for the backward when
all steps together take at most STORE_ATTENTION_ACTIVATIONS_MAX elements, and recomputed
otherwise.

Precision (:mod:`davam_plugin.modules.precision`): under ``torch.autocast`` the per-step
products h_{i-1} W^T and ctx_i W_c^T, the backward's dz W and dgates W_c, and the weight
gradients after the loop run in the autocast dtype (bfloat16), with the weights cast once
per call. The inputs are taken to float32 on entry: the gates, the cell state c, the
attention scores, softmax and context, and all gradient accumulators stay float32. Without
autocast everything runs in the inputs' dtype (float64 in the tests); 16-bit inputs compute
in float32 the same way. Gradients are returned in the dtypes of the inputs.
"""

from typing import Tuple

import torch
from torch import Tensor

from davam_plugin.modules.bahdanau_attention import attention_softmax
from davam_plugin.modules.lstm_cell_backward import lstm_gate_grads
from davam_plugin.modules.precision import accumulate_dtype, matmul_dtype


# keep sigma(2(K + q_i)) of all steps for the backward when it takes at most this many elements
# (256 MiB in float32); longer batches recompute it in the backward instead
STORE_ATTENTION_ACTIVATIONS_MAX = 64 * 2**20


def _forward(x, h, c, keys, memory, mask_bias, w, w_c, v, save: bool):
    """Buffers are time-major (L, B, ...) so that every per-step slice is contiguous; the
    outputs are returned as (B, L, ...) views of them. ``w``, ``w_c`` are in the matmul dtype,
    everything else in the accumulation dtype (module docstring)."""
    mixed = w.dtype != x.dtype
    B, L, _ = x.shape
    H = h.size(1)
    T, A = keys.shape[1], keys.shape[2]
    x_t = x.transpose(0, 1).contiguous()
    hs = x.new_empty(L, B, H)
    ctxs = x.new_empty(L, B, H)
    attn = x.new_empty(L, B, T)
    store_u = save and B * L * T * A <= STORE_ATTENTION_ACTIVATIONS_MAX
    us = x.new_empty(L, B, T, A) if store_u else None
    u_buf = x.new_empty(B, T, A)
    keys2, v2 = 2 * keys, 2 * v
    mask_flat = mask_bias.reshape(-1)
    acts = x.new_empty(L if save else 1, B, 4 * H)
    if save:
        qs = x.new_empty(L, B, A)
        cs = x.new_empty(L, B, H)
    for i in range(L):
        hw = torch.mm(h.to(w.dtype), w.t()).to(x.dtype) if mixed else torch.mm(h, w.t())
        q, r = hw.split([A, 4 * H], dim=1)
        u = us[i] if store_u else u_buf
        torch.sigmoid(torch.add(keys2, q.unsqueeze(1), alpha=2, out=u_buf), out=u)  # sigma(2(K + q))
        a = attention_softmax(torch.addmv(mask_flat, u.view(B * T, A), v2).view(B, T))
        ctx = torch.bmm(a.unsqueeze(1), memory, out=ctxs[i].unsqueeze(1)).squeeze(1)
        if mixed:
            gates = (x_t[i] + r).add_(torch.mm(ctx.to(w_c.dtype), w_c.t()))
        else:
            gates = torch.addmm(x_t[i] + r, ctx, w_c.t())
        act = acts[i if save else 0]
        torch.sigmoid(gates, out=act)  # i, f, o (the g block is overwritten next)
        act[:, 2 * H : 3 * H] = torch.tanh(gates[:, 2 * H : 3 * H])
        gi, gf, gg, go = act.chunk(4, dim=1)
        c = torch.addcmul(gf * c, gi, gg)
        h = torch.mul(go, torch.tanh(c), out=hs[i])
        attn[i] = a
        if save:
            qs[i] = q
            cs[i] = c
    saved = (qs, acts, cs, us) if save else None
    return hs.transpose(0, 1), ctxs.transpose(0, 1), attn.transpose(0, 1), h, c, saved


def _cast(x, h0, c0, keys, memory, mask_bias, w, w_c, v, mm_dtype):
    """Weights to the matmul dtype, everything else to the accumulation dtype."""
    mm_dtype = mm_dtype or x.dtype
    acc = accumulate_dtype(mm_dtype)
    others = [t.to(acc) for t in (x, h0, c0, keys, memory, mask_bias, v)]
    x, h0, c0, keys, memory, mask_bias, v = others
    return x, h0, c0, keys, memory, mask_bias, w.to(mm_dtype), w_c.to(mm_dtype), v


class AttentiveLSTMRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, c0, keys, memory, mask_bias, w, w_c, v, mm_dtype=None):
        ctx.input_dtypes = [t.dtype for t in (x, h0, c0, keys, memory, mask_bias, w, w_c, v)]
        x, h0, c0, keys, memory, mask_bias, w, w_c, v = _cast(x, h0, c0, keys, memory, mask_bias, w, w_c, v, mm_dtype)
        hs, ctxs, attn, h, c, (qs, acts, cs, us) = _forward(
            x, h0, c0, keys, memory, mask_bias, w, w_c, v, save=True
        )
        ctx.save_for_backward(h0, c0, keys, memory, w, w_c, v, hs, ctxs, attn, qs, acts, cs, us)
        ctx.mark_non_differentiable(attn)
        return hs, ctxs, attn, h, c

    @staticmethod
    def backward(ctx, d_hs, d_ctxs, _d_attn, d_h_last, d_c_last):
        h0, c0, keys, memory, w, w_c, v, hs, ctxs, attn, qs, acts, cs, us = ctx.saved_tensors
        # hs, ctxs, attn are (B, L, .) views of time-major buffers; qs, acts, cs, us time-major
        B, L, H = hs.shape
        A = keys.size(2)
        mixed = w.dtype != hs.dtype
        dh = d_h_last.clone() if d_h_last is not None else hs.new_zeros(B, H)
        dc = d_c_last.clone() if d_c_last is not None else hs.new_zeros(B, H)
        d_x = hs.new_empty(L, B, 4 * H)
        d_z = hs.new_empty(L, B, A + 4 * H)
        d_ctx_total = hs.new_empty(L, B, H)
        d_keys = torch.zeros_like(keys)
        d_v = torch.zeros_like(v)
        u_buf = keys.new_empty(keys.shape)
        keys2, v4 = 2 * keys, 4 * v
        attn_t = attn.transpose(0, 1)  # (L, B, T), contiguous
        for i in reversed(range(L)):
            if d_hs is not None:
                dh = dh + d_hs[:, i]
            gf, go = acts[i, :, H : 2 * H], acts[i, :, 3 * H :]
            tc = torch.tanh(cs[i])
            dc = dc + torch.ops.aten.tanh_backward(dh * go, tc)
            dg = lstm_gate_grads(d_x[i], acts[i], cs[i - 1] if i > 0 else c0, tc, dh, dc)
            dc = dc * gf
            # ctx feeds the output (d_ctxs) and the gates through W_c
            if mixed:
                d_ctx = d_ctx_total[i]
                d_ctx.copy_(torch.mm(dg.to(w_c.dtype), w_c))
            else:
                d_ctx = torch.mm(dg, w_c, out=d_ctx_total[i])
            if d_ctxs is not None:
                d_ctx += d_ctxs[:, i]
            da = (memory * d_ctx.unsqueeze(1)).sum(2)  # 5x faster than a K=1 bmm here
            a = attn_t[i]
            ds = a * (da - (a * da).sum(1, keepdim=True))
            if us is not None:
                u = us[i]
            else:
                u = torch.sigmoid(torch.add(keys2, qs[i].unsqueeze(1), alpha=2, out=u_buf), out=u_buf)
            # scores = 2 v.sigma(2(K + q)) - sum(v): dv = sum ds (2 sigma - 1) = 2 sum ds sigma
            # because every row of ds sums to 0; d(K + q) = 4 v ds sigma (1 - sigma)
            d_v += torch.mv(u.reshape(-1, A).t(), ds.reshape(-1)).mul_(2)
            d_pre = torch.ops.aten.sigmoid_backward(ds.unsqueeze(2) * v4, u)
            d_keys += d_pre
            dz = d_z[i]
            torch.sum(d_pre, dim=1, out=dz[:, :A])
            dz[:, A:] = dg
            dh = torch.mm(dz.to(w.dtype), w).to(hs.dtype) if mixed else torch.mm(dz, w)
        hs_t = hs.transpose(0, 1)  # (L, B, H), contiguous
        h_prev = torch.cat([h0.unsqueeze(0), hs_t[:-1]], dim=0)
        mm = w.dtype  # the weight gradients are sums over all steps: one product each
        d_w = torch.mm(d_z.reshape(L * B, -1).t().to(mm), h_prev.reshape(L * B, H).to(mm))
        d_w_c = torch.mm(d_x.reshape(L * B, -1).t().to(mm), ctxs.transpose(0, 1).reshape(L * B, H).to(mm))
        d_memory = torch.bmm(attn.transpose(1, 2), d_ctx_total.transpose(0, 1))
        grads = (d_x.transpose(0, 1), dh, dc, d_keys, d_memory, None, d_w, d_w_c, d_v)
        return tuple(None if g is None else g.to(dt) for g, dt in zip(grads, ctx.input_dtypes, strict=True)) + (None,)


def attentive_lstm_recurrence(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    keys: Tensor,
    memory: Tensor,
    mask_bias: Tensor,
    w: Tensor,
    w_c: Tensor,
    v: Tensor,
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Run the recurrence (see module docstring); returns (hs, ctxs, attn, h_L, c_L), in the
    accumulation dtype (float32 under autocast or for 16-bit inputs)."""
    tensors = (x, h0, c0, keys, memory, w, w_c, v)
    mm_dtype = matmul_dtype(x)
    with torch.autocast(x.device.type, enabled=False):
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return AttentiveLSTMRecurrence.apply(x, h0, c0, keys, memory, mask_bias, w, w_c, v, mm_dtype)
        args = _cast(x, h0, c0, keys, memory, mask_bias, w, w_c, v, mm_dtype)
        hs, ctxs, attn, h, c, _ = _forward(*args, save=False)
        return hs, ctxs, attn, h, c
