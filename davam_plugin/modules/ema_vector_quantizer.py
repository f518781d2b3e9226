"""Vector quantizer with an exponential-moving-average (EMA) k-means codebook.

For every real (non-pad) input vector h_t the quantizer picks the nearest code

    z_t = argmin_k ||h_t - e_k||_2^2,            e_{z_t} = codebook[z_t]

and returns the straight-through estimate ``e_{z_t} + h_t - sg(h_t)``: the forward value is
exactly the code, the gradient flows to ``h_t`` unchanged (van den Oord et al., 2017).

The codebook is not trained by gradients. During training each forward pass updates it
with exponential moving averages of the k-means statistics over real tokens only:

    n_k <- gamma * n_k + (1 - gamma) * sum_t 1[z_t = k]              (cluster sizes)
    s_k <- gamma * s_k + (1 - gamma) * sum_t 1[z_t = k] h_t          (cluster sums)
    n~_k = (n_k + eps) / (sum_j n_j + K eps) * sum_j n_j              (Laplace smoothing)
    e_k  = s_k / n~_k

with decay ``gamma`` and smoothing ``eps``. As in the authors' code the statistics start as
n_k = 0 and s_k = e_k (random N(0, 1) codes); codes unused at the first update are thereby
pushed far away and return gradually as gamma^t shrinks them. The optional k-means
initialisation starts from consistent statistics instead (s_k = n_k e_k). When ``torch.distributed`` is initialised the
per-batch counts and sums are all-reduced (summed over workers) before the update, so every
worker applies the same update and the codebooks stay identical. A worker whose batch must
not contribute (fairseq's dummy batch for a worker out of data) calls the forward with
``contribute=False``: it adds zeros but still joins the collective.

The quantizer also returns the *unweighted* commitment term

    commitment = sum_t sum_d (h_t - sg(e_{z_t}))_d^2      (sum over real tokens and dims)

so that a criterion can apply its own (annealed) weight beta.

All codebook statistics are kept in float32, also when the surrounding model is cast to
half precision (``.half()`` casts parameters and buffers; :meth:`_apply` undoes the cast
for this module's buffers while keeping device moves). Under ``torch.autocast`` the
quantizer runs with autocast off: distances, code choices, statistics and the commitment
are float32, and the straight-through output is float32 (exactly the code), whatever the
dtype autocast gave the inputs.
"""

from typing import Dict, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from davam_plugin.metrics import code_perplexity
from davam_plugin.modules.precision import autocast_dtype


def _distributed_world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class EMAVectorQuantizer(nn.Module):
    """Masked EMA vector quantizer (see module docstring for the equations).

    Args:
        num_codes: K, the number of codebook entries.
        code_dim: D, the dimension of each code.
        decay: EMA decay gamma of the k-means statistics.
        eps: Laplace smoothing constant of the cluster sizes.
        kmeans_init: initialise the codebook with k-means on the first training batch
            (instead of the N(0, 1) random initialisation).
        dead_code_threshold: if > 0, after each update every code whose EMA cluster size
            is below this value is restarted at a randomly chosen input vector of the
            current batch (the choice of the lowest-ranked worker whose batch contributes is
            broadcast to all workers; with none, nothing changes). 0 disables it.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        decay: float = 0.99,
        eps: float = 1e-5,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 0.0,
    ):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"codebook decay must be in [0, 1), got {decay}")
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.decay = decay
        self.eps = eps
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        codebook = torch.randn(num_codes, code_dim)
        self.register_buffer("codebook", codebook)
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("cluster_sum", codebook.clone())
        self.register_buffer("initialized", torch.tensor(0 if kmeans_init else 1, dtype=torch.long))
        # Set to False (e.g. by the task, for fairseq's dummy batches) so that a training
        # forward adds nothing to the EMA statistics while still joining the all-reduce.
        self.contribute_statistics = True

    # ------------------------------------------------------------------ precision
    def _apply(self, fn, *args, **kwargs):
        """Follow device moves but keep the float32 statistics under ``.half()``."""
        saved = {k: v for k, v in self._buffers.items() if v is not None and v.is_floating_point()}
        super()._apply(fn, *args, **kwargs)
        for name, old in saved.items():
            new = self._buffers[name]
            if new.dtype != torch.float32:
                # re-cast from the untouched float32 original: no precision is lost
                self._buffers[name] = old.to(device=new.device, dtype=torch.float32)
        return self

    # ------------------------------------------------------------------ lookups
    def nearest_codes(self, flat: Tensor) -> Tensor:
        """Index of the nearest code (L2) for each row of ``flat`` (N, D)."""
        flat = flat.float()
        distances = (
            flat.pow(2).sum(1, keepdim=True)
            - 2.0 * flat @ self.codebook.t()
            + self.codebook.pow(2).sum(1)[None, :]
        )
        return distances.argmin(dim=1)

    def embed_codes(self, codes: Tensor) -> Tensor:
        """Code vectors (float32) for integer codes of any shape (negative codes give 0)."""
        safe = codes.clamp_min(0)
        out = F.embedding(safe, self.codebook)
        return out.masked_fill((codes < 0).unsqueeze(-1), 0.0)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        inputs: Tensor,
        padding_mask: Optional[Tensor] = None,
        contribute: Optional[bool] = None,
    ) -> Dict[str, Tensor]:
        """Quantize ``inputs`` (B, T, D); ``padding_mask`` (B, T) is True at pads.

        ``contribute`` (default: ``self.contribute_statistics``) says whether this batch's
        statistics enter the EMA update (training mode only).

        Returns a dict with
            quantized:  (B, T, D) straight-through codes in the dtype of ``inputs`` (float32 under autocast),
                        zero at pad positions;
            codes:      (B, T) long code indices, -1 at pad positions;
            commitment: scalar float32, sum over real tokens of ||h - sg(e)||^2;
            code_counts:(K,) float32 histogram of the codes of real tokens in this batch;
            code_perplexity, code_usage: batch-level scalars (usage = number of distinct codes).
        """
        if contribute is None:
            contribute = self.contribute_statistics
        out_dtype = torch.float32 if autocast_dtype(inputs.device.type) is not None else inputs.dtype
        with torch.autocast(inputs.device.type, enabled=False):
            return self._quantize(inputs, padding_mask, contribute, out_dtype)

    def _quantize(self, inputs: Tensor, padding_mask: Optional[Tensor], contribute: bool, out_dtype) -> Dict[str, Tensor]:
        B, T, D = inputs.shape
        if D != self.code_dim:
            raise ValueError(f"expected inputs of dimension {self.code_dim}, got {D}")
        if padding_mask is None:
            padding_mask = inputs.new_zeros(B, T, dtype=torch.bool)
        real = ~padding_mask
        flat = inputs.reshape(-1, D)
        real_flat = real.reshape(-1)
        h_real = flat[real_flat].float()

        if self.training and self.kmeans_init and int(self.initialized) == 0:
            self._kmeans_initialise(h_real.detach(), contribute)

        codes_real = self.nearest_codes(h_real.detach())
        counts = torch.bincount(codes_real, minlength=self.num_codes).float()

        # the decoder and the commitment use the codebook as it was before this batch's
        # EMA update (as in the authors' code); the update only affects later batches.
        e_real = F.embedding(codes_real, self.codebook)
        if self.training:
            self._ema_update(h_real.detach(), codes_real, counts, contribute)

        commitment = (h_real - e_real).pow(2).sum()
        # straight-through: the forward value is exactly e (h - sg(h) == 0), d/dh = identity
        h_in = flat[real_flat].to(out_dtype)
        st_real = e_real.to(out_dtype) + (h_in - h_in.detach())

        quantized = flat.new_zeros(B * T, D, dtype=out_dtype)
        quantized = quantized.index_put((real_flat.nonzero(as_tuple=True)[0],), st_real)
        codes = torch.full((B * T,), -1, dtype=torch.long, device=inputs.device)
        codes[real_flat] = codes_real
        return {
            "quantized": quantized.view(B, T, D),
            "codes": codes.view(B, T),
            "commitment": commitment,
            "code_counts": counts,
            "code_perplexity": code_perplexity(counts).float(),
            "code_usage": (counts > 0).sum().float(),
        }

    # ------------------------------------------------------------------ training updates
    @torch.no_grad()
    def _ema_update(self, h: Tensor, codes: Tensor, counts: Tensor, contribute: bool) -> None:
        K = self.num_codes
        sums = torch.zeros(K, self.code_dim, device=h.device, dtype=torch.float32)
        sums.index_add_(0, codes, h)
        stats = torch.cat([counts.unsqueeze(1), sums], dim=1)  # (K, 1 + D): one collective
        if not contribute:
            stats.zero_()
        if _distributed_world_size() > 1:
            dist.all_reduce(stats)
        batch_counts, batch_sums = stats[:, 0], stats[:, 1:]
        if float(batch_counts.sum()) <= 0:
            return  # nobody contributed (a lone dummy batch): leave the codebook as it is
        g = self.decay
        self.cluster_size.mul_(g).add_(batch_counts, alpha=1 - g)
        self.cluster_sum.mul_(g).add_(batch_sums, alpha=1 - g)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + K * self.eps) * n
        self.codebook.copy_(self.cluster_sum / smoothed.unsqueeze(1))
        if self.dead_code_threshold > 0:
            self._restart_dead_codes(h, contribute)

    @torch.no_grad()
    def _source_rank(self, has_data: bool) -> Optional[int]:
        """The lowest rank whose batch has data (one process: 0), None if no worker's has.

        A worker on fairseq's dummy batch (``contribute=False``) has none: taking rows from it
        would restart codes at its zero placeholders. Every worker joins the collective."""
        world = _distributed_world_size()
        if world == 1:
            return 0 if has_data else None
        flag = torch.tensor([dist.get_rank() if has_data else world], dtype=torch.long, device=self.codebook.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        src = int(flag.item())
        return src if src < world else None

    @torch.no_grad()
    def _random_rows(self, h: Tensor, n: int, contribute: bool) -> Optional[Tensor]:
        """``n`` rows sampled from ``h`` (with replacement, small noise), identical on all workers:
        those of the lowest-ranked worker whose batch contributes; None if no worker's does."""
        has_data = contribute and h.size(0) > 0
        src = self._source_rank(has_data)
        if src is None:
            return None
        out = torch.zeros(n, self.code_dim, device=self.codebook.device)
        if has_data:
            idx = torch.randint(0, h.size(0), (n,), device=h.device)
            out = h[idx] + 0.01 * torch.randn(n, self.code_dim, device=h.device)
        if _distributed_world_size() > 1:
            dist.broadcast(out, src=src)
        return out

    @torch.no_grad()
    def _restart_dead_codes(self, h: Tensor, contribute: bool) -> None:
        dead = self.cluster_size < self.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        new = self._random_rows(h, n_dead, contribute)
        if new is None:
            return  # no worker has data to restart codes at
        self.codebook[dead] = new
        self.cluster_sum[dead] = new * self.dead_code_threshold
        self.cluster_size[dead] = self.dead_code_threshold

    @torch.no_grad()
    def _kmeans_initialise(self, h: Tensor, contribute: bool) -> None:
        """k-means++ seeding then Lloyd iterations on this batch; the result of the lowest-ranked
        worker whose batch contributes is broadcast. With no such worker nothing changes (the
        initialisation waits for the next batch)."""
        has_data = contribute and h.size(0) > 0
        src = self._source_rank(has_data)
        if src is None:
            return
        centers = torch.zeros(self.num_codes, self.code_dim, device=self.codebook.device)
        if has_data:
            centers[0] = h[torch.randint(0, h.size(0), (1,)).item()]
            d2 = ((h - centers[0]) ** 2).sum(1)
            for k in range(1, self.num_codes):
                if float(d2.sum()) > 0:
                    idx = torch.multinomial(d2, 1).item()
                else:  # fewer distinct vectors than codes: duplicate with a little noise
                    idx = torch.randint(0, h.size(0), (1,)).item()
                centers[k] = h[idx] + (0.01 * torch.randn(self.code_dim, device=h.device) if float(d2[idx]) == 0 else 0)
                d2 = torch.minimum(d2, ((h - centers[k]) ** 2).sum(1))
            for _ in range(self.kmeans_iters):
                assign = torch.cdist(h, centers).argmin(1)
                counts = torch.bincount(assign, minlength=self.num_codes).float()
                sums = torch.zeros_like(centers).index_add_(0, assign, h)
                filled = counts > 0
                centers[filled] = sums[filled] / counts[filled, None]
        counts = torch.ones(self.num_codes, device=centers.device)
        if has_data:
            counts = torch.bincount(torch.cdist(h, centers).argmin(1), minlength=self.num_codes).float()
        stats = torch.cat([centers, counts.clamp_min(1.0).unsqueeze(1)], dim=1)
        if _distributed_world_size() > 1:
            dist.broadcast(stats, src=src)
        centers, counts = stats[:, :-1], stats[:, -1]
        # consistent EMA statistics: cluster sums = centre * size, so e_k stays at its centre
        self.codebook.copy_(centers)
        self.cluster_size.copy_(counts)
        self.cluster_sum.copy_(centers * counts.unsqueeze(1))
        self.initialized.fill_(1)
