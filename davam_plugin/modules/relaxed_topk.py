"""Stochastic top-K word dropout for AWD: hard mask forward, capped-simplex relaxation backward.

AWD's adversary gives every decoder input t of sentence b a score s_bt and drops the K_b
lowest-scored inputs (Paulus et al., 2020, "stochastic softmax tricks"). The hard selection
has no useful gradient, so the backward pass uses a relaxation of it, the Euclidean
projection onto the capped simplex (the relaxation the authors' code uses):

    C(k)  = {p in [0, 1]^n : sum_i p_i = k}
    P(y)  = argmin_{p in C(k)} ||p - y||^2  =  clamp(y - tau, 0, 1)   with tau: sum_i p_i = k

(KKT conditions of the projection; sum_i clamp(y_i - tau, 0, 1) is continuous and
non-increasing in tau, so tau is found by bisection and then solved exactly on its linear
piece). With the free set F = {i : 0 < p_i < 1} and U = {i : p_i = 1},

    tau = (sum_{i in F} y_i - (k - |U|)) / |F|
    dp_i/dy_j = delta_ij - 1/|F|    (i, j in F),   0 otherwise;    dp_i/dk = 1/|F|  (i in F)

i.e. the vector-Jacobian product passes the incoming gradient to the free coordinates
minus its mean over the free set of the row; clipped coordinates get none. Rows are
independent; only valid (non-pad) positions take part, pads get p = 0 and no gradient.

Word dropout (:func:`drop_lowest_k`) relaxes the *drop* indicator with temperature tau_T,

    drop~ = P_{C(K)}(-s / tau_T),         keep~ = 1 - drop~,
    keep  = keep_hard + keep~ - sg(keep~)     (straight-through: forward value exactly hard)

where keep_hard drops exactly the K lowest-scored valid inputs. Because P is order-preserving,
keep_hard is also the top-(n-K) selection of keep~; and since 1 - P_{C(K)}(-y) = P_{C(n-K)}(y)
this is the same relaxation as the authors' "project the scores onto C(n - K) to get a soft
keep mask" (their temperature is 1). The gradient is non-zero only for rows whose free set is
non-empty, i.e. when the scores near the cut-off are within about tau_T of each other; a larger
tau_T smooths more.
"""

from typing import Optional

import torch
from torch import Tensor

# halvings of the bracket [min y - 1, max y]; 64 reach the float64 resolution for any sane
# score range; the exact solve on the final linear piece makes the result exact.
_BISECTION_STEPS = 64


def _valid_mask(y: Tensor, mask: Optional[Tensor]) -> Tensor:
    if mask is None:
        return torch.ones_like(y, dtype=torch.bool)
    if mask.shape != y.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != scores shape {tuple(y.shape)}")
    return mask.to(device=y.device, dtype=torch.bool)


def _project(y: Tensor, k: Tensor, mask: Tensor) -> Tensor:
    """Forward of the projection (no autograd): y (B, T), k (B,) in y's dtype, mask (B, T)."""
    fill_lo = torch.finfo(y.dtype).max
    y_min = y.masked_fill(~mask, fill_lo).amin(dim=1)
    y_max = y.masked_fill(~mask, -fill_lo).amax(dim=1)
    empty = ~mask.any(dim=1)
    lo = torch.where(empty, torch.zeros_like(y_min), y_min - 1.0)  # f(lo) = n >= k
    hi = torch.where(empty, torch.zeros_like(y_max), y_max)  # f(hi) = 0 <= k
    zero = torch.zeros((), dtype=y.dtype, device=y.device)

    def total(t: Tensor) -> Tensor:
        return torch.where(mask, (y - t.unsqueeze(1)).clamp(0.0, 1.0), zero).sum(dim=1)

    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = total(mid) > k  # invariant: f(lo) >= k >= f(hi)
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)

    # exact tau on the linear piece that contains the bracket
    mid = 0.5 * (lo + hi)
    shifted = y - mid.unsqueeze(1)
    free = mask & (shifted > 0) & (shifted < 1)
    upper = mask & (shifted >= 1)
    n_free = free.sum(dim=1)
    exact = (torch.where(free, y, zero).sum(dim=1) - (k - upper.sum(dim=1).to(y.dtype))) / n_free.clamp_min(1)
    tau = torch.where(n_free > 0, torch.minimum(torch.maximum(exact, lo), hi), mid)
    return torch.where(mask, (y - tau.unsqueeze(1)).clamp(0.0, 1.0), zero)


class CappedSimplexProjection(torch.autograd.Function):
    """Row-wise projection onto {p in [0,1]^n : sum p = k} with its exact Jacobian backward."""

    @staticmethod
    def forward(ctx, y: Tensor, k: Tensor, mask: Tensor) -> Tensor:
        p = _project(y, k.to(y.dtype), mask)
        ctx.save_for_backward(p, mask)
        return p

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        p, mask = ctx.saved_tensors
        free = mask & (p > 0) & (p < 1)
        g = torch.where(free, grad_output, torch.zeros_like(grad_output))
        mean_free = g.sum(dim=1) / free.sum(dim=1).clamp_min(1).to(g.dtype)
        grad_y = torch.where(free, g - mean_free.unsqueeze(1), torch.zeros_like(g))
        grad_k = mean_free if ctx.needs_input_grad[1] else None
        return grad_y, grad_k, None


def capped_simplex_projection(y: Tensor, k: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Euclidean projection of every row of ``y`` (B, T) onto {p in [0,1]^n_b : sum p = k_b}.

    ``k`` (B,) may be integer or float (a float ``k`` that requires grad receives dp/dk);
    ``mask`` (B, T) bool marks the valid positions (True = real input, False = pad; default
    all valid): the projection is taken over the n_b valid positions of row b only and pads
    get 0. Requires 0 <= k_b <= n_b. Differentiable with the exact Jacobian (module
    docstring). Half-precision inputs are computed in float32 and cast back.
    """
    if y.dim() != 2:
        raise ValueError(f"expected y of shape (B, T), got {tuple(y.shape)}")
    mask = _valid_mask(y, mask)
    k = torch.as_tensor(k, device=y.device)
    if k.shape != (y.size(0),):
        raise ValueError(f"expected k of shape ({y.size(0)},), got {tuple(k.shape)}")
    n = mask.sum(dim=1)
    if bool(((k < 0) | (k > n)).any()):
        raise ValueError("every k must lie in [0, number of valid positions of its row]")
    work = y.float() if y.dtype in (torch.float16, torch.bfloat16) else y
    if not k.is_floating_point():
        k = k.to(work.dtype)
    return CappedSimplexProjection.apply(work, k, mask).to(y.dtype)


def drop_lowest_k(scores: Tensor, k: Tensor, mask: Optional[Tensor] = None, tau: float = 1.0) -> Tensor:
    """Straight-through top-K word-dropout KEEP mask (B, T) in ``scores``' dtype.

    Forward: exactly 0/1. In row b the ``k[b]`` lowest-scored valid positions get 0 (dropped),
    the other valid positions 1; pads (``mask`` False) get 0 as well and never count towards
    k (the caller multiplies embeddings by the mask; pad embeddings are irrelevant anyway).
    Ties are broken towards dropping the earlier position.

    Backward: the gradient of the relaxed keep mask 1 - P_{C(k)}(-scores / tau), the
    Euclidean projection onto the capped simplex (the authors' relaxation), with temperature
    ``tau`` > 0 (the authors' code corresponds to tau = 1). See the module docstring.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    mask = _valid_mask(scores, mask)
    k = torch.as_tensor(k, device=scores.device)
    relaxed_drop = capped_simplex_projection(-scores / tau, k, mask)
    relaxed_keep = 1.0 - relaxed_drop

    with torch.no_grad():
        ranked = scores.detach().masked_fill(~mask, float("inf"))
        order = torch.sort(ranked, dim=1, stable=True).indices
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(order.size(1), device=order.device).expand_as(order)
        )
        keep_hard = (mask & (rank >= k.to(rank.dtype).unsqueeze(1))).to(scores.dtype)

    return keep_hard + (relaxed_keep - relaxed_keep.detach())


def k_per_sentence(lengths: Tensor, rate: float) -> Tensor:
    """Number of inputs to drop per sentence: K = floor(R * T + 0.5) (round half up).

    ``lengths`` (B,) is T, the number of decoder inputs of each sentence that may be dropped;
    the caller decides what counts (e.g. whether the BOS/EOS input is included). Half-way
    cases round up (R=0.5, T=3 -> 2), unlike ``torch.round`` (half to even) used in the
    authors' code; R * T is computed in float64 and values within 1e-9 of a half are treated
    as exact halves so that e.g. 0.3 * 5 rounds to 2. Returns a LongTensor, 0 <= K <= T.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"drop rate must be in [0, 1], got {rate}")
    lengths = torch.as_tensor(lengths)
    k = torch.floor(lengths.to(torch.float64) * float(rate) + 0.5 + 1e-9).long()
    return torch.minimum(k, lengths.long())
