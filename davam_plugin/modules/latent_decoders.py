"""LSTM decoders over a sequence of latents (DAVAM and its ablations): an attentive decoder
and an attention-free one, sharing embeddings, the latent-to-memory projection, the output
layer and fairseq's incremental-state handling (:class:`LatentLSTMDecoder`).

Both read the latents z_1..z_T (codebook vectors e_{z_t} or Gaussian samples, ``encoder_out
["latents"]``) only through the memory m_t = W_m z_t (``code_to_memory``, no bias), and
start from c_0 = m_T (the last real position), h_0 = tanh(c_0).

* :class:`AttentiveLatentDecoder` (paper Eq. 3)::

      a_i   = softmax_t(v^T tanh(W_q h_{i-1} + W_k m_t + b))        (Bahdanau)
      ctx_i = sum_t a_{i,t} m_t
      h_i, c_i = LSTMCell([emb(y_{i-1}); ctx_i; h_0], (h_{i-1}, c_{i-1}))
      p(y_i | y_<i, z) = softmax(W_o [dropout(h_i); ctx_i])

  computed with the fused recurrence of :mod:`davam_plugin.modules.attentive_lstm_recurrence`
  (the products that do not depend on h_{i-1} once per batch).
* :class:`AttentionFreeLatentDecoder` (DAVAM-q)::

      h_i, c_i = LSTM([emb(y_{i-1}); h_0], (h_{i-1}, c_{i-1})),   p(y_i | .) = softmax(W_o dropout(h_i))

  which reads only the last position's latent.

Parameter names (``embed_tokens``, ``code_to_memory``, ``attention``, ``cell``, ``lstm``,
``output_projection``) are those of the decoder before the split, so checkpoints load as they
are.
"""

from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import FairseqIncrementalDecoder
from torch import Tensor

from davam_plugin.modules.attentive_lstm_recurrence import attentive_lstm_recurrence
from davam_plugin.modules.bahdanau_attention import BahdanauAttention
from davam_plugin.modules.linear_cross_entropy import linear_cross_entropy
from davam_plugin.modules.mask_dropout import MaskDropout
from davam_plugin.modules.precision import run_lstm


def output_mask(dictionary) -> Tensor:
    """Additive output bias: 0 for real symbols, -inf for <pad>, <s> and the ``madeupword``
    entries fairseq-preprocess adds to round the vocabulary up, so that no search or sampler
    can emit them and probabilities are normalised over symbols that can occur."""
    mask = torch.zeros(len(dictionary))
    for i, sym in enumerate(dictionary.symbols):
        if i in (dictionary.pad(), dictionary.bos()) or sym.startswith("madeupword"):
            mask[i] = float("-inf")
    return mask


def init_uniform(module: nn.Module, scale: float, embed_scale: float) -> None:
    """The authors' initialisation: U(-scale, scale) everywhere, U(-embed_scale, ..) for embeddings."""
    for p in module.parameters():
        p.data.uniform_(-scale, scale)
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            m.weight.data.uniform_(-embed_scale, embed_scale)


class LatentLSTMDecoder(FairseqIncrementalDecoder):
    """What both decoders share (module docstring). A subclass builds its recurrent layers in
    :meth:`build_layers` (returning the width of its output features), computes the per-batch
    state in :meth:`prepare` and runs the recurrence in :meth:`step`; the incremental-state
    preamble, the output layer and the fused loss are here."""

    attention_free = False

    def __init__(self, cfg, dictionary):
        super().__init__(dictionary)
        E, H = cfg.decoder_embed_dim, cfg.decoder_hidden_dim
        self.hidden_dim = H
        self.embed_dim = E
        self.padding_idx = dictionary.pad()
        self.embed_tokens = nn.Embedding(len(dictionary), E, self.padding_idx)
        self.dropout_in = MaskDropout(cfg.decoder_dropout_in)
        self.dropout_out = MaskDropout(cfg.decoder_dropout_out)
        self.code_to_memory = nn.Linear(cfg.code_dim, H, bias=False)
        features = self.build_layers(cfg)
        self.output_projection = nn.Linear(features, len(dictionary), bias=False)
        self.register_buffer("output_mask", output_mask(dictionary), persistent=False)
        self.max_target_positions = cfg.max_target_positions
        init_uniform(self, cfg.init_scale, cfg.embed_init_scale)

    def build_layers(self, cfg) -> int:
        raise NotImplementedError

    def prepare(self, encoder_out: Dict[str, List[Tensor]]) -> Dict[str, Tensor]:
        """The state at step 0 (everything that depends on the latents only), once per batch."""
        raise NotImplementedError

    def step(self, emb: Tensor, state: Dict[str, Tensor]):
        """(features (B, L, F), extra, next state) for the embedded inputs ``emb`` (B, L, E)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- fairseq API
    def forward(
        self,
        prev_output_tokens: Tensor,
        encoder_out: Optional[Dict[str, List[Tensor]]] = None,
        incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
        features_only: bool = False,
        **kwargs,
    ):
        x, extra = self.extract_features(prev_output_tokens, encoder_out, incremental_state)
        if not features_only:
            x = self.output_layer(x)
        return x, extra

    def extract_features(self, prev_output_tokens, encoder_out=None, incremental_state=None, **kwargs):
        """Features for the output layer and {"attn": [attention (B, L, T) or None]}; in fairseq's
        search (``incremental_state``) one step, from the state the previous step left."""
        state = None
        if incremental_state is not None:
            state = self.get_incremental_state(incremental_state, "state")
            prev_output_tokens = prev_output_tokens[:, -1:]
        if state is None:
            state = self.prepare(encoder_out)
        emb = self.dropout_in(self.embed_tokens(prev_output_tokens))
        features, extra, state = self.step(emb, state)
        if incremental_state is not None:
            self.set_incremental_state(incremental_state, "state", state)
        return features, extra

    def output_nll(self, features: Tensor, target: Tensor) -> Tensor:
        """Summed -log p(target) for rows of ``features`` (N, F): the output layer and the
        cross-entropy fused (see :mod:`davam_plugin.modules.linear_cross_entropy`)."""
        return linear_cross_entropy(features, self.output_projection.weight, self.output_mask, target)

    def output_layer(self, features: Tensor) -> Tensor:
        """Logits W_o features; symbols that never occur in data get -inf (see output_mask)."""
        return F.linear(features, self.output_projection.weight, self.output_mask.to(features.dtype))

    def reorder_incremental_state(self, incremental_state, new_order: Tensor):
        state = self.get_incremental_state(incremental_state, "state")
        if state is None:
            return
        state = {k: v.index_select(0, new_order) for k, v in state.items()}
        self.set_incremental_state(incremental_state, "state", state)

    def max_positions(self):
        return self.max_target_positions


class AttentiveLatentDecoder(LatentLSTMDecoder):
    """Attentive LSTM decoder over the latent sequence (module docstring); features
    [dropout(h_i); ctx_i] (B, L, 2H).

    Efficient arrangement (same maths; ``forward_unfused`` is the plain ``nn.LSTMCell`` path
    the tests compare with): the attention keys W_k m + b and the LSTM input products of all
    embeddings (W_e emb(y)) and of h_0 (W_0 h_0 + biases) are computed once per batch; inside
    the recurrence only h_{i-1} [W_q; W_hh]^T, the attention and ctx_i W_c^T remain."""

    def build_layers(self, cfg) -> int:
        E, H = self.embed_dim, self.hidden_dim
        self.attention = BahdanauAttention(H, H, cfg.decoder_attention_dim)
        self.cell = nn.LSTMCell(E + 2 * H, H)  # input = [emb(y_{i-1}); ctx_i; h_0]
        return 2 * H

    def prepare(self, encoder_out: Dict[str, List[Tensor]]) -> Dict[str, Tensor]:
        E, H = self.embed_dim, self.hidden_dim
        latents = encoder_out["latents"][0]
        padding_mask = encoder_out["encoder_padding_mask"][0]
        lengths = encoder_out["src_lengths"][0]
        # the memory is also the initial cell state c_0: computed outside autocast (a K = D product)
        with torch.autocast(latents.device.type, enabled=False):
            memory = self.code_to_memory(latents.to(self.code_to_memory.weight.dtype))
        last = (lengths - 1).clamp_min(0)
        c0 = memory[torch.arange(memory.size(0), device=memory.device), last]
        h0 = torch.tanh(c0)
        w_h0 = self.cell.weight_ih[:, E + H :]
        return {
            "h": h0,
            "c": c0,
            "gates_const": F.linear(h0, w_h0, self.cell.bias_ih + self.cell.bias_hh),
            "keys": self.attention.project_memory(memory),
            "memory": memory,
            "mask_bias": torch.zeros_like(padding_mask, dtype=memory.dtype).masked_fill(padding_mask, float("-inf")),
        }

    def step(self, emb: Tensor, state: Dict[str, Tensor]):
        E, H = self.embed_dim, self.hidden_dim
        gates_in = F.linear(emb, self.cell.weight_ih[:, :E])
        w_qhh = torch.cat([self.attention.query_proj.weight, self.cell.weight_hh], dim=0)
        hs, ctxs, attn, state["h"], state["c"] = attentive_lstm_recurrence(
            gates_in + state["gates_const"].unsqueeze(1),
            state["h"],
            state["c"],
            state["keys"],
            state["memory"],
            state["mask_bias"],
            w_qhh,
            self.cell.weight_ih[:, E : E + H],
            self.attention.v,
        )
        features = torch.cat([self.dropout_out(hs), ctxs], dim=-1)
        return features, {"attn": [attn]}, state

    def forward_unfused(self, prev_output_tokens: Tensor, encoder_out: Dict[str, List[Tensor]]):
        """The equations step by step with ``nn.LSTMCell`` and unfused attention (slow; tests)."""
        latents = encoder_out["latents"][0]
        mask = encoder_out["encoder_padding_mask"][0]
        lengths = encoder_out["src_lengths"][0]
        memory = self.code_to_memory(latents)
        c = memory[torch.arange(memory.size(0)), lengths - 1]
        h = h0 = torch.tanh(c)
        emb = self.dropout_in(self.embed_tokens(prev_output_tokens))
        feats = []
        for i in range(prev_output_tokens.size(1)):
            ctx, _ = self.attention(h, memory, mask)
            h, c = self.cell(torch.cat([emb[:, i], ctx, h0], dim=-1), (h, c))
            feats.append(torch.cat([self.dropout_out(h), ctx], dim=-1))
        return self.output_layer(torch.stack(feats, 1))


class AttentionFreeLatentDecoder(LatentLSTMDecoder):
    """LSTM decoder initialised from the last latent, without attention (module docstring);
    features dropout(h_i) (B, L, H). One ``nn.LSTM`` over the whole (known) input sequence in
    training, step by step with state (h, c) in fairseq's search."""

    attention_free = True

    def build_layers(self, cfg) -> int:
        E, H = self.embed_dim, self.hidden_dim
        self.lstm = nn.LSTM(E + H, H, batch_first=True)  # input = [emb(y_{i-1}); h_0]
        return H

    def prepare(self, encoder_out: Dict[str, List[Tensor]]) -> Dict[str, Tensor]:
        """c_0 = m_T = W_m z_T (the latent at the last real position), h_0 = tanh(c_0); only
        that position is read, so the other latents cannot influence the decoder."""
        latents = encoder_out["latents"][0]
        last = (encoder_out["src_lengths"][0] - 1).clamp_min(0)
        z_last = latents[torch.arange(latents.size(0), device=latents.device), last]
        c0 = self.code_to_memory(z_last.to(self.code_to_memory.weight.dtype))
        h0 = torch.tanh(c0)
        return {"h": h0, "c": c0, "h0": h0}

    def step(self, emb: Tensor, state: Dict[str, Tensor]):
        h0 = state["h0"].unsqueeze(1).expand(-1, emb.size(1), -1)
        hs, (h, c) = run_lstm(
            self.lstm,
            torch.cat([emb, h0.to(emb.dtype)], dim=-1),
            (state["h"].unsqueeze(0).contiguous(), state["c"].unsqueeze(0).contiguous()),
        )
        return self.dropout_out(hs), {"attn": [None]}, {"h": h[0], "c": c[0], "h0": state["h0"]}
