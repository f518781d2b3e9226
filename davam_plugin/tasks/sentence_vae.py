"""Task ``sentence_vae``: sentence auto-encoding on ``fairseq-preprocess --only-source`` data.

Each line of the corpus is one example ``x = w_1 .. w_n EOS``. The encoder reads x, the
decoder predicts the target x (words + EOS) from the shifted input ``EOS w_1 .. w_n``
(fairseq's convention: EOS doubles as BOS). Token counts everywhere are target tokens,
words + EOS. Empty lines become the one-token sentence ``EOS``.

Lines longer than ``--max-sentence-length`` tokens (EOS included) are truncated to that
length, keeping the final EOS; the number truncated is logged per split. Truncation (rather
than skipping) keeps one output per input line in validation and generation.

Validation and generation never drop a partial last batch: for every dataset except the one
fairseq's trainer loads for training (with ``combine=True``), the batch-size multiple is
forced to 1 - also when generating from the training split.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from fairseq import utils
from fairseq.data import Dictionary, LanguagePairDataset, ListDataset, data_utils
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task

from davam_plugin.data import TruncateSentenceDataset
from davam_plugin.modules.ema_vector_quantizer import EMAVectorQuantizer

logger = logging.getLogger(__name__)


@dataclass
class SentenceVAEConfig(FairseqDataclass):
    data: Optional[str] = field(
        default=None,
        metadata={"help": "colon-separated data directories written by fairseq-preprocess --only-source"},
    )
    max_sentence_length: int = field(
        default=256,
        metadata={"help": "longer lines (tokens incl. EOS) are truncated to this length, keeping EOS"},
    )


def load_dictionary_or_fail(data: Optional[str]) -> Dictionary:
    paths = utils.split_paths(data) if data else []
    if not paths:
        raise ValueError("sentence_vae: no data directory given (positional DATA argument)")
    dict_path = os.path.join(paths[0], "dict.txt")
    if not os.path.isfile(dict_path):
        raise FileNotFoundError(
            f"sentence_vae: {dict_path} not found: DATA must be a fairseq-preprocess --only-source output directory"
        )
    return Dictionary.load(dict_path)


@register_task("sentence_vae", dataclass=SentenceVAEConfig)
class SentenceVAETask(FairseqTask):
    cfg: SentenceVAEConfig

    def __init__(self, cfg: SentenceVAEConfig, dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary

    @classmethod
    def setup_task(cls, cfg: SentenceVAEConfig, **kwargs):
        # fairseq's CLIs print no traceback for SystemExit: the user sees one line
        if cfg.max_sentence_length < 1:
            raise SystemExit(f"error: --max-sentence-length must be >= 1, got {cfg.max_sentence_length}")
        try:
            dictionary = load_dictionary_or_fail(cfg.data)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"error: {e}") from None
        logger.info(f"dictionary: {len(dictionary)} types")
        return cls(cfg, dictionary)

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary

    def max_positions(self):
        return (self.cfg.max_sentence_length, self.cfg.max_sentence_length)

    def load_sentences(self, split: str, epoch: int = 1, combine: bool = False):
        """The split's sentences (token tensors ending in EOS), truncated, as a dataset."""
        paths = utils.split_paths(self.cfg.data)
        data_path = paths[(epoch - 1) % len(paths)]
        dataset = data_utils.load_indexed_dataset(os.path.join(data_path, split), self.dictionary, combine=combine)
        if dataset is None:
            raise SystemExit(
                f"error: sentence_vae: split '{split}' not found in {data_path} (expected {split}.bin and "
                f"{split}.idx from fairseq-preprocess --only-source; check --train-subset/--valid-subset/--gen-subset)"
            )
        dataset = TruncateSentenceDataset(dataset, self.cfg.max_sentence_length)
        logger.info(
            f"{split}: {len(dataset)} sentences, {int(dataset.sizes.sum())} tokens (words + EOS); "
            f"{dataset.num_truncated} truncated to --max-sentence-length {self.cfg.max_sentence_length}"
        )
        return dataset

    def _pair_dataset(self, src, sizes, shuffle=True):
        d = self.dictionary
        return LanguagePairDataset(
            src, sizes, d, src, sizes, d, left_pad_source=False, left_pad_target=False, shuffle=shuffle
        )

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        sentences = self.load_sentences(split, epoch, combine)
        dataset = self._pair_dataset(sentences, sentences.sizes)
        # fairseq's trainer is the only caller that loads with combine=True (it combines the
        # shards train, train1, ...): that marks the one dataset batched for training
        dataset.for_training = combine
        self.datasets[split] = dataset

    def build_dataset_for_inference(self, src_tokens, src_lengths, **kwargs):
        """Datasets for fairseq-interactive (typed sentences, truncated like the corpus)."""
        sizes = np.array([len(t) for t in src_tokens], dtype=np.int64)
        dataset = TruncateSentenceDataset(ListDataset(src_tokens, sizes), self.cfg.max_sentence_length)
        return self._pair_dataset(dataset, dataset.sizes, shuffle=False)

    def get_batch_iterator(self, dataset, *args, required_batch_size_multiple=1, **kwargs):
        if not getattr(dataset, "for_training", False):
            required_batch_size_multiple = 1  # never drop the last partial eval/generation batch
        return super().get_batch_iterator(
            dataset, *args, required_batch_size_multiple=required_batch_size_multiple, **kwargs
        )

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        # fairseq feeds a dummy batch (ignore_grad=True) to a worker that ran out of data;
        # it must not enter the EMA codebook statistics (but still joins their all-reduce).
        quantizers = [m for m in model.modules() if isinstance(m, EMAVectorQuantizer)]
        for q in quantizers:
            q.contribute_statistics = not ignore_grad
        try:
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        finally:
            for q in quantizers:
                q.contribute_statistics = True
