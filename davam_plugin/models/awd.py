"""AWD: a Gaussian sequence VAE whose decoder inputs are dropped by a learned adversary.

Miladinovic et al., "Learning to Drop Out: An Adversarial Approach to Training Sequence VAEs".

Encoder: x_1..x_n EOS -> embeddings -> LSTM -> last state h -> Linear(H -> 2Z, no bias)
-> [mu; log sigma^2], q(z|x) = N(mu, diag sigma^2), z = mu + sigma * eps; prior N(0, I).

Double-LSTM decoder (authors' code): the state starts at (h_0, c_0) = (W_z z, 0) (no bias); each
word input x_i moves it on by two cells,

    (h', c')   = LSTM_predict(z, (h_{i-1}, c_{i-1}))                      ("predict" cell)
    (h_i, c_i) = LSTM_update([keep_i * emb(x_i); z], (h', c'))            ("update" cell)
    p(next word | inputs so far, z) = softmax(W_o dropout(h_i))

With the authors' <s> step (the default) the word inputs are x_0 = <s>, x_1..x_n (fairseq's
BOS symbol, the EOS id at prev_output_tokens[:, 0]): y_1 is predicted from h_1, the state after
consuming <s>, and y_{i+1} (x_{i+1} or the final EOS) from h_{i+1}; h_0 itself is never an output
state. With ``--decoder-no-bos-step`` (how this project's AWD worked before the option existed)
the inputs are x_1..x_n and y_1 is predicted straight from h_0. EOS is never an input. The
recurrence runs in :func:`davam_plugin.modules.double_lstm_recurrence.double_lstm_recurrence`.

The authors' encoder and decoder read one embedding table (``--separate-decoder-embeddings``
gives the decoder its own). The word inputs (<s> included when it is one) are subject to word
dropout during training, ``--word-dropout-mode``:

* ``adversarial``: an adversary (own embedding and LSTM over the word inputs, Linear -> mean
  mu_s, optionally a log-variance) samples scores s_i = mu_s,i + sigma_s,i * eps; the K = round(R T)
  lowest-scored inputs of each sentence are dropped (keep_i = 0) with a straight-through
  hard mask whose backward is the capped-simplex projection
  (:func:`davam_plugin.modules.relaxed_topk.drop_lowest_k`), and the gradient into the
  adversary is reversed (:func:`davam_plugin.modules.gradient_reversal.grad_reverse`), so
  the adversary *minimises* the ELBO the VAE maximises. Its regulariser
  sum_i KL(N(mu_s,i, sigma_s,i^2) || N(0, 1)) is returned for the criterion (weight lambda).
* ``uniform``: classic word dropout with probability R, drawn once per time step for the whole
  batch (``--uniform-dropout-unit timestep``, authors) or for each input
  (``--uniform-dropout-unit token``).
* ``none``: the unregularised VAE.

A dropped input becomes the zero embedding (``--dropped-input zero``, the authors' adversary)
or the embedding of <unk> (``--dropped-input unk``, the authors' uniform word dropout). The
adversary plays no role in eval mode: validation, generation and evaluation never drop inputs.

Because keep_i is a scalar per position, keep_i * emb(x_i) W^T = keep_i * (emb(x_i) W^T): the
input products of all words and the z products are computed once per batch; the recurrence
only adds h W_hh^T per cell.

Checkpoints saved before ``--decoder-no-bos-step``, ``--separate-decoder-embeddings`` and
``--uniform-dropout-unit`` existed (their config lacks the fields) load and behave as they did:
no <s> step, separate tables, per-token uniform dropout (:meth:`AwdModel.load_state_dict`).
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq import utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import (
    FairseqEncoder,
    FairseqIncrementalDecoder,
    register_model,
    register_model_architecture,
)
from torch import Tensor

from davam_plugin.metrics import at_least_fp32
from davam_plugin.models.davam import output_mask
from davam_plugin.models.base import PriorSampling, SentenceVAEBaseModel, set_arch_defaults
from davam_plugin.modules.double_lstm_recurrence import double_lstm_recurrence
from davam_plugin.modules.gradient_reversal import grad_reverse
from davam_plugin.modules.linear_cross_entropy import linear_cross_entropy
from davam_plugin.modules.mask_dropout import MaskDropout
from davam_plugin.modules.precision import run_lstm
from davam_plugin.modules.relaxed_topk import drop_lowest_k, k_per_sentence

WORD_DROPOUT_MODES = ChoiceEnum(["adversarial", "uniform", "none"])
DROPPED_INPUTS = ChoiceEnum(["zero", "unk"])
UNIFORM_DROPOUT_UNITS = ChoiceEnum(["timestep", "token"])


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
    uniform_dropout_unit: UNIFORM_DROPOUT_UNITS = field(
        default="timestep",
        metadata={"help": "--word-dropout-mode uniform: drop each time step for the whole batch (authors) "
                          "or each token"},  # fmt: skip
    )
    decoder_no_bos_step: bool = field(
        default=False,
        metadata={"help": "predict the first word from h_0 = W_z z instead of after feeding <s> through one "
                          "Double-LSTM step (authors: the <s> step)"},  # fmt: skip
    )
    separate_decoder_embeddings: bool = field(
        default=False, metadata={"help": "the decoder gets its own input embedding table (authors: the encoder's)"}
    )
    adversary_embed_dim: int = field(default=512, metadata={"help": "adversary embedding dimension"})
    adversary_hidden_dim: int = field(default=1024, metadata={"help": "adversary LSTM hidden size"})
    adversary_embed_init_scale: float = field(
        default=0.01, metadata={"help": "adversary embedding ~ U(-s, s) (authors: 0.01)"}
    )
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
    if awd_opt(cfg, "adversary_embed_init_scale") < 0:
        raise SystemExit(f"error: --adversary-embed-init-scale must be >= 0, got {cfg.adversary_embed_init_scale}")


# what AWD did before these options existed: configs saved then lack the fields
LEGACY_BEHAVIOUR = {"decoder_no_bos_step": True, "separate_decoder_embeddings": True, "uniform_dropout_unit": "token"}


def awd_opt(cfg, name: str):
    """A config value; a config written before the field existed (missing or None) gets what
    AWD did then (``LEGACY_BEHAVIOUR``; the adversary's embedding was initialised like the
    others, U(+-embed_init_scale))."""
    value = getattr(cfg, name, None)
    if value is not None:
        return value
    if name == "adversary_embed_init_scale":
        return cfg.embed_init_scale
    return LEGACY_BEHAVIOUR[name]


def _init_authors(module: nn.Module, scale: float) -> None:
    for name, p in module.named_parameters():
        if "weight" in name:
            p.data.uniform_(-scale, scale)
        else:
            p.data.zero_()


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
        if src_tokens.eq(self.padding_idx)[:, 0].any():
            src_tokens = utils.convert_padding_direction(src_tokens, self.padding_idx, left_to_right=True)
        lengths = src_tokens.ne(self.padding_idx).sum(1)
        states = run_lstm(self.lstm, self.embed_tokens(src_tokens))[0]  # float32 where no bf16 LSTM
        last = states[torch.arange(states.size(0), device=states.device), (lengths - 1).clamp_min(0)]
        mu, logvar = at_least_fp32(self.to_posterior(last)).chunk(2, dim=-1)
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
        """words (B, T) right-padded; returns scores (B, T), per-sentence KL (B,), mu (B, T)
        (T = 0, a batch of empty sentences without the <s> step: nothing to score)."""
        if words.size(1) == 0:
            mu = self.to_score.weight.new_zeros(words.shape)
            return mu, mu.sum(1), mu
        params = at_least_fp32(self.to_score(run_lstm(self.lstm, self.embed_tokens(words))[0]))
        mu = params[..., 0]
        logvar = params[..., 1] if self.learned_variance else torch.zeros_like(mu)
        scores = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
        return scores, (kl * valid).sum(1), mu


class AwdDecoder(FairseqIncrementalDecoder):
    """Double-LSTM decoder with (adversarial / uniform) word dropout; see the module docstring."""

    def __init__(self, cfg: AwdConfig, dictionary, shared_embed: Optional[nn.Embedding] = None):
        """``shared_embed``: the encoder's embedding table, read for the word inputs too
        (authors); None: the decoder has its own (``--separate-decoder-embeddings``)."""
        super().__init__(dictionary)
        E, H, Z = cfg.embed_dim, cfg.decoder_hidden_dim, cfg.latent_dim
        self.embed_dim, self.hidden_dim = E, H
        self.padding_idx = dictionary.pad()
        self.unk_idx = dictionary.unk()
        self.mode = cfg.word_dropout_mode
        self.rate = cfg.word_dropout_rate
        self.dropped_input = cfg.dropped_input
        self.dropout_unit = str(awd_opt(cfg, "uniform_dropout_unit"))
        self.bos_step = not awd_opt(cfg, "decoder_no_bos_step")
        self.tau = cfg.relaxation_temperature
        self._shared_embed = ()
        self.set_shared_embedding(shared_embed)
        self.dropout_in = MaskDropout(cfg.decoder_dropout_in)
        self.dropout_out = MaskDropout(cfg.decoder_dropout_out)
        self.z_to_state = nn.Linear(Z, H, bias=False)
        self.predict_cell = nn.LSTMCell(Z, H)
        self.update_cell = nn.LSTMCell(E + Z, H)
        self.output_projection = nn.Linear(H, len(dictionary), bias=False)
        self.register_buffer("output_mask", output_mask(dictionary), persistent=False)
        self.adversary = AwdAdversary(cfg, len(dictionary), self.padding_idx) if self.mode == "adversarial" else None
        self.max_target_positions = cfg.max_target_positions
        _init_authors(self, cfg.init_scale)  # a shared table is the encoder's, not a submodule here
        if shared_embed is None:
            self.embed_tokens.weight.data.uniform_(-cfg.embed_init_scale, cfg.embed_init_scale)
        if self.adversary is not None:
            scale = awd_opt(cfg, "adversary_embed_init_scale")
            self.adversary.embed_tokens.weight.data.uniform_(-scale, scale)
            for p in self.adversary.parameters():
                p.param_group = "adversary"  # for fairseq's composite optimizer (docs/usage.md)

    # ------------------------------------------------------------------ embeddings
    @property
    def input_embed(self) -> nn.Embedding:
        """The table the word inputs are looked up in: the encoder's when shared, else own."""
        return self._shared_embed[0] if self._shared_embed else self.embed_tokens

    def set_shared_embedding(self, shared_embed: Optional[nn.Embedding]) -> None:
        """Read the word inputs from ``shared_embed`` (the encoder's table, kept out of this
        module's parameters and state dict), or from an own table when None (a fresh one if
        the decoder was sharing; its values are for the caller to set or load)."""
        if shared_embed is not None:
            if "embed_tokens" in self._modules:
                del self._modules["embed_tokens"]
            self._shared_embed = (shared_embed,)
        elif self._shared_embed or "embed_tokens" not in self._modules:
            template = self._shared_embed[0].weight if self._shared_embed else None
            self._shared_embed = ()
            self.embed_tokens = nn.Embedding(len(self.dictionary), self.embed_dim, self.padding_idx)
            if template is not None:
                self.embed_tokens.to(device=template.device, dtype=template.dtype)

    # ------------------------------------------------------------------ word dropout
    def word_inputs(self, prev_output_tokens: Tensor) -> Tensor:
        """The decoder's word inputs (B, T): BOS x_1..x_n with the <s> step, else x_1..x_n."""
        return prev_output_tokens if self.bos_step else prev_output_tokens[:, 1:]

    def keep_mask(self, words: Tensor):
        """Keep mask (B, T) for the word inputs and the adversary's outputs (training only)."""
        valid = words.ne(self.padding_idx)
        dtype = self.input_embed.weight.dtype
        stats: Dict[str, Tensor] = {}
        if not self.training or self.mode == "none" or self.rate == 0.0:
            return valid.to(dtype), stats
        if self.mode == "uniform":
            if self.dropout_unit == "timestep":  # one draw per step for the whole batch (authors)
                keep = (torch.rand(words.size(1), device=words.device) >= self.rate).unsqueeze(0) & valid
            else:
                keep = (torch.rand(words.shape, device=words.device) >= self.rate) & valid
            return keep.to(dtype), stats
        k = k_per_sentence(valid.sum(1), self.rate)
        scores, kl, mu = self.adversary(words, valid.to(dtype))
        if words.size(1) == 0:  # nothing to drop (empty sentences without the <s> step)
            return valid.to(dtype), {"score_kl": kl, "score_mu": mu, "scores": scores, "k": k}
        keep = drop_lowest_k(scores.float(), k, valid, self.tau).to(scores.dtype)
        stats = {"score_kl": kl, "score_mu": mu, "scores": scores.detach(), "k": k}
        # the adversary minimises what the VAE maximises: reverse its gradient
        return grad_reverse(keep), stats

    # ------------------------------------------------------------------ decoding
    def _init_state(self, z: Tensor):
        # z comes from the float32 posterior; a decoder cast to half width (fairseq's --fp16,
        # model.half() or .bfloat16()) takes it in its own dtype (autocast would cast it anyway)
        z = z.to(self.z_to_state.weight.dtype)
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
        embed = self.input_embed
        emb = self.dropout_in(embed(words))
        w_in = self.update_cell.weight_ih[:, : self.embed_dim]
        gates_in = F.linear(emb, w_in) * keep.unsqueeze(-1)
        if self.dropped_input == "unk" and self.training and self.mode != "none":
            unk = F.linear(embed.weight[self.unk_idx], w_in)
            gates_in = gates_in + (1.0 - keep).unsqueeze(-1) * unk * words.ne(self.padding_idx).unsqueeze(-1)
        hs, state["h"], state["c"] = double_lstm_recurrence(
            gates_in, state["z_predict"], state["z_update"], state["h"], state["c"],
            self.predict_cell.weight_hh, self.update_cell.weight_hh,
        )  # fmt: skip
        return hs

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None, features_only=False, **kwargs):
        x, extra = self.extract_features(prev_output_tokens, encoder_out, incremental_state)
        if not features_only:
            x = self.output_layer(x)
        return x, extra

    def extract_features(self, prev_output_tokens, encoder_out=None, incremental_state=None, **kwargs):
        """prev_output_tokens = BOS(EOS) x_1 .. x_{L-1}; features (B, L, H) = dropout(h_1 .. h_L)
        with the <s> step (BOS consumed first), dropout(h_0 .. h_{L-1}) without."""
        extra: Dict[str, object] = {"attn": [None]}  # no attention (fairseq's search reads the key)
        if incremental_state is not None:
            state = self.get_incremental_state(incremental_state, "state")
            if state is None:
                state = self._init_state(encoder_out["z"][0])
                words = self.word_inputs(prev_output_tokens)
            else:
                words = prev_output_tokens[:, -1:]
            h0 = state["h"]
            hs = self._consume(words, words.ne(self.padding_idx).to(self.input_embed.weight.dtype), state)
            h = hs[:, -1:] if hs.size(1) > 0 else h0.unsqueeze(1)  # no input yet: h_0 (no <s> step)
            self.set_incremental_state(incremental_state, "state", state)
            return self.dropout_out(h), extra
        state = self._init_state(encoder_out["z"][0])
        h0 = state["h"]
        words = self.word_inputs(prev_output_tokens)
        keep, stats = self.keep_mask(words)
        hs = self._consume(words, keep, state)
        extra.update(stats)
        extra["keep"] = keep.detach()
        extra["valid_inputs"] = words.ne(self.padding_idx)
        features = hs if self.bos_step else torch.cat([h0.unsqueeze(1).to(hs.dtype), hs], 1)
        return self.dropout_out(features), extra

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
    criterion_name = "awd_elbo"

    def gradient_statistics(self) -> Dict[str, float]:
        """``adversary_grad_norm``: L2 norm of the adversary's gradient (after the gradient
        reversal and the lambda-weighted score KL), the AWD paper's Fig. 3 quantity."""
        adversary = self.decoder.adversary
        if adversary is None:
            return {}
        grads = [p.grad.detach().float() for p in adversary.parameters() if p.grad is not None]
        if not grads:
            return {}
        return {"adversary_grad_norm": float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))}

    @classmethod
    def build_model(cls, cfg: AwdConfig, task):
        check_awd_config(cfg)
        d = task.source_dictionary
        encoder = AwdEncoder(cfg, d)
        shared = None if awd_opt(cfg, "separate_decoder_embeddings") else encoder.embed_tokens
        return cls(cfg, encoder, AwdDecoder(cfg, d, shared_embed=shared))

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        """Load weights; ``model_cfg`` is the configuration they were saved with (fairseq's
        loaders and the plugin's pass the checkpoint's own). fairseq builds the model from that
        configuration merged with today's defaults, so a checkpoint saved before the decoder
        options existed arrives in a model with the authors' behaviour; the missing fields of
        ``model_cfg`` switch it back to what such checkpoints did (``awd_opt``)."""
        if model_cfg is not None:
            self.decoder.bos_step = not awd_opt(model_cfg, "decoder_no_bos_step")
            self.decoder.dropout_unit = str(awd_opt(model_cfg, "uniform_dropout_unit"))
            separate = awd_opt(model_cfg, "separate_decoder_embeddings")
            self.decoder.set_shared_embedding(None if separate else self.encoder.embed_tokens)
        own_table = "decoder.embed_tokens.weight" in state_dict
        if strict and own_table == bool(self.decoder._shared_embed):
            raise SystemExit(
                "error: the checkpoint's decoder " + ("has its own" if own_table else "shares the encoder's")
                + " embedding table, the model " + ("shares the encoder's" if own_table else "has its own")
                + ": " + ("pass --separate-decoder-embeddings (checkpoints saved before that option existed also "
                          "need --decoder-no-bos-step --uniform-dropout-unit token to train as they did)"
                          if own_table else "drop --separate-decoder-embeddings")
            )  # fmt: skip
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    def forward(self, src_tokens, src_lengths, prev_output_tokens, features_only: bool = False, **kwargs):
        encoder_out = self.encoder(src_tokens, src_lengths=src_lengths)
        x, extra = self.decoder(prev_output_tokens, encoder_out=encoder_out, features_only=features_only)
        extra["mu"], extra["logvar"], extra["z"] = encoder_out["mu"][0], encoder_out["logvar"][0], encoder_out["z"][0]
        return x, extra

    def set_posterior_mean(self, enabled: bool) -> None:
        self.encoder.use_posterior_mean = enabled

    def prior_net_input(self, bsz: int, sampling: PriorSampling) -> Dict:
        """One z per sentence from the prior N(0, I), scaled by the temperature:
        z = temperature * eps, eps ~ N(0, I)."""
        param = next(self.parameters())
        z = torch.randn(bsz, self.encoder.latent_dim, device=param.device) * sampling.temperature
        return {"z": z.to(param.dtype)}


HIDDEN_2048 = dict(encoder_hidden_dim=2048, decoder_hidden_dim=2048, adversary_hidden_dim=2048)

# options added after AWD checkpoints had been saved
NEWER_OPTIONS = tuple(LEGACY_BEHAVIOUR) + ("adversary_embed_init_scale",)


def set_awd_arch_defaults(cfg, **values) -> None:
    """``set_arch_defaults`` that leaves NEWER_OPTIONS unset. fairseq calls a named arch on the
    command line (a new run: fairseq's conversion of the command line then gives the unset
    options their dataclass defaults, the authors' behaviour) and again on the config stored in
    a checkpoint when it loads one (an old checkpoint's config lacks them: ``awd_opt`` then
    keeps the behaviour it was trained with)."""
    unset = [name for name in NEWER_OPTIONS if not hasattr(cfg, name)]
    set_arch_defaults(cfg, AwdConfig, **values)
    for name in unset:
        delattr(cfg, name)


# arch ``awd`` = the AwdConfig defaults (SNLI-sized: hidden 1024, R 0.2)


@register_model_architecture("awd", "awd_ptb")
def awd_ptb(cfg):
    """PTB: hidden 2048 (the paper increased the decoder LSTM from 1024 to 2048 except on
    SNLI; the authors' code uses one hidden size for all LSTMs), R = 0.2 (best on PTB)."""
    set_awd_arch_defaults(cfg, **HIDDEN_2048, word_dropout_rate=0.2)


@register_model_architecture("awd", "awd_snli")
def awd_snli(cfg):
    """SNLI: hidden 1024, R = 0.3."""
    set_awd_arch_defaults(cfg, word_dropout_rate=0.3)


@register_model_architecture("awd", "awd_yahoo")
def awd_yahoo(cfg):
    """Yahoo: hidden 2048, R = 0.3."""
    set_awd_arch_defaults(cfg, **HIDDEN_2048, word_dropout_rate=0.3)


@register_model_architecture("awd", "awd_yelp")
def awd_yelp(cfg):
    """Yelp: hidden 2048, R = 0.3."""
    set_awd_arch_defaults(cfg, **HIDDEN_2048, word_dropout_rate=0.3)


@register_model_architecture("awd", "awd_tiny")
def awd_tiny(cfg):
    """A small model for tests and the demo."""
    set_awd_arch_defaults(cfg, embed_dim=32, encoder_hidden_dim=64, decoder_hidden_dim=64, latent_dim=8,
                          adversary_embed_dim=32, adversary_hidden_dim=64, decoder_dropout_out=0.3)  # fmt: skip
