"""Task ``davam_prior``: fit DAVAM's stage-two prior to the frozen stage-one codes.

``fairseq-train DATA --task davam_prior --davam-path DAVAM.pt --arch davam_prior
--criterion davam_prior ...`` loads the stage-one DAVAM model once (held by the task, in
eval mode, without gradients, outside the trainer: it is neither optimised nor saved in the
prior's checkpoints), encodes every split of DATA (the stage-one ``fairseq-preprocess
--only-source`` directory, same dictionary and ``--max-sentence-length``) once into code
sequences, and trains the prior on them with cross-entropy. Encoding runs on the current
CUDA device when there is one, else on the CPU. ``fairseq-validate`` works the same way
(it re-reads ``--davam-path`` from the prior checkpoint; override it with
``--model-overrides "{'davam_path': 'NEW/PATH.pt'}"`` if the file moved).

Codes are the posterior's argmax (the posterior is one-hot), one per encoder position
(words + EOS), followed by the end-of-codes symbol (see
:mod:`davam_plugin.data.code_sequence_dataset`).
"""

import logging
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.data.data_utils import collate_tokens
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task

from davam_plugin.checkpoint_reading import default_device
from davam_plugin.criterions.davam_prior import DavamPriorCriterion
from davam_plugin.data import CodeSequenceDataset
from davam_plugin.data.resume_batches import task_batch_iterator
from davam_plugin.models.davam import DavamModel
from davam_plugin.models.davam_prior import DavamPriorModel
from davam_plugin.optim.davam_plateau import reload_best_if_pending
from davam_plugin.periodic_checkpoint import SAVE_LAST_INTERVAL_HELP, check_interval, install_periodic_checkpoint
from davam_plugin.tasks.autocast import BF16_AUTOCAST_HELP, II, Bf16AutocastTaskMixin, check_task_precision
from davam_plugin.tasks.sentence_vae import STAGE_ONE_DAVAM, load_sentence_vae_checkpoint
from davam_plugin.tasks.update_count import UpdateCountCheckMixin

logger = logging.getLogger(__name__)


@dataclass
class DavamPriorTaskConfig(FairseqDataclass):
    data: Optional[str] = field(
        default=None, metadata={"help": "the stage-one data directory (fairseq-preprocess --only-source output)"}
    )
    davam_path: Optional[str] = field(
        default=None, metadata={"help": "stage-one DAVAM checkpoint whose posterior codes the prior is fitted to"}
    )
    encode_batch_size: int = field(
        default=256, metadata={"help": "sentences per batch when encoding a split into codes (once per split)"}
    )
    bf16_autocast: bool = field(default=False, metadata={"help": BF16_AUTOCAST_HELP})
    save_last_interval_updates: int = field(default=0, metadata={"help": SAVE_LAST_INTERVAL_HELP})
    bf16: bool = II("common.bf16")  # fairseq fills interpolated task fields from the option of the same name
    fp16: bool = II("common.fp16")
    amp: bool = II("common.amp")
    tpu: bool = II("common.tpu")


@torch.no_grad()
def encode_codes(davam, sentences, batch_size: int, device) -> list:
    """Code sequences (CPU long tensors, one per sentence, in dataset order)."""
    pad = davam.encoder.padding_idx
    order = sorted(range(len(sentences)), key=lambda i: int(sentences.sizes[i]))
    out = [None] * len(sentences)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        tokens = [sentences[i] for i in idx]
        src = collate_tokens(tokens, pad, left_pad=False)
        codes = davam.encoder(src.to(device))["codes"][0].cpu()
        for row, i in enumerate(idx):
            out[i] = codes[row, : len(tokens[row])].clone()
    return out


@register_task("davam_prior", dataclass=DavamPriorTaskConfig)
class DavamPriorTask(UpdateCountCheckMixin, Bf16AutocastTaskMixin, FairseqTask):
    cfg: DavamPriorTaskConfig

    def __init__(self, cfg: DavamPriorTaskConfig, davam_task, davam):
        super().__init__(cfg)
        self.davam_task = davam_task
        self.davam = davam
        self.device = next(davam.parameters()).device

    @classmethod
    def setup_task(cls, cfg: DavamPriorTaskConfig, **kwargs):
        if cfg.encode_batch_size < 1:
            raise SystemExit(f"error: --encode-batch-size must be >= 1, got {cfg.encode_batch_size}")
        check_task_precision(cfg)
        check_interval(cfg.save_last_interval_updates)
        if cfg.save_last_interval_updates > 0:
            install_periodic_checkpoint(cfg.save_last_interval_updates)
        davam_task, davam = load_sentence_vae_checkpoint(
            cfg.davam_path, cfg.data, "--davam-path", default_device(), expect=(DavamModel,), expect_text=STAGE_ONE_DAVAM
        )
        if not davam.encoder.bottleneck.discrete:
            raise SystemExit(
                f"error: --davam-path {cfg.davam_path} has Gaussian latents (gavam*/vae_attn*): their prior is "
                "trained with them in stage one; a stage-two prior is fitted to discrete codes only"
            )
        for p in davam.parameters():
            p.requires_grad_(False)
        K = davam.encoder.bottleneck.num_codes
        logger.info(f"davam_prior: frozen stage-one model {cfg.davam_path} ({K} codes) on {default_device()}")
        return cls(cfg, davam_task, davam)

    @property
    def num_codes(self) -> int:
        return self.davam.encoder.bottleneck.num_codes

    def stage_one_codebook(self):
        return self.davam.encoder.bottleneck.quantizer.codebook.detach().float().cpu()

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        sentences = self.davam_task.load_sentences(split, epoch, combine)
        self.davam.eval()
        codes = encode_codes(self.davam, sentences, self.cfg.encode_batch_size, self.device)
        dataset = CodeSequenceDataset(codes, self.num_codes)
        dataset.for_training = combine  # as in sentence_vae: only the trainer loads with combine=True
        used = torch.unique(torch.cat(codes)).numel() if codes else 0
        logger.info(f"davam_prior: {split}: {len(dataset)} code sequences, {int(dataset.sizes.sum())} prior "
                    f"predictions (codes + end symbol), {used}/{self.num_codes} codes used")  # fmt: skip
        self.datasets[split] = dataset

    def get_batch_iterator(self, dataset, *args, required_batch_size_multiple=1, **kwargs):
        # whole evaluation batches, and a resumed run's training batches as a fresh run's (resume_batches.py)
        kwargs["required_batch_size_multiple"] = required_batch_size_multiple
        rebuild = getattr(self.cfg, "rebuild_batches", False)
        return task_batch_iterator(super().get_batch_iterator, dataset, args, kwargs, rebuild)

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        if not isinstance(model, DavamPriorModel):
            raise SystemExit("error: --task davam_prior trains a prior: use --arch davam_prior or davam_prior_tiny")
        return model

    def build_criterion(self, cfg):
        criterion = super().build_criterion(cfg)
        if not isinstance(criterion, DavamPriorCriterion):
            raise SystemExit("error: --task davam_prior needs --criterion davam_prior")
        return criterion

    def max_positions(self):
        return None

    def begin_epoch(self, epoch, model):
        """--lr-scheduler davam_plateau may ask for checkpoint_best's weights after a decay."""
        super().begin_epoch(epoch, model)
        reload_best_if_pending(model)
