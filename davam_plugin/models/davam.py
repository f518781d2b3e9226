"""DAVAM stage one: LSTM encoder, per-position vector quantization, attentive LSTM decoder.

Fang et al., "Discrete Auto-regressive Variational Attention Models for Text Modeling".

Encoder: x_1..x_T (words + EOS) -> embeddings -> LSTM -> h_t -> Linear(H -> D, no bias)
-> EMA vector quantizer -> z_t in {1..K}, e_{z_t} (straight-through), for *every* t.

Decoder (paper Eq. 3, authors' details): memory m_t = Linear(D -> H, no bias)(e_{z_t});
c_0 = m_T (last real position), h_0 = tanh(c_0); at step i

    a_i   = softmax_t(v^T tanh(W_q h_{i-1} + W_m m_t + b))        (Bahdanau)
    ctx_i = sum_t a_{i,t} m_t
    h_i, c_i = LSTMCell([emb(y_{i-1}); ctx_i; h_0], (h_{i-1}, c_{i-1}))   (input feeding)
    p(y_i | y_<i, z) = softmax(W_o [dropout(h_i); ctx_i])

The decoder reads the input only through the quantized codes: the encoder's LSTM states
(final state included) never reach it.

Efficient arrangement (same maths as the equations above; the tests compare values and all
parameter gradients with the plain ``nn.LSTMCell`` path, ``AttentiveLatentDecoder.forward_unfused``;
the decoders live in :mod:`davam_plugin.modules.latent_decoders`):
the attention keys W_m m + b and the LSTM input products of all embeddings (W_e emb(y)) and
of h_0 (W_0 h_0 + biases) are computed once per batch; inside the recurrence only
h_{i-1} [W_q; W_hh]^T, the attention and ctx_i W_c^T remain, with a hand-written backward
(:mod:`davam_plugin.modules.attentive_lstm_recurrence`). The output layer and the loss run
once, after the loop, on real target tokens only
(:mod:`davam_plugin.modules.linear_cross_entropy`).

The encoder's states go through a latent bottleneck module
(:mod:`davam_plugin.modules.latent_bottleneck`: ``VQBottleneck`` for DAVAM, ``GaussianBottleneck``
for GAVAM and VAE+Attn) and every encoder output has one schema (:data:`ENCODER_OUT_KEYS`,
see :class:`DavamEncoder`); the criterion weights the regularizer the model's bottleneck names
(``latent_regularizer``: commitment or KL).

Ablations of the paper (section IV, Table II), the same encoder/decoder under switches:

* ``--latent-type gaussian`` (GAVAM with ``--gaussian-prior pixelcnn``, VAE+Attn with
  ``--gaussian-prior normal``): instead of the quantizer, q(z_t | x) = N(mu_t, diag sigma_t^2)
  with [mu_t; log sigma_t^2] = Linear(H -> 2D)(h_t); z_t = mu_t + sigma_t * eps (one sample,
  in training and validation; generation decodes from mu when the task sets
  ``encoder.use_posterior_mean``). The decoder consumes z_t exactly where it consumes e_{z_t}.
  The encoder also returns the per-sentence KL: sum_t KL(q(z_t|x) || N(0, I)) (``normal``)
  or sum_t KL(q(z_t|x) || p(z_t | z_<t)) with the jointly trained Gaussian PixelCNN prior
  (``pixelcnn``, :mod:`davam_plugin.modules.gaussian_conv_prior`, paper Eq. 4-5), analytic
  given the sampled prefix z_<t.
* ``--latent-positions last`` (DAVAM-q): only the last real encoder position (the EOS state
  h_T) gets a latent; the decoder memory is that single vector.
* ``--no-decoder-attention`` (DAVAM-q): no attention; c_0 = m_T, h_0 = tanh(c_0) as above and

      h_i, c_i = LSTM([emb(y_{i-1}); h_0], (h_{i-1}, c_{i-1})),   p(y_i | .) = softmax(W_o dropout(h_i))

  run as one ``nn.LSTM`` over the whole (known) input sequence in training, step by step
  with state (h, c) in fairseq's search.
"""

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from fairseq import utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import (
    FairseqEncoder,
    register_model,
    register_model_architecture,
)
from torch import Tensor

from davam_plugin.modules.latent_decoders import (  # noqa: F401 - output_mask: also davam_plugin.models.davam's
    AttentionFreeLatentDecoder,
    AttentiveLatentDecoder,
    init_uniform,
    output_mask,
)
from davam_plugin.modules.mask_dropout import MaskDropout
from davam_plugin.modules.latent_bottleneck import (
    LATENT_KEYS,
    GaussianBottleneck,
    LatentBottleneck,
    VQBottleneck,
    padding_mask_from_lengths,
)
from davam_plugin.modules.precision import run_lstm
from davam_plugin.modules.gaussian_conv_prior import GaussianConvPrior
from davam_plugin.models.base import PriorSampling, SentenceVAEBaseModel, set_arch_defaults

logger = logging.getLogger(__name__)

LATENT_TYPES = ChoiceEnum(["discrete", "gaussian"])
LATENT_POSITIONS = ChoiceEnum(["all", "last"])
GAUSSIAN_PRIORS = ChoiceEnum(["pixelcnn", "normal"])


@dataclass
class DavamConfig(FairseqDataclass):
    encoder_embed_dim: int = field(default=256, metadata={"help": "encoder embedding dimension"})
    encoder_hidden_dim: int = field(default=256, metadata={"help": "encoder LSTM hidden size"})
    encoder_layers: int = field(default=1, metadata={"help": "encoder LSTM layers"})
    encoder_dropout_in: float = field(default=0.0, metadata={"help": "dropout on encoder input embeddings"})
    decoder_embed_dim: int = field(default=256, metadata={"help": "decoder embedding dimension"})
    decoder_hidden_dim: int = field(default=256, metadata={"help": "decoder LSTMCell hidden size"})
    decoder_attention_dim: int = field(default=256, metadata={"help": "Bahdanau attention dimension"})
    decoder_dropout_in: float = field(default=0.5, metadata={"help": "dropout on decoder input embeddings"})
    decoder_dropout_out: float = field(default=0.5, metadata={"help": "dropout on the decoder hidden state before the output layer"})
    code_dim: int = field(default=32, metadata={"help": "dimension D of the codes"})
    num_codes: int = field(default=512, metadata={"help": "codebook size K"})
    codebook_decay: float = field(default=0.99, metadata={"help": "EMA decay of the codebook statistics"})
    codebook_eps: float = field(default=1e-5, metadata={"help": "Laplace smoothing of the codebook cluster sizes"})
    codebook_kmeans_init: bool = field(default=False, metadata={"help": "initialise the codebook by k-means on the first training batch"})
    codebook_dead_code_threshold: float = field(default=0.0, metadata={"help": "restart codes whose EMA cluster size falls below this (0 = off)"})
    init_scale: float = field(default=0.01, metadata={"help": "weights ~ U(-s, s) (authors: 0.01)"})
    embed_init_scale: float = field(default=0.1, metadata={"help": "embeddings ~ U(-s, s) (authors: 0.1)"})
    max_source_positions: int = field(default=1024, metadata={"help": "longest encoder input"})
    max_target_positions: int = field(default=1024, metadata={"help": "longest decoder output"})
    # ablations (GAVAM, VAE+Attn, DAVAM-q); the defaults are DAVAM
    latent_type: LATENT_TYPES = field(
        default="discrete",
        metadata={"help": "discrete: vector-quantized codes (DAVAM); gaussian: z_t ~ N(mu_t, sigma_t^2) (GAVAM, VAE+Attn)"},
    )
    latent_positions: LATENT_POSITIONS = field(
        default="all",
        metadata={"help": "all: a latent at every encoder position; last: only at the last one, the EOS state (DAVAM-q)"},
    )
    no_decoder_attention: bool = field(
        default=False,
        metadata={"help": "decoder without attention: LSTM on [emb(y_{i-1}); h_0], output layer on h_i only (DAVAM-q)"},
    )
    gaussian_prior: GAUSSIAN_PRIORS = field(
        default="pixelcnn",
        metadata={"help": "prior of --latent-type gaussian: pixelcnn (jointly trained auto-regressive, GAVAM) or normal (N(0, I), VAE+Attn)"},
    )
    gaussian_prior_embed_dim: int = field(default=512, metadata={"help": "Gaussian PixelCNN prior: input projection / convolution width"})
    gaussian_prior_layers: int = field(default=15, metadata={"help": "Gaussian PixelCNN prior: gated causal convolution layers"})
    gaussian_prior_kernel_size: int = field(default=5, metadata={"help": "Gaussian PixelCNN prior: convolution kernel width"})
    gaussian_prior_head_dim: int = field(default=256, metadata={"help": "Gaussian PixelCNN prior: hidden width of the 1x1 output head"})


def _opt(cfg, name: str):
    """A config value; configs written before the field existed get the DavamConfig default."""
    value = getattr(cfg, name, None)
    return DavamConfig.__dataclass_fields__[name].default if value is None else value


def is_gaussian(cfg) -> bool:
    return str(_opt(cfg, "latent_type")) == "gaussian"


def check_config(cfg: DavamConfig) -> None:
    """One-line errors (SystemExit, no traceback in fairseq's CLIs) for impossible settings."""
    positive = ("encoder_embed_dim", "encoder_hidden_dim", "encoder_layers", "decoder_embed_dim",
                "decoder_hidden_dim", "decoder_attention_dim", "code_dim", "num_codes")  # fmt: skip
    for name in positive:
        if getattr(cfg, name) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.codebook_decay < 1.0:
        raise SystemExit(f"error: --codebook-decay must be in [0, 1), got {cfg.codebook_decay}")
    if cfg.codebook_eps <= 0:
        raise SystemExit(f"error: --codebook-eps must be > 0, got {cfg.codebook_eps}")
    for name in ("encoder_dropout_in", "decoder_dropout_in", "decoder_dropout_out"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be in [0, 1), got {getattr(cfg, name)}")
    if is_gaussian(cfg):
        if getattr(cfg, "codebook_kmeans_init", False):
            raise SystemExit("error: --codebook-kmeans-init needs --latent-type discrete (a Gaussian latent has no codebook)")
        if getattr(cfg, "codebook_dead_code_threshold", 0.0) > 0:
            raise SystemExit(
                "error: --codebook-dead-code-threshold needs --latent-type discrete (a Gaussian latent has no codebook)"
            )
        if str(_opt(cfg, "gaussian_prior")) == "pixelcnn":
            for name in ("gaussian_prior_embed_dim", "gaussian_prior_layers", "gaussian_prior_kernel_size",
                         "gaussian_prior_head_dim"):  # fmt: skip
                if _opt(cfg, name) < 1:
                    raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1, got {_opt(cfg, name)}")
    elif str(_opt(cfg, "gaussian_prior")) != "pixelcnn":
        raise SystemExit("error: --gaussian-prior needs --latent-type gaussian (a discrete DAVAM's prior is trained in stage two)")


ENCODER_OUT_KEYS = ("latents", "encoder_padding_mask", "src_lengths") + tuple(k for k in LATENT_KEYS if k != "latents")
# entries with a batch dimension (reordered by beam search); commitment and code_counts are batch totals
BATCH_KEYS = ("latents", "encoder_padding_mask", "src_lengths", "codes", "mu", "logvar", "kl")


def build_bottleneck(cfg) -> LatentBottleneck:
    """The latent bottleneck the config asks for (the Gaussian PixelCNN prior is attached by
    the encoder after its uniform initialisation: that prior keeps PyTorch's)."""
    if is_gaussian(cfg):
        return GaussianBottleneck(cfg.encoder_hidden_dim, cfg.code_dim)
    return VQBottleneck(
        cfg.encoder_hidden_dim,
        cfg.code_dim,
        cfg.num_codes,
        decay=cfg.codebook_decay,
        eps=cfg.codebook_eps,
        kmeans_init=cfg.codebook_kmeans_init,
        dead_code_threshold=cfg.codebook_dead_code_threshold,
    )


class DavamEncoder(FairseqEncoder):
    """LSTM encoder whose every state goes through the latent bottleneck
    (:mod:`davam_plugin.modules.latent_bottleneck`: vector quantization for DAVAM, a Gaussian
    posterior for GAVAM and VAE+Attn); ``latent_positions=last`` (DAVAM-q) keeps only the last
    real position's latent.

    Every encoder_out has the keys :data:`ENCODER_OUT_KEYS`, each a list holding one tensor, or
    empty where the bottleneck has no such value (codes of a Gaussian, KL of a VQ bottleneck):
    latents (B, T, D), encoder_padding_mask (B, T), src_lengths (B,) (latent positions per
    sentence) and the bottleneck's codes, mu, logvar, commitment, kl and code_counts.
    """

    BATCH_KEYS = BATCH_KEYS

    def __init__(self, cfg: DavamConfig, dictionary):
        super().__init__(dictionary)
        self.last_position_only = str(_opt(cfg, "latent_positions")) == "last"
        self.padding_idx = dictionary.pad()
        self.embed_tokens = nn.Embedding(len(dictionary), cfg.encoder_embed_dim, self.padding_idx)
        self.dropout_in = MaskDropout(cfg.encoder_dropout_in)
        self.lstm = nn.LSTM(
            cfg.encoder_embed_dim, cfg.encoder_hidden_dim, num_layers=cfg.encoder_layers, batch_first=True
        )
        self.bottleneck = build_bottleneck(cfg)
        self.max_source_positions = cfg.max_source_positions
        init_uniform(self, cfg.init_scale, cfg.embed_init_scale)
        # the jointly trained Gaussian prior keeps PyTorch's initialisation (like the stage-two prior)
        if is_gaussian(cfg) and str(_opt(cfg, "gaussian_prior")) == "pixelcnn":
            self.bottleneck.prior = GaussianConvPrior(
                cfg.code_dim,
                _opt(cfg, "gaussian_prior_embed_dim"),
                _opt(cfg, "gaussian_prior_layers"),
                _opt(cfg, "gaussian_prior_kernel_size"),
                _opt(cfg, "gaussian_prior_head_dim"),
            )

    def encoder_states(self, src_tokens: Tensor):
        """Right-padded tokens -> (the bottleneck's projections of the LSTM states (B, T, C),
        padding mask (B, T)): the pre-quantization vectors (C = D), or the Gaussian posterior
        parameters [mu_t; log sigma_t^2] (C = 2D)."""
        padding_mask = src_tokens.eq(self.padding_idx)
        if padding_mask[:, 0].any():
            # left-padded input: a unidirectional LSTM must see the real tokens first
            src_tokens = utils.convert_padding_direction(src_tokens, self.padding_idx, left_to_right=True)
            padding_mask = src_tokens.eq(self.padding_idx)
        x = self.dropout_in(self.embed_tokens(src_tokens))
        # right padding: the states at real positions never see a pad, so no packing is needed
        states, _ = run_lstm(self.lstm, x)
        return self.bottleneck.project(states), padding_mask

    @staticmethod
    def last_position(h: Tensor, padding_mask: Tensor):
        """(B, T, C) right-padded -> the last real position (B, 1, C) and its mask (B, 1)."""
        last = ((~padding_mask).sum(1) - 1).clamp_min(0)
        h = h[torch.arange(h.size(0), device=h.device), last].unsqueeze(1)
        return h, padding_mask.new_zeros(h.size(0), 1)

    @staticmethod
    def encoder_out(latent: Dict[str, Optional[Tensor]], padding_mask: Tensor, lengths: Tensor):
        """The encoder_out dict (class docstring) of a bottleneck's latent dict."""
        out = {"encoder_padding_mask": [padding_mask], "src_lengths": [lengths]}
        out.update({key: [] if value is None else [value] for key, value in latent.items()})
        return {key: out[key] for key in ENCODER_OUT_KEYS}

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Optional[Tensor] = None,
        src_codes: Optional[Tensor] = None,
        src_code_lengths: Optional[Tensor] = None,
        src_latents: Optional[Tensor] = None,
        **kwargs,
    ):
        """Encode ``src_tokens``; or, given ``src_codes`` (B, T) (discrete) or ``src_latents``
        (B, T, D) (Gaussian) and ``src_code_lengths`` (B,), e.g. sampled from a prior, skip the
        LSTM and decode from those latents."""
        if src_codes is not None:
            return self.forward_codes(src_codes, src_code_lengths)
        if src_latents is not None:
            return self.forward_latents(src_latents, src_code_lengths)
        h, padding_mask = self.encoder_states(src_tokens)
        if self.last_position_only:
            h, padding_mask = self.last_position(h, padding_mask)
        latent = self.bottleneck.from_projected(h, padding_mask)
        return self.encoder_out(latent, padding_mask, (~padding_mask).sum(1))

    def forward_latents(self, z: Tensor, lengths: Tensor):
        """encoder_out for given Gaussian latents z (B, T, D) of lengths (B,) (entries beyond
        are ignored)."""
        if self.bottleneck.discrete:
            raise ValueError("forward_latents: this model has discrete codes, not Gaussian latents")
        if lengths is None or bool((lengths < 1).any()):
            raise ValueError("forward_latents: every latent sequence needs a length >= 1")
        padding_mask = padding_mask_from_lengths(lengths, z.size(1))
        return self.encoder_out(self.bottleneck.from_latents(z, padding_mask), padding_mask, lengths)

    def forward_codes(self, codes: Tensor, lengths: Tensor):
        """encoder_out for given code indices: z_1..z_{lengths} (entries beyond are ignored;
        with ``latent_positions=last`` only z_{lengths} is used)."""
        if not self.bottleneck.discrete:
            raise ValueError("forward_codes: this model has Gaussian latents, not codes")
        if lengths is None or bool((lengths < 1).any()):
            raise ValueError("forward_codes: every code sequence needs a length >= 1")
        if self.last_position_only:
            codes = codes.gather(1, (lengths - 1).clamp(max=codes.size(1) - 1).unsqueeze(1))
            lengths = torch.ones_like(lengths)
        padding_mask = padding_mask_from_lengths(lengths, codes.size(1))
        try:
            latent = self.bottleneck.from_codes(codes, padding_mask)
        except ValueError as e:
            raise ValueError(f"forward_codes: {e}") from None
        return self.encoder_out(latent, padding_mask, lengths)

    def reorder_encoder_out(self, encoder_out: Dict[str, List[Tensor]], new_order: Tensor):
        return {
            k: [t.index_select(0, new_order) for t in v] if k in self.BATCH_KEYS else v
            for k, v in encoder_out.items()
        }

    def max_positions(self):
        return self.max_source_positions

    def upgrade_state_dict_named(self, state_dict, name):
        """Checkpoints written before the latent bottleneck became a module (commit baa2cae and
        earlier) hold its parameters and buffers directly under the encoder."""
        prefix = f"{name}." if name else ""
        moves = {"to_code.": "bottleneck.to_code.", "quantizer.": "bottleneck.quantizer.",
                 "to_posterior.": "bottleneck.to_posterior.", "gaussian_prior.": "bottleneck.prior."}  # fmt: skip
        for key in list(state_dict):
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            for old, new in moves.items():
                if rest.startswith(old):
                    state_dict[prefix + new + rest[len(old):]] = state_dict.pop(key)
                    break
        return state_dict


def build_decoder(cfg: DavamConfig, dictionary):
    """The attentive decoder, or with ``no_decoder_attention`` (DAVAM-q) the attention-free one
    (:mod:`davam_plugin.modules.latent_decoders`)."""
    if bool(_opt(cfg, "no_decoder_attention")):
        return AttentionFreeLatentDecoder(cfg, dictionary)
    return AttentiveLatentDecoder(cfg, dictionary)


DavamDecoder = AttentiveLatentDecoder  # the decoder's name before the attention-free one was split off


@register_model("davam", dataclass=DavamConfig)
class DavamModel(SentenceVAEBaseModel):
    """DAVAM stage one (see the module docstring)."""

    MODEL_NAME = "this DAVAM"
    criterion_name = "davam"

    @classmethod
    def build_model(cls, cfg: DavamConfig, task):
        check_config(cfg)
        d = task.source_dictionary
        if task.target_dictionary is not d and len(task.target_dictionary) != len(d):
            raise ValueError("davam: source and target dictionaries must be the same")
        return cls(cfg, DavamEncoder(cfg, d), build_decoder(cfg, d))

    def forward(self, src_tokens, src_lengths, prev_output_tokens, features_only: bool = False, **kwargs):
        encoder_out = self.encoder(src_tokens, src_lengths=src_lengths)
        x, extra = self.decoder(prev_output_tokens, encoder_out=encoder_out, features_only=features_only)
        # the bottleneck's values (codes, mu, logvar, commitment, kl, code_counts) and the
        # latent positions per sentence, those it has (encoder schema: empty lists otherwise)
        for key in (*LATENT_KEYS[1:], "src_lengths"):
            if encoder_out[key]:
                extra[key] = encoder_out[key][0]
        return x, extra

    @property
    def latent_regularizer(self) -> str:
        """The term the criterion weights: "commitment" (VQ) or "kl" (Gaussian)."""
        return self.encoder.bottleneck.regularizer

    def set_posterior_mean(self, enabled: bool) -> None:
        self.encoder.bottleneck.use_posterior_mean = enabled

    def prior_net_input(self, bsz: int, sampling: PriorSampling) -> Dict:
        """Latents from the prior:

        * Gaussian latent sequences (GAVAM, VAE+Attn): a length T per sentence drawn from the
          training split's sentence lengths (words + EOS: one latent per token), then z_1..z_T
          from the jointly trained PixelCNN prior, or z_t = temperature * eps_t, eps_t ~ N(0, I);
        * discrete codes (DAVAM, DAVAM-q): code sequences from the stage-two prior (--prior-path)."""
        param = next(self.parameters())
        bottleneck = self.encoder.bottleneck
        t = sampling.temperature
        if not bottleneck.discrete:
            lengths = sampling.training_lengths(bsz).to(param.device)
            z = bottleneck.sample_prior(lengths, t)
            return {"src_latents": z.to(param.dtype), "src_code_lengths": lengths}
        prior = sampling.stage_two_prior(self)
        allowed = self.live_codes()
        codes, lengths = prior.sample(bsz, sampling.max_len, t, sampling.topk, allowed=allowed)
        return {"src_codes": codes, "src_code_lengths": lengths}

    def live_codes(self) -> Tensor:
        """Codes the stage-one quantizer holds data for: EMA cluster size n_k > 0. A code never
        assigned in training keeps n_k = 0 and its randomly initialised vector, divided by the
        smoothed size (about eps): it sits far from every encoder state (1e5 times its initial
        norm early in training) and the decoder, never trained on it, overflows on it. Prior
        sampling leaves such codes out (an under-trained prior still gives them mass)."""
        live = self.encoder.bottleneck.quantizer.cluster_size > 0
        dead = int((~live).sum())
        if dead and not getattr(self, "_logged_dead_codes", False):
            logger.info(f"prior sampling: {dead} of {live.numel()} codes were never assigned in training "
                        f"(EMA cluster size 0): they are not sampled")
            self._logged_dead_codes = True
        return live


@register_model_architecture("davam", "davam_ptb")
def davam_ptb(cfg):
    """The authors' PTB/SNLI settings (the base ``davam`` defaults)."""
    set_arch_defaults(cfg, DavamConfig)


@register_model_architecture("davam", "davam_snli")
def davam_snli(cfg):
    davam_ptb(cfg)


@register_model_architecture("davam", "davam_yahoo")
def davam_yahoo(cfg):
    """Same network as PTB; Yahoo differs in training settings (batch 64, lr 0.1, --beta-max 2)."""
    davam_ptb(cfg)


DAVAM_TINY = dict(
    encoder_embed_dim=64,
    encoder_hidden_dim=128,
    decoder_embed_dim=64,
    decoder_hidden_dim=128,
    decoder_attention_dim=64,
    code_dim=16,
    num_codes=64,
    decoder_dropout_in=0.3,
    decoder_dropout_out=0.3,
)


@register_model_architecture("davam", "davam_tiny")
def davam_tiny(cfg):
    """A small model for tests and the demo."""
    set_arch_defaults(cfg, DavamConfig, **DAVAM_TINY)


# ------------------------------------------------------------------------------ ablations
# The paper's ablations (section IV, Table II) with the authors' sizes (the davam_ptb
# defaults), and *_tiny variants with the davam_tiny sizes (and a small Gaussian prior).
GAVAM = dict(latent_type="gaussian", gaussian_prior="pixelcnn", latent_positions="all", no_decoder_attention=False)
VAE_ATTN = dict(latent_type="gaussian", gaussian_prior="normal", latent_positions="all", no_decoder_attention=False)
DAVAM_Q = dict(latent_type="discrete", latent_positions="last", no_decoder_attention=True)
_TINY_GAUSSIAN_PRIOR = dict(
    gaussian_prior_embed_dim=64, gaussian_prior_layers=3, gaussian_prior_kernel_size=3, gaussian_prior_head_dim=64
)


@register_model_architecture("davam", "gavam")
def gavam(cfg):
    """GAVAM: Gaussian latents at every position, jointly trained PixelCNN prior, attention."""
    set_arch_defaults(cfg, DavamConfig, **GAVAM)


@register_model_architecture("davam", "vae_attn")
def vae_attn(cfg):
    """VAE+Attn: Gaussian latents at every position, prior N(0, I), attention."""
    set_arch_defaults(cfg, DavamConfig, **VAE_ATTN)


@register_model_architecture("davam", "davam_q")
def davam_q(cfg):
    """DAVAM-q: one code, the last position's (the EOS state h_T); decoder without attention."""
    set_arch_defaults(cfg, DavamConfig, **DAVAM_Q)


@register_model_architecture("davam", "gavam_tiny")
def gavam_tiny(cfg):
    set_arch_defaults(cfg, DavamConfig, **GAVAM, **_TINY_GAUSSIAN_PRIOR, **DAVAM_TINY)


@register_model_architecture("davam", "vae_attn_tiny")
def vae_attn_tiny(cfg):
    set_arch_defaults(cfg, DavamConfig, **VAE_ATTN, **_TINY_GAUSSIAN_PRIOR, **DAVAM_TINY)


@register_model_architecture("davam", "davam_q_tiny")
def davam_q_tiny(cfg):
    set_arch_defaults(cfg, DavamConfig, **DAVAM_Q, **_TINY_GAUSSIAN_PRIOR, **DAVAM_TINY)
