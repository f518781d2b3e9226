"""Auto-regressive Gaussian prior over a continuous latent sequence (GAVAM's PixelCNN prior).

Fang et al. (DAVAM paper, section III.A) replace DAVAM's codes by Gaussian latents
q(z_t | x) = N(mu_t, diag sigma_t^2), t = 1..T, and train jointly with them an
auto-regressive prior

    p(z_1..z_T) = prod_t p(z_t | z_<t),      p(z_t | z_<t) = N(mu^_t, diag sigma^_t^2)

whose parameters come from a 1-D gated PixelCNN over the *sampled* latents (the same
network as DAVAM's stage-two prior, :mod:`davam_plugin.models.davam_prior`, with a linear
input projection instead of a code embedding and a 2D-channel Gaussian head):

    x_t            = W_in z_t + b_in                       (Linear(D -> E); 0 at padding)
    layer 0        : strictly causal gated conv (reads x_{<t}), no identity residual
    layers 1..L-1  : causal gated conv (reads layer inputs <= t) + identity residual
    [mu^_t; log sigma^_t^2] = Conv1x1(ReLU(Conv1x1(x^L_t)))   (E -> head -> 2D)

(:class:`davam_plugin.modules.gated_causal_conv.GatedCausalConv1d`), so (mu^_t, sigma^_t)
depend on z_{<t} only; at t = 1 the network reads zero padding (a learned p(z_1)).

The negative ELBO (paper Eq. 4) is estimated with one reparameterized sample
z = mu + sigma * eps, and its KL term is analytic given that sample's prefix (Eq. 5):

    sum_t KL(q(z_t | x) || p(z_t | z_<t))
      = sum_t sum_d 1/2 ( log(sigma^_td^2 / sigma_td^2) - 1
                          + (sigma_td^2 + (mu^_td - mu_td)^2) / sigma^_td^2 )

(:func:`davam_plugin.metrics.gaussian_kl_diag`). Gradients reach the posterior both through
(mu_t, sigma_t) and through the sampled prefix z_<t the prior reads.

Sampling (:meth:`GaussianConvPrior.sample`) draws z_t ~ N(mu^_t, temperature^2 sigma^_t^2)
position by position with the layers' step caches (one k-tap product per layer and position).
"""

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from davam_plugin.modules.latent_bottleneck import padding_mask_from_lengths
from davam_plugin.modules.gated_causal_conv import GatedCausalConv1d, pointwise


class GaussianConvPrior(nn.Module):
    """p(z_t | z_<t) = N(mu^_t, diag exp(logvar^_t)) from a gated PixelCNN (module docstring).

    Args:
        latent_dim: D, the dimension of each z_t.
        embed_dim: E, the width of the input projection and the convolutions.
        layers: number of gated causal convolutions (>= 1; the first is strictly causal).
        kernel_size: convolution width.
        head_dim: hidden width of the 1x1 output head.
    """

    def __init__(self, latent_dim: int, embed_dim: int, layers: int, kernel_size: int, head_dim: int):
        super().__init__()
        if min(latent_dim, embed_dim, layers, kernel_size, head_dim) < 1:
            raise ValueError("GaussianConvPrior: every size must be >= 1")
        self.latent_dim = latent_dim
        self.input_proj = nn.Linear(latent_dim, embed_dim)
        self.layers = nn.ModuleList(
            [GatedCausalConv1d(embed_dim, kernel_size, strictly_causal=True, residual=False)]
            + [GatedCausalConv1d(embed_dim, kernel_size) for _ in range(layers - 1)]
        )
        self.head_hidden = nn.Conv1d(embed_dim, head_dim, 1)
        self.head_out = nn.Conv1d(head_dim, 2 * latent_dim, 1)

    def forward(self, z: Tensor, padding_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """z (B, T, D) right-padded (``padding_mask`` (B, T) True at pads) ->
        (mu^, logvar^), each (B, T, D); row t depends on z[:, :t] only."""
        x = self.input_proj(z)
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        for layer in self.layers:
            x = layer.forward_time_major(x)
        return self._head(x)

    def _head(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Time-major features (..., E) -> (mu^, logvar^), each (..., D)."""
        params = pointwise(self.head_out, F.relu(pointwise(self.head_hidden, x)))
        return params.chunk(2, dim=-1)

    @torch.no_grad()
    def sample(self, lengths: Tensor, temperature: float = 1.0, return_params: bool = False):
        """z (B, max(lengths), D) drawn from the prior, zero beyond each row's length; with
        ``return_params`` also the step-wise (mu^, logvar^) (B, T, D) each."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        B, T = lengths.size(0), int(lengths.max())
        weight = self.input_proj.weight
        E = weight.size(0)
        caches = [layer.init_cache(weight.new_zeros(B, E, 1)) for layer in self.layers]
        z = weight.new_zeros(B, T, self.latent_dim)
        mus, logvars = [], []
        x = weight.new_zeros(B, E)  # left padding before position 1
        for t in range(T):
            for i, layer in enumerate(self.layers):
                x, caches[i] = layer.step(x, caches[i])
            mu, logvar = self._head(x)
            z[:, t] = mu + temperature * torch.exp(0.5 * logvar) * torch.randn_like(mu)
            mus.append(mu)
            logvars.append(logvar)
            x = self.input_proj(z[:, t])
        beyond = padding_mask_from_lengths(lengths, T)
        z = z.masked_fill(beyond.unsqueeze(-1), 0.0)
        if return_params:
            return z, torch.stack(mus, 1), torch.stack(logvars, 1)
        return z
