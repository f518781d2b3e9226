"""DAVAM stage two: a 1-D gated PixelCNN prior over code sequences.

Fang et al. fit, after stage one, an auto-regressive prior p(z) = prod_t p(z_t | z_<t) to the
code sequences z_1..z_T of the frozen posterior. The network follows the authors' code:

    x_t   = Emb(z_t)                                            (K + 2 rows, width E)
    layer 0: strictly causal gated conv (reads z_{<t}), no identity residual
    layers 1..L-1: causal gated conv (reads layer inputs <= t) + identity residual
    logits_t = Conv1x1(ReLU(Conv1x1(x^L_t)))                     (E -> head -> K + 1)

(:mod:`davam_plugin.modules.gated_causal_conv`). So logits_t depend on z_{<t} only and the
model is trained with input = target.

**Length.** A DAVAM code sequence has one code per encoder position (words + EOS), so its
length T varies. The prior models it: its vocabulary has the K codes plus an end-of-codes
symbol EOC = K, and every training sequence is z_1..z_T EOC, so

    p(z) = prod_{t=1..T} p(z_t | z_<t) * p(EOC | z_1..z_T)

is a distribution over sequences of any length (T >= 1: EOC is never allowed at position
1, a sentence has at least its EOS). Sampling stops at EOC, or forces it after ``max_len``
codes. Index K + 1 is padding (a zero embedding, never predicted).

The prior stores a copy of the stage-one codebook it was fitted to (buffer
``stage_one_codebook``), so generation and evaluation can refuse a prior paired with a
different DAVAM model, and K, D are known when loading it without the stage-one model.
"""

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.dataclass import FairseqDataclass
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from torch import Tensor

from davam_plugin.metrics import at_least_fp32
from davam_plugin.models.base import set_arch_defaults
from davam_plugin.modules.gated_causal_conv import GatedCausalConv1d, pointwise


@dataclass
class DavamPriorConfig(FairseqDataclass):
    prior_embed_dim: int = field(default=512, metadata={"help": "code embedding / convolution width E"})
    prior_layers: int = field(default=15, metadata={"help": "gated causal convolution layers"})
    prior_kernel_size: int = field(default=5, metadata={"help": "convolution kernel width"})
    prior_head_dim: int = field(default=256, metadata={"help": "hidden width of the 1x1 output head"})
    prior_dropout: float = field(default=0.0, metadata={"help": "dropout before the output head"})


def check_prior_config(cfg) -> None:
    for name in ("prior_embed_dim", "prior_layers", "prior_kernel_size", "prior_head_dim"):
        if getattr(cfg, name) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.prior_dropout < 1.0:
        raise SystemExit(f"error: --prior-dropout must be in [0, 1), got {cfg.prior_dropout}")


@register_model("davam_prior", dataclass=DavamPriorConfig)
class DavamPriorModel(BaseFairseqModel):
    """PixelCNN prior over DAVAM code sequences (see module docstring)."""

    trained_with_task = "davam_prior"  # other tasks refuse it (--task sentence_vae)
    description = "the stage-two prior"

    def __init__(self, cfg: DavamPriorConfig, codebook: Tensor):
        super().__init__()
        check_prior_config(cfg)
        self.cfg = cfg
        K = codebook.size(0)
        E = cfg.prior_embed_dim
        self.num_codes = K
        self.eoc = K
        self.pad = K + 1
        self.embed = nn.Embedding(K + 2, E, padding_idx=self.pad)
        self.layers = nn.ModuleList(
            [GatedCausalConv1d(E, cfg.prior_kernel_size, strictly_causal=True, residual=False)]
            + [GatedCausalConv1d(E, cfg.prior_kernel_size) for _ in range(cfg.prior_layers - 1)]
        )
        self.dropout = nn.Dropout(cfg.prior_dropout)
        self.head_hidden = nn.Conv1d(E, cfg.prior_head_dim, 1)
        self.head_out = nn.Conv1d(cfg.prior_head_dim, K + 1, 1)
        self.register_buffer("stage_one_codebook", codebook.detach().float().clone())
        self.num_updates = 0
        # set when built by the davam_prior task: loading a checkpoint then checks that it was
        # fitted to the same stage-one model as the task's --davam-path
        self.verify_codebook_on_load = False

    @classmethod
    def build_model(cls, cfg: DavamPriorConfig, task):
        model = cls(cfg, task.stage_one_codebook())
        model.verify_codebook_on_load = True
        return model

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        fitted = state_dict.get("stage_one_codebook")
        if self.verify_codebook_on_load and fitted is not None:
            ours = self.stage_one_codebook.to(fitted.dtype).cpu()
            if fitted.shape != ours.shape or not torch.equal(fitted.cpu(), ours):
                raise SystemExit(
                    "error: this prior checkpoint was fitted to a different DAVAM model than --davam-path "
                    "(fairseq-validate reads it from the checkpoint; override with "
                    "--model-overrides \"{'davam_path': 'STAGE_ONE.pt'}\")"
                )
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    # ------------------------------------------------------------------ full sequences
    def _head(self, x: Tensor) -> Tensor:
        """Time-major features (..., E) -> logits (..., K + 1)."""
        return pointwise(self.head_out, F.relu(pointwise(self.head_hidden, self.dropout(x))))

    def forward(self, codes: Tensor, **kwargs) -> Tensor:
        """codes (B, T) = z_1..z_T EOC pad.. -> logits (B, T, K + 1); logits[:, t] predict
        codes[:, t] from codes[:, :t]. EOC is masked at position 0."""
        x = self.embed(codes)
        for layer in self.layers:
            x = layer.forward_time_major(x)
        return self._mask_first_eoc(self._head(x), 0)

    def _mask_first_eoc(self, logits: Tensor, position: int) -> Tensor:
        if position == 0:
            # a code sequence has at least one code (the sentence's EOS): EOC impossible first
            bias = torch.zeros(logits.size(-1), dtype=logits.dtype, device=logits.device)
            bias[self.eoc] = float("-inf")
            if logits.dim() == 3:
                logits = torch.cat([logits[:, :1] + bias, logits[:, 1:]], dim=1)
            else:
                logits = logits + bias
        return logits

    def log_probs(self, codes: Tensor) -> Tensor:
        """Per-position log p(codes[:, t] | codes[:, :t]) (B, T), 0 at padding."""
        logits = self.forward(codes)
        logp = F.log_softmax(at_least_fp32(logits), dim=-1)
        pad = codes.eq(self.pad)
        lp = logp.gather(-1, codes.masked_fill(pad, 0).unsqueeze(-1)).squeeze(-1)
        return lp.masked_fill(pad, 0.0)

    # ------------------------------------------------------------------ incremental sampling
    def init_state(self, batch_size: int, device=None, dtype=None):
        device = device or self.embed.weight.device
        dtype = dtype or self.embed.weight.dtype
        x = torch.zeros(batch_size, self.cfg.prior_embed_dim, 1, device=device, dtype=dtype)
        return [layer.init_cache(x) for layer in self.layers]

    def step(self, prev_codes: Optional[Tensor], state, position: int):
        """Logits (B, K + 1) for ``position`` given the code at ``position - 1`` (None at 0);
        ``state`` (from :meth:`init_state`) is updated in place. O(layers) per position."""
        if prev_codes is None:
            x = torch.zeros_like(state[0][:, :, 0])
        else:
            x = self.embed(prev_codes)
        for i, layer in enumerate(self.layers):
            x, state[i] = layer.step(x, state[i])
        return self._mask_first_eoc(self._head(x), position)

    @torch.no_grad()
    def sample(
        self,
        num: int,
        max_len: int,
        temperature: float = 1.0,
        topk: int = 0,
        return_logits: bool = False,
        allowed: Optional[Tensor] = None,
    ):
        """Draw ``num`` code sequences. Returns codes (num, T_max) padded with ``self.pad``
        (EOC not included), lengths (num,), and with ``return_logits`` the raw step logits
        (num, T_max + 1, K + 1) for every position up to and including the EOC position.
        ``allowed`` (bool, K): codes outside it are never drawn (their probability goes to the
        others in proportion); the end symbol is always allowed. None or all True: no change."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        device = self.embed.weight.device
        state = self.init_state(num, device)
        out = torch.full((num, max_len + 1), self.pad, dtype=torch.long, device=device)
        finished = torch.zeros(num, dtype=torch.bool, device=device)
        lengths = torch.full((num,), max_len, dtype=torch.long, device=device)
        all_logits = []
        prev = None
        banned = None
        if allowed is not None and not bool(allowed.all()):
            banned = torch.cat([~allowed.to(device=device, dtype=torch.bool), allowed.new_zeros(1, dtype=torch.bool).to(device)])
        for t in range(max_len + 1):
            logits = self.step(prev, state, t).float()
            if return_logits:
                all_logits.append(logits)
            scores = logits / temperature
            if banned is not None:
                scores = scores.masked_fill(banned, float("-inf"))
            if t == max_len:  # length cap: end here
                z = torch.full_like(lengths, self.eoc)
            else:
                if 0 < topk < scores.size(-1):
                    kth = scores.topk(topk, dim=-1).values[:, -1:]
                    scores = scores.masked_fill(scores < kth, float("-inf"))
                z = torch.multinomial(F.softmax(scores, dim=-1), 1).squeeze(1)
            z = z.masked_fill(finished, self.pad)
            out[:, t] = z
            ended = z.eq(self.eoc)
            lengths = torch.where(ended, torch.full_like(lengths, t), lengths)
            finished |= ended
            if bool(finished.all()):
                break
            prev = z
        T = int(lengths.max())
        codes = out[:, :T].masked_fill(out[:, :T].eq(self.eoc), self.pad)
        if return_logits:
            return codes, lengths, torch.stack(all_logits, dim=1)
        return codes, lengths

    def set_num_updates(self, num_updates):
        self.num_updates = num_updates
        super().set_num_updates(num_updates)

    def max_positions(self):
        return None


# The arch ``davam_prior`` (registered by fairseq with the model) uses the config defaults,
# the authors' prior: E 512, 15 gated layers of kernel 5, head 256 (the paper's "16 layers").


@register_model_architecture("davam_prior", "davam_prior_tiny")
def davam_prior_tiny(cfg):
    """A small prior for tests and the demo."""
    set_arch_defaults(cfg, DavamPriorConfig, prior_embed_dim=64, prior_layers=4, prior_kernel_size=3, prior_head_dim=64)
