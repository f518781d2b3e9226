"""Common base of the sentence VAEs trained with task ``sentence_vae`` (DAVAM, AWD).

An encoder-decoder model that keeps its update counter (schedules in the criterions read
``model.num_updates``, which fairseq sets every step and when a checkpoint is restored) and
checks that checkpoints are loaded with the dictionary they were trained with
(:mod:`davam_plugin.models.dictionary_version`).
"""

from dataclasses import fields

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


class SentenceVAEBaseModel(DictionaryVersionMixin, FairseqEncoderDecoderModel):
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
