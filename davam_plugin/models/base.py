"""Common base of the sentence VAEs trained with task ``sentence_vae`` (DAVAM, AWD).

An encoder-decoder model that keeps its update counter (schedules in the criterions read
``model.num_updates``, which fairseq sets every step and when a checkpoint is restored) and
checks that checkpoints are loaded with the dictionary they were trained with
(:mod:`davam_plugin.models.dictionary_version`).

Each model class owns what the task needs to know about it (the task has no per-model table):
``criterion_name`` (the registered criterion it trains with); and :meth:`SentenceVAEBaseModel.prior_net_input`, the latents that
``--sample-from-prior`` decodes, drawn from the model's prior with the task's
:class:`PriorSampling` settings.
"""

from dataclasses import dataclass, fields
from typing import Callable, Dict

from fairseq.models import FairseqEncoderDecoderModel

from davam_plugin.models.dictionary_version import DictionaryVersionMixin


def set_arch_defaults(cfg, config_cls, **values) -> None:
    """A named architecture: set ``values`` where the command line did not, then every other
    missing field of ``config_cls`` to its dataclass default."""
    for k, v in values.items():
        if not hasattr(cfg, k):
            setattr(cfg, k, v)
    for f in fields(config_cls):
        if not f.name.startswith("_") and not hasattr(cfg, f.name):
            setattr(cfg, f.name, f.default)


@dataclass
class PriorSampling:
    """What the task provides to :meth:`SentenceVAEBaseModel.prior_net_input`:

    * ``temperature`` (``--prior-temperature``), ``topk`` (``--prior-topk``) and ``max_len``
      (at most this many latents: ``--prior-max-len`` or ``--max-sentence-length``);
    * ``training_lengths(n)``: n sentence lengths (words + EOS) drawn from the training split;
    * ``stage_two_prior(model)``: the ``--prior-path`` prior on the model's device, checked
      against its codebook (a one-line error when there is none)."""

    temperature: float
    topk: int
    max_len: int
    training_lengths: Callable
    stage_two_prior: Callable


class SentenceVAEBaseModel(DictionaryVersionMixin, FairseqEncoderDecoderModel):
    criterion_name: str = ""  # the registered criterion this model trains with

    def __init__(self, cfg, encoder, decoder):
        super().__init__(encoder, decoder)
        self.cfg = cfg
        self.num_updates = 0
        self._register_dictionary_version(encoder.dictionary)  # checked when a checkpoint is loaded

    def set_num_updates(self, num_updates):
        self.num_updates = num_updates
        super().set_num_updates(num_updates)

    def max_positions(self):
        return (self.encoder.max_positions(), self.decoder.max_positions())

    def gradient_statistics(self) -> Dict[str, float]:
        """Called by the task after each training backward, before the optimizer step: numbers
        about the gradients the model wants logged (name -> value for the batch's summed loss;
        the task divides them by the batch's sample size, as fairseq normalises gradients).
        None by default."""
        return {}

    def set_posterior_mean(self, enabled: bool) -> None:
        """Gaussian latents: decode from the posterior mean (True) or from a sample of q(z|x)
        (False, training's behaviour). The task sets it for generation; models without
        Gaussian latents ignore it."""

    def prior_net_input(self, bsz: int, sampling: PriorSampling) -> Dict:
        """``net_input`` entries that make the encoder output ``bsz`` latents drawn from the
        model's prior (``--sample-from-prior``); each model class says how."""
        raise SystemExit(f"error: --sample-from-prior does not know the prior of {type(self).__name__}")
