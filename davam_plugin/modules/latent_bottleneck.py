"""The latent bottleneck of a sequence VAE: encoder states h_1..h_T -> latents z_1..z_T.

One interface, two kinds (Fang et al., sections III and IV):

* :class:`VQBottleneck` (DAVAM, DAVAM-q): a projection without bias and the EMA vector
  quantizer (:mod:`davam_plugin.modules.ema_vector_quantizer`)

      u_t = W_c h_t,    z_t = argmin_k ||u_t - e_k||^2,    latent_t = e_{z_t} (straight-through)

  regularised by the (unweighted) commitment  sum_{real t} ||u_t - sg(e_{z_t})||^2;
  its prior over the codes is fitted afterwards (stage two, :mod:`davam_plugin.models.davam_prior`).

* :class:`GaussianBottleneck` (GAVAM, VAE+Attn): q(z_t | x) = N(mu_t, diag sigma_t^2) with

      [mu_t; log sigma_t^2] = W_p h_t + b_p,    latent_t = mu_t + sigma_t * eps_t,  eps_t ~ N(0, I)

  (one sample, in training and validation; ``use_posterior_mean`` decodes from mu), regularised
  by the analytic per-sentence KL  sum_{real t} KL(q(z_t|x) || p(z_t | z_<t))  to a jointly
  trained Gaussian PixelCNN prior given the sampled prefix (paper Eq. 4-5,
  :mod:`davam_plugin.modules.gaussian_conv_prior`), or sum_t KL(q(z_t|x) || N(0, I)) without one.

Both return the same dict (:data:`LATENT_KEYS`; what a kind does not have is None):

    latents      (B, T, D)  what the decoder reads; 0 at padding
    codes        (B, T)     code indices, -1 at padding                 (VQ)
    mu, logvar   (B, T, D)  posterior parameters, 0 at padding          (Gaussian)
    commitment   ()         sum over real positions, float32            (VQ; 0 for Gaussian)
    kl           (B,)       per-sentence KL summed over real positions  (Gaussian)
    code_counts  (K,)       histogram of this batch's codes             (VQ)

``regularizer`` names the term a criterion weights ("commitment" or "kl"). ``from_codes`` /
``from_latents`` give the same dict for given codes or latents (generation from a prior);
``sample_prior`` draws Gaussian latents from the bottleneck's own prior.
"""

from typing import Dict, Optional

import torch
import torch.nn as nn
from torch import Tensor

from davam_plugin.metrics import at_least_fp32 as _fp32, gaussian_kl, gaussian_kl_diag
from davam_plugin.modules.ema_vector_quantizer import EMAVectorQuantizer

LATENT_KEYS = ("latents", "codes", "mu", "logvar", "commitment", "kl", "code_counts")


def _latent_dict(**values) -> Dict[str, Optional[Tensor]]:
    unknown = set(values) - set(LATENT_KEYS)
    assert not unknown, f"not latent keys: {sorted(unknown)}"
    return {key: values.get(key) for key in LATENT_KEYS}


def padding_mask_from_lengths(lengths: Tensor, T: int) -> Tensor:
    return torch.arange(T, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


class LatentBottleneck(nn.Module):
    """Interface (module docstring). Subclasses set ``discrete``, ``regularizer`` and ``latent_dim``."""

    discrete: bool
    regularizer: str

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        # Gaussian latents: decode from mu instead of a sample (generation); no effect on codes
        self.use_posterior_mean = False

    def project(self, states: Tensor) -> Tensor:
        """Encoder states (B, T, H) -> what :meth:`from_projected` takes (position-wise)."""
        raise NotImplementedError

    def from_projected(self, projected: Tensor, padding_mask: Tensor) -> Dict[str, Optional[Tensor]]:
        raise NotImplementedError

    def forward(self, states: Tensor, padding_mask: Tensor) -> Dict[str, Optional[Tensor]]:
        """The latent dict (module docstring) of encoder states (B, T, H), True at pads in ``padding_mask``."""
        return self.from_projected(self.project(states), padding_mask)

    def from_codes(self, codes: Tensor, padding_mask: Tensor) -> Dict[str, Optional[Tensor]]:
        raise ValueError(f"{type(self).__name__} has no codes: give latents instead")

    def from_latents(self, z: Tensor, padding_mask: Tensor) -> Dict[str, Optional[Tensor]]:
        raise ValueError(f"{type(self).__name__} has discrete codes: give code indices instead")

    def sample_prior(self, lengths: Tensor, temperature: float = 1.0) -> Tensor:
        raise ValueError(f"{type(self).__name__} has no prior of its own (a DAVAM's prior is trained in stage two)")


class VQBottleneck(LatentBottleneck):
    """u_t = W_c h_t (no bias), vector-quantized by an EMA codebook (module docstring)."""

    discrete = True
    regularizer = "commitment"

    def __init__(self, in_dim: int, code_dim: int, num_codes: int, decay: float = 0.99, eps: float = 1e-5,
                 kmeans_init: bool = False, dead_code_threshold: float = 0.0):  # fmt: skip
        super().__init__(code_dim)
        self.to_code = nn.Linear(in_dim, code_dim, bias=False)
        self.quantizer = EMAVectorQuantizer(
            num_codes, code_dim, decay=decay, eps=eps, kmeans_init=kmeans_init, dead_code_threshold=dead_code_threshold
        )

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    def project(self, states: Tensor) -> Tensor:
        """The pre-quantization vectors u_t = W_c h_t (B, T, D)."""
        return self.to_code(states)

    def from_projected(self, u: Tensor, padding_mask: Tensor) -> Dict[str, Optional[Tensor]]:
        q = self.quantizer(u, padding_mask)
        return _latent_dict(latents=q["quantized"], codes=q["codes"], commitment=q["commitment"], code_counts=q["code_counts"])

    def from_codes(self, codes: Tensor, padding_mask: Tensor) -> Dict[str, Optional[Tensor]]:
        safe = codes.masked_fill(padding_mask, 0)
        if bool((safe < 0).any()) or bool((safe >= self.num_codes).any()):
            raise ValueError(f"code indices must be in [0, {self.num_codes})")
        latents = self.quantizer.embed_codes(safe).masked_fill(padding_mask.unsqueeze(-1), 0.0)
        return _latent_dict(
            latents=latents,
            codes=safe.masked_fill(padding_mask, -1),
            commitment=latents.new_zeros(()),
            code_counts=torch.bincount(safe[~padding_mask], minlength=self.num_codes).float(),
        )


class GaussianBottleneck(LatentBottleneck):
    """q(z_t | x) = N(mu_t, diag sigma_t^2) per position, with an optional jointly trained
    auto-regressive prior ``prior`` (None: N(0, I)) (module docstring)."""

    discrete = False
    regularizer = "kl"

    def __init__(self, in_dim: int, latent_dim: int, prior: Optional[nn.Module] = None):
        super().__init__(latent_dim)
        self.to_posterior = nn.Linear(in_dim, 2 * latent_dim)
        self.prior = prior

    def project(self, states: Tensor) -> Tensor:
        """The posterior parameters [mu_t; log sigma_t^2] (B, T, 2D)."""
        return self.to_posterior(states)

    def sample_noise(self, mu: Tensor) -> Tensor:
        """eps ~ N(0, I) of the reparameterization z = mu + sigma * eps (tests replace it)."""
        return torch.randn_like(mu)

    def from_projected(self, params: Tensor, padding_mask: Tensor) -> Dict[str, Optional[Tensor]]:
        """The latent dict from the posterior parameters (B, T, 2D)."""
        pad = padding_mask.unsqueeze(-1)
        mu, logvar = params.chunk(2, dim=-1)
        mu, logvar = mu.masked_fill(pad, 0.0), logvar.masked_fill(pad, 0.0)
        if self.use_posterior_mean:
            z = mu
        else:
            z = (mu + torch.exp(0.5 * logvar) * self.sample_noise(mu)).masked_fill(pad, 0.0)
        if self.prior is None:  # VAE+Attn: KL(q(z_t|x) || N(0, I))
            kl = gaussian_kl(_fp32(mu), _fp32(logvar))
        else:  # GAVAM: KL(q(z_t|x) || p(z_t | z_<t)) given the sampled prefix
            mu_p, logvar_p = self.prior(z, padding_mask)
            kl = gaussian_kl_diag(_fp32(mu), _fp32(logvar), _fp32(mu_p), _fp32(logvar_p))
        return _latent_dict(
            latents=z, mu=mu, logvar=logvar, commitment=kl.new_zeros(()), kl=kl.masked_fill(padding_mask, 0.0).sum(1)
        )

    def from_latents(self, z: Tensor, padding_mask: Tensor) -> Dict[str, Optional[Tensor]]:
        return _latent_dict(latents=z.masked_fill(padding_mask.unsqueeze(-1), 0.0), commitment=z.new_zeros(()))

    @torch.no_grad()
    def sample_prior(self, lengths: Tensor, temperature: float = 1.0) -> Tensor:
        """z (B, max(lengths), D) from the prior (the PixelCNN's, or temperature * N(0, I)), 0 beyond each length."""
        if self.prior is not None:
            return self.prior.sample(lengths, temperature)
        weight = self.to_posterior.weight
        z = torch.randn(lengths.size(0), int(lengths.max()), self.latent_dim, device=weight.device) * temperature
        return z.masked_fill(padding_mask_from_lengths(lengths, z.size(1)).unsqueeze(-1), 0.0).to(weight.dtype)
