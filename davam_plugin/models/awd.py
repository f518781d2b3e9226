"""AWD: a Gaussian sequence VAE whose decoder inputs are dropped by a learned adversary.

Miladinovic et al., "Learning to Drop Out: An Adversarial Approach to Training Sequence VAEs".

Encoder: x_1..x_n EOS -> embeddings -> LSTM -> last state h -> Linear(H -> 2Z, no bias)
-> [mu; log sigma^2], q(z|x) = N(mu, diag sigma^2), z = mu + sigma * eps; prior N(0, I).

Double-LSTM decoder (authors' code): the state starts at (h_0, c_0) = (W_z z, 0) (no bias) and

    p(y_1 | z)            = softmax(W_o dropout(h_0))
    (h', c')  = LSTM_predict(z, (h_{i-1}, c_{i-1}))                       ("predict" cell)
    (h_i, c_i) = LSTM_update([keep_i * emb(x_i); z], (h', c'))            ("update" cell)
    p(y_{i+1} | y_<=i, z) = softmax(W_o dropout(h_i))

so the first token is predicted from z alone and every later one after consuming the
previous word x_i. The word inputs x_1..x_n (T = n per sentence, EOS is never an input)
are subject to word dropout during training, ``--word-dropout-mode``:

* ``adversarial``: an adversary (own embedding and LSTM over x_1..x_n, Linear -> mean mu_s,
  optionally a log-variance) samples scores s_i = mu_s,i + sigma_s,i * eps; the K = round(R T)
  lowest-scored inputs of each sentence are dropped (keep_i = 0) with a straight-through
  hard mask whose backward is the capped-simplex projection
  (:func:`davam_plugin.modules.relaxed_topk.drop_lowest_k`), and the gradient into the
  adversary is reversed (:func:`davam_plugin.modules.gradient_reversal.grad_reverse`), so
  the adversary *minimises* the ELBO the VAE maximises. Its regulariser
  sum_i KL(N(mu_s,i, sigma_s,i^2) || N(0, 1)) is returned for the criterion (weight lambda).
* ``uniform``: each input dropped independently with probability R (classic word dropout).
* ``none``: the unregularised VAE.

A dropped input becomes the zero embedding (``--dropped-input zero``, authors) or the
embedding of <unk> (``--dropped-input unk``). The adversary plays no role in eval mode:
validation, generation and evaluation never drop inputs.

Because keep_i is a scalar per position, keep_i * emb(x_i) W^T = keep_i * (emb(x_i) W^T): the
input products of all words and the z products are computed once per batch; the recurrence
only adds h W_hh^T per cell.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import (
    FairseqEncoder,
    FairseqIncrementalDecoder,
    register_model,
    register_model_architecture,
)
from torch import Tensor

from davam_plugin.models.davam import output_mask
from davam_plugin.models.base import SentenceVAEBaseModel, set_arch_defaults
from davam_plugin.modules.gradient_reversal import grad_reverse
from davam_plugin.modules.linear_cross_entropy import linear_cross_entropy
from davam_plugin.modules.mask_dropout import MaskDropout
from davam_plugin.modules.relaxed_topk import drop_lowest_k, k_per_sentence

WORD_DROPOUT_MODES = ChoiceEnum(["adversarial", "uniform", "none"])
DROPPED_INPUTS = ChoiceEnum(["zero", "unk"])


@dataclass
class AwdConfig(FairseqDataclass):
    embed_dim: int = field(default=512, metadata={"help": "word embedding dimension (encoder and decoder)"})
    encoder_hidden_dim: int = field(default=1024, metadata={"help": "encoder LSTM hidden size"})
    decoder_hidden_dim: int = field(default=1024, metadata={"help": "Double-LSTM decoder hidden size"})
    latent_dim: int = field(default=32, metadata={"help": "dimension of z"})
    decoder_dropout_in: float = field(default=0.0, metadata={"help": "dropout on decoder input embeddings"})
    decoder_dropout_out: float = field(default=0.5, metadata={"help": "dropout before the output layer"})
    word_dropout_mode: WORD_DROPOUT_MODES = field(
        default="adversarial", metadata={"help": "adversarial (AWD), uniform (classic word dropout) or none"}
    )
    word_dropout_rate: float = field(
        default=0.2, metadata={"help": "R: fraction of word inputs dropped (K = round(R T) per sentence if adversarial)"}
    )
    dropped_input: DROPPED_INPUTS = field(
        default="zero", metadata={"help": "a dropped input becomes the zero embedding or the <unk> embedding"}
    )
    adversary_embed_dim: int = field(default=512, metadata={"help": "adversary embedding dimension"})
    adversary_hidden_dim: int = field(default=1024, metadata={"help": "adversary LSTM hidden size"})
    adversary_learned_variance: bool = field(
        default=False, metadata={"help": "the adversary also predicts log sigma^2 of each score (authors: sigma = 1)"}
    )
    relaxation_temperature: float = field(
        default=1.0, metadata={"help": "temperature of the capped-simplex relaxation of the top-K (backward only)"}
    )
    init_scale: float = field(default=0.01, metadata={"help": "weights ~ U(-s, s), biases 0 (authors)"})
    embed_init_scale: float = field(default=0.1, metadata={"help": "encoder/decoder embeddings ~ U(-s, s)"})
    max_source_positions: int = field(default=1024, metadata={"help": "longest encoder input"})
    max_target_positions: int = field(default=1024, metadata={"help": "longest decoder output"})


def check_awd_config(cfg) -> None:
    for name in ("embed_dim", "encoder_hidden_dim", "decoder_hidden_dim", "latent_dim",
                 "adversary_embed_dim", "adversary_hidden_dim"):  # fmt: skip
        if getattr(cfg, name) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    for name in ("decoder_dropout_in", "decoder_dropout_out"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be in [0, 1), got {getattr(cfg, name)}")
    if not 0.0 <= cfg.word_dropout_rate < 1.0:
        raise SystemExit(f"error: --word-dropout-rate must be in [0, 1), got {cfg.word_dropout_rate}")
    if cfg.relaxation_temperature <= 0:
        raise SystemExit(f"error: --relaxation-temperature must be > 0, got {cfg.relaxation_temperature}")


def _init_authors(module: nn.Module, scale: float) -> None:
    for name, p in module.named_parameters():
        if "weight" in name:
            p.data.uniform_(-scale, scale)
        else:
            p.data.zero_()


def _lstm_step(gates: Tensor, c: Tensor):
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class AwdEncoder(FairseqEncoder):
    """LSTM encoder -> q(z|x) = N(mu, diag exp(logvar)); z sampled unless ``use_posterior_mean``."""

    BATCH_KEYS = ("z", "mu", "logvar", "src_tokens")

    def __init__(self, cfg: AwdConfig, dictionary):
        super().__init__(dictionary)
        self.padding_idx = dictionary.pad()
        self.embed_tokens = nn.Embedding(len(dictionary), cfg.embed_dim, self.padding_idx)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.encoder_hidden_dim, batch_first=True)
        self.to_posterior = nn.Linear(cfg.encoder_hidden_dim, 2 * cfg.latent_dim, bias=False)
        self.latent_dim = cfg.latent_dim
        self.max_source_positions = cfg.max_source_positions
        # set by the task for generation/evaluation: decode from mu instead of a sample
        self.use_posterior_mean = False
        _init_authors(self, cfg.init_scale)
        self.embed_tokens.weight.data.uniform_(-cfg.embed_init_scale, cfg.embed_init_scale)

    def posterior(self, src_tokens: Tensor):
        """(mu, logvar), each (B, Z), from right-padded tokens x_1..x_n EOS."""
        from fairseq import utils

        if src_tokens.eq(self.padding_idx)[:, 0].any():
            src_tokens = utils.convert_padding_direction(src_tokens, self.padding_idx, left_to_right=True)
        lengths = src_tokens.ne(self.padding_idx).sum(1)
        states, _ = self.lstm(self.embed_tokens(src_tokens))
        last = states[torch.arange(states.size(0), device=states.device), (lengths - 1).clamp_min(0)]
        mu, logvar = self.to_posterior(last).chunk(2, dim=-1)
        return mu, logvar

    def forward(self, src_tokens: Tensor, src_lengths: Optional[Tensor] = None, z: Optional[Tensor] = None, **kwargs):
        """Encode; or, given ``z`` (B, Z) (prior samples, interpolations), decode from it."""
        if z is not None:
            zeros = z.new_zeros(z.shape)
            return {"z": [z], "mu": [z], "logvar": [zeros], "src_tokens": [src_tokens]}
        mu, logvar = self.posterior(src_tokens)
        if self.use_posterior_mean:
            z = mu
        else:
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return {"z": [z], "mu": [mu], "logvar": [logvar], "src_tokens": [src_tokens]}

    def reorder_encoder_out(self, encoder_out: Dict[str, List[Tensor]], new_order: Tensor):
        return {k: [t.index_select(0, new_order) for t in v] for k, v in encoder_out.items()}

    def max_positions(self):
        return self.max_source_positions


class AwdAdversary(nn.Module):
    """Scores s_i ~ N(mu_i, sigma_i^2) per word input and their KL to N(0, 1)."""

    def __init__(self, cfg: AwdConfig, num_embeddings: int, padding_idx: int):
        super().__init__()
        self.embed_tokens = nn.Embedding(num_embeddings, cfg.adversary_embed_dim, padding_idx)
        self.lstm = nn.LSTM(cfg.adversary_embed_dim, cfg.adversary_hidden_dim, batch_first=True)
        self.learned_variance = cfg.adversary_learned_variance
        self.to_score = nn.Linear(cfg.adversary_hidden_dim, 2 if self.learned_variance else 1, bias=False)
        _init_authors(self, cfg.init_scale)

    def forward(self, words: Tensor, valid: Tensor):
        """words (B, T) right-padded; returns scores (B, T), per-sentence KL (B,), mu (B, T)."""
        params = self.to_score(self.lstm(self.embed_tokens(words))[0])
        mu = params[..., 0]
        logvar = params[..., 1] if self.learned_variance else torch.zeros_like(mu)
        scores = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
        return scores, (kl * valid).sum(1), mu


class AwdDecoder(FairseqIncrementalDecoder):
    """Double-LSTM decoder with (adversarial / uniform) word dropout; see the module docstring."""

    def __init__(self, cfg: AwdConfig, dictionary):
        super().__init__(dictionary)
        E, H, Z = cfg.embed_dim, cfg.decoder_hidden_dim, cfg.latent_dim
        self.embed_dim, self.hidden_dim = E, H
        self.padding_idx = dictionary.pad()
        self.unk_idx = dictionary.unk()
        self.mode = cfg.word_dropout_mode
        self.rate = cfg.word_dropout_rate
        self.dropped_input = cfg.dropped_input
        self.tau = cfg.relaxation_temperature
        self.embed_tokens = nn.Embedding(len(dictionary), E, self.padding_idx)
        self.dropout_in = MaskDropout(cfg.decoder_dropout_in)
        self.dropout_out = MaskDropout(cfg.decoder_dropout_out)
        self.z_to_state = nn.Linear(Z, H, bias=False)
        self.predict_cell = nn.LSTMCell(Z, H)
        self.update_cell = nn.LSTMCell(E + Z, H)
        self.output_projection = nn.Linear(H, len(dictionary), bias=False)
        self.register_buffer("output_mask", output_mask(dictionary), persistent=False)
        self.adversary = AwdAdversary(cfg, len(dictionary), self.padding_idx) if self.mode == "adversarial" else None
        self.max_target_positions = cfg.max_target_positions
        _init_authors(self, cfg.init_scale)
        self.embed_tokens.weight.data.uniform_(-cfg.embed_init_scale, cfg.embed_init_scale)
        if self.adversary is not None:
            self.adversary.embed_tokens.weight.data.uniform_(-cfg.embed_init_scale, cfg.embed_init_scale)
            for p in self.adversary.parameters():
                p.param_group = "adversary"  # for fairseq's composite optimizer (README)

    # ------------------------------------------------------------------ word dropout
    def keep_mask(self, words: Tensor):
        """Keep mask (B, T) for the word inputs and the adversary's outputs (training only)."""
        valid = words.ne(self.padding_idx)
        stats: Dict[str, Tensor] = {}
        if not self.training or self.mode == "none" or self.rate == 0.0:
            return valid.to(self.embed_tokens.weight.dtype), stats
        if self.mode == "uniform":
            keep = (torch.rand(words.shape, device=words.device) >= self.rate) & valid
            return keep.to(self.embed_tokens.weight.dtype), stats
        k = k_per_sentence(valid.sum(1), self.rate)
        scores, kl, mu = self.adversary(words, valid.to(self.embed_tokens.weight.dtype))
        keep = drop_lowest_k(scores.float(), k, valid, self.tau).to(scores.dtype)
        stats = {"score_kl": kl, "score_mu": mu, "scores": scores.detach(), "k": k}
        # the adversary minimises what the VAE maximises: reverse its gradient
        return grad_reverse(keep), stats

    # ------------------------------------------------------------------ decoding
    def _init_state(self, z: Tensor):
        h = self.z_to_state(z)
        return {
            "h": h,
            "c": torch.zeros_like(h),
            "z_predict": F.linear(z, self.predict_cell.weight_ih, self.predict_cell.bias_ih + self.predict_cell.bias_hh),
            "z_update": F.linear(
                z, self.update_cell.weight_ih[:, self.embed_dim :], self.update_cell.bias_ih + self.update_cell.bias_hh
            ),
        }

    def _consume(self, words: Tensor, keep: Tensor, state: Dict[str, Tensor]) -> Tensor:
        """Run predict+update over word inputs (B, T); returns h_1..h_T (B, T, H)."""
        emb = self.dropout_in(self.embed_tokens(words))
        w_in = self.update_cell.weight_ih[:, : self.embed_dim]
        gates_in = F.linear(emb, w_in) * keep.unsqueeze(-1)
        if self.dropped_input == "unk" and self.training and self.mode != "none":
            unk = F.linear(self.embed_tokens.weight[self.unk_idx], w_in)
            gates_in = gates_in + (1.0 - keep).unsqueeze(-1) * unk * words.ne(self.padding_idx).unsqueeze(-1)
        h, c = state["h"], state["c"]
        out = []
        for t in range(words.size(1)):
            h, c = _lstm_step(state["z_predict"] + F.linear(h, self.predict_cell.weight_hh), c)
            h, c = _lstm_step(gates_in[:, t] + state["z_update"] + F.linear(h, self.update_cell.weight_hh), c)
            out.append(h)
        state["h"], state["c"] = h, c
        return torch.stack(out, 1) if out else state["h"].new_zeros(words.size(0), 0, self.hidden_dim)

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None, features_only=False, **kwargs):
        x, extra = self.extract_features(prev_output_tokens, encoder_out, incremental_state)
        if not features_only:
            x = self.output_layer(x)
        return x, extra

    def extract_features(self, prev_output_tokens, encoder_out=None, incremental_state=None, **kwargs):
        """prev_output_tokens = BOS(EOS) x_1 .. x_{L-1}; features (B, L, H) = dropout(h_0 .. h_{L-1})."""
        extra: Dict[str, object] = {"attn": [None]}  # no attention (fairseq's search reads the key)
        if incremental_state is not None:
            state = self.get_incremental_state(incremental_state, "state")
            if state is None:
                state = self._init_state(encoder_out["z"][0])
                words = prev_output_tokens[:, 1:]
                first = [state["h"]] if words.size(1) == 0 else []
            else:
                words = prev_output_tokens[:, -1:]
                first = []
            hs = self._consume(words, words.ne(self.padding_idx).to(state["h"].dtype), state)
            h = first[0].unsqueeze(1) if first else hs[:, -1:]
            self.set_incremental_state(incremental_state, "state", state)
            return self.dropout_out(h), extra
        state = self._init_state(encoder_out["z"][0])
        h0 = state["h"]
        words = prev_output_tokens[:, 1:]
        keep, stats = self.keep_mask(words)
        hs = self._consume(words, keep, state)
        extra.update(stats)
        extra["keep"] = keep.detach()
        extra["valid_inputs"] = words.ne(self.padding_idx)
        return self.dropout_out(torch.cat([h0.unsqueeze(1), hs], 1)), extra

    def output_layer(self, features: Tensor) -> Tensor:
        return F.linear(features, self.output_projection.weight, self.output_mask.to(features.dtype))

    def output_nll(self, features: Tensor, target: Tensor) -> Tensor:
        """Summed -log p(target) for rows of ``features`` (N, H), fused output layer + loss."""
        return linear_cross_entropy(features, self.output_projection.weight, self.output_mask, target)

    def reorder_incremental_state(self, incremental_state, new_order: Tensor):
        state = self.get_incremental_state(incremental_state, "state")
        if state is None:
            return
        self.set_incremental_state(incremental_state, "state", {k: v.index_select(0, new_order) for k, v in state.items()})

    def max_positions(self):
        return self.max_target_positions


@register_model("awd", dataclass=AwdConfig)
class AwdModel(SentenceVAEBaseModel):
    """AWD sequence VAE (see the module docstring)."""

    MODEL_NAME = "this AWD"

    @classmethod
    def build_model(cls, cfg: AwdConfig, task):
        check_awd_config(cfg)
        d = task.source_dictionary
        return cls(cfg, AwdEncoder(cfg, d), AwdDecoder(cfg, d))

    def forward(self, src_tokens, src_lengths, prev_output_tokens, features_only: bool = False, **kwargs):
        encoder_out = self.encoder(src_tokens, src_lengths=src_lengths)
        x, extra = self.decoder(prev_output_tokens, encoder_out=encoder_out, features_only=features_only)
        extra["mu"], extra["logvar"], extra["z"] = encoder_out["mu"][0], encoder_out["logvar"][0], encoder_out["z"][0]
        return x, extra


HIDDEN_2048 = dict(encoder_hidden_dim=2048, decoder_hidden_dim=2048, adversary_hidden_dim=2048)

# arch ``awd`` = the AwdConfig defaults (SNLI-sized: hidden 1024, R 0.2)


@register_model_architecture("awd", "awd_ptb")
def awd_ptb(cfg):
    """PTB: hidden 2048 (the paper increased the decoder LSTM from 1024 to 2048 except on
    SNLI; the authors' code uses one hidden size for all LSTMs), R = 0.2 (best on PTB)."""
    set_arch_defaults(cfg, AwdConfig, **HIDDEN_2048, word_dropout_rate=0.2)


@register_model_architecture("awd", "awd_snli")
def awd_snli(cfg):
    """SNLI: hidden 1024, R = 0.3."""
    set_arch_defaults(cfg, AwdConfig, word_dropout_rate=0.3)


@register_model_architecture("awd", "awd_yahoo")
def awd_yahoo(cfg):
    """Yahoo: hidden 2048, R = 0.3."""
    set_arch_defaults(cfg, AwdConfig, **HIDDEN_2048, word_dropout_rate=0.3)


@register_model_architecture("awd", "awd_yelp")
def awd_yelp(cfg):
    """Yelp: hidden 2048, R = 0.3."""
    set_arch_defaults(cfg, AwdConfig, **HIDDEN_2048, word_dropout_rate=0.3)


@register_model_architecture("awd", "awd_tiny")
def awd_tiny(cfg):
    """A small model for tests and the demo."""
    set_arch_defaults(cfg, AwdConfig, embed_dim=32, encoder_hidden_dim=64, decoder_hidden_dim=64, latent_dim=8,
                      adversary_embed_dim=32, adversary_hidden_dim=64, decoder_dropout_out=0.3)  # fmt: skip
