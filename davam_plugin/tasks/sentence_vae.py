"""Task ``sentence_vae``: sentence auto-encoding on ``fairseq-preprocess --only-source`` data.

Each line of the corpus is one example ``x = w_1 .. w_n EOS``. The encoder reads x, the
decoder predicts the target x (words + EOS) from the shifted input ``EOS w_1 .. w_n``
(fairseq's convention: EOS doubles as BOS). Token counts everywhere are target tokens,
words + EOS. Empty lines become the one-token sentence ``EOS``.

Lines longer than ``--max-sentence-length`` tokens (EOS included) are truncated to that
length, keeping the final EOS; the number truncated is logged per split. Truncation (rather
than skipping) keeps one output per input line in validation and generation.
``fairseq-interactive`` logs each typed line it truncates and skips empty lines (logged).
A training split without words, a dictionary without word types, foreign ``.bin``/``.idx``
files and ``--beam`` below 1 are one-line errors (:mod:`davam_plugin.input_checks`).

Validation and generation never drop a partial last batch: for every dataset except the one
fairseq's trainer loads for training (with ``combine=True``), the batch-size multiple is
forced to 1 - also when generating from the training split.

Generation from scratch (DAVAM stage two): with ``--prior-path PRIOR.pt --sample-from-prior
N``, ``fairseq-generate`` ignores the split's sentences and makes exactly N outputs: for each
batch the prior (:mod:`davam_plugin.models.davam_prior`) draws code sequences
(``--prior-temperature``, ``--prior-topk``, at most ``--prior-max-len`` codes), and the
stage-one decoder decodes them with fairseq's usual search (beam, greedy, ``--sampling``).
The prior runs on the device of the DAVAM model and must have been fitted to its codes.
The S- lines are empty (there is no source sentence); H- lines are the samples.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from fairseq import utils
from fairseq.data import Dictionary, LanguagePairDataset, ListDataset, data_utils
from fairseq.dataclass import FairseqDataclass
from fairseq.criterions import CRITERION_REGISTRY
from fairseq.models import ARCH_MODEL_REGISTRY
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II

from davam_plugin.checkpoint_reading import (
    check_model_class,
    check_prior_matches,
    checkpoint_num_updates,
    checkpoint_weights,
    load_prior,
    read_checkpoint,
)
from davam_plugin.data import TruncateSentenceDataset
from davam_plugin.data.preprocessing import raw_text_encoder
from davam_plugin.data.resume_batches import task_batch_iterator
from davam_plugin.input_checks import check_beam, check_binary_split, check_training_data
from davam_plugin.models.base import PriorSampling
from davam_plugin.modules.ema_vector_quantizer import EMAVectorQuantizer
from davam_plugin.optim.davam_plateau import reload_best_if_pending
from davam_plugin.periodic_checkpoint import SAVE_LAST_INTERVAL_HELP, check_interval, install_periodic_checkpoint
from davam_plugin.tasks.autocast import BF16_AUTOCAST_HELP, Bf16AutocastTaskMixin, autocast_for, check_task_precision
from davam_plugin.tasks.update_count import UpdateCountCheckMixin

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
    prior_path: Optional[str] = field(
        default=None, metadata={"help": "generation: DAVAM prior checkpoint (fairseq-train --task davam_prior)"}
    )
    sample_from_prior: int = field(
        default=0, metadata={"help": "generation: decode this many code sequences drawn from --prior-path (0: off)"}
    )
    prior_temperature: float = field(default=1.0, metadata={"help": "generation: temperature of prior sampling (Gaussian priors: scale of the standard deviation)"})
    prior_topk: int = field(
        default=0, metadata={"help": "generation: sample codes from the k most likely only (0: all)"}
    )
    prior_max_len: int = field(
        default=0, metadata={"help": "generation: at most this many codes per sample (0: --max-sentence-length)"}
    )
    posterior_sample: bool = field(
        default=False,
        metadata={"help": "generation with Gaussian-latent models (awd): decode from z ~ q(z|x) instead of its mean"},
    )
    validate_with_ema: bool = field(
        default=False,
        metadata={"help": "with --store-ema: validate (and pick checkpoint_best) with the averaged weights"},
    )
    no_stored_preprocessing: bool = field(
        default=False,
        metadata={"help": "fairseq-interactive: do not apply the corpus preparation stored with the data "
                          "(DATA/preprocessing.json of davam-prepare-corpus) to typed lines: they are already prepared"},
    )
    bf16_autocast: bool = field(default=False, metadata={"help": BF16_AUTOCAST_HELP})
    save_last_interval_updates: int = field(default=0, metadata={"help": SAVE_LAST_INTERVAL_HELP})
    bf16: bool = II("common.bf16")  # fairseq fills interpolated task fields from the option of the same name
    fp16: bool = II("common.fp16")
    amp: bool = II("common.amp")
    tpu: bool = II("common.tpu")


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


def check_prior_sampling_options(cfg) -> None:
    n = getattr(cfg, "sample_from_prior", 0)
    if n < 0:
        raise SystemExit(f"error: --sample-from-prior must be >= 0, got {n}")
    if getattr(cfg, "prior_temperature", 1.0) <= 0:
        raise SystemExit(f"error: --prior-temperature must be > 0, got {cfg.prior_temperature}")
    if getattr(cfg, "prior_topk", 0) < 0:
        raise SystemExit(f"error: --prior-topk must be >= 0, got {cfg.prior_topk}")
    if getattr(cfg, "prior_max_len", 0) < 0:
        raise SystemExit(f"error: --prior-max-len must be >= 0, got {cfg.prior_max_len}")


@register_task("sentence_vae", dataclass=SentenceVAEConfig)
class SentenceVAETask(UpdateCountCheckMixin, Bf16AutocastTaskMixin, FairseqTask):
    cfg: SentenceVAEConfig

    def __init__(self, cfg: SentenceVAEConfig, dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        self._prior = None

    @classmethod
    def setup_task(cls, cfg: SentenceVAEConfig, **kwargs):
        # fairseq's CLIs print no traceback for SystemExit: the user sees one line
        if cfg.max_sentence_length < 1:
            raise SystemExit(f"error: --max-sentence-length must be >= 1, got {cfg.max_sentence_length}")
        check_prior_sampling_options(cfg)
        check_task_precision(cfg)
        check_interval(cfg.save_last_interval_updates)
        if cfg.save_last_interval_updates > 0:
            install_periodic_checkpoint(cfg.save_last_interval_updates)
        try:
            dictionary = load_dictionary_or_fail(cfg.data)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"error: {e}") from None
        logger.info(f"dictionary: {len(dictionary)} types")
        return cls(cfg, dictionary)

    # ------------------------------------------------------------------ model/criterion pairing
    # Each model or criterion class says what it goes with (no table here): a model's
    # ``criterion_name``, a plugin criterion's ``arch_family`` (the archs that name it, for the
    # error) and ``trained_with_task`` for the stage-two prior's model and criterion.
    def build_model(self, cfg, from_checkpoint=False):
        arch = getattr(cfg, "arch", None) or getattr(cfg, "_name", None)
        model_class = ARCH_MODEL_REGISTRY.get(arch)
        other_task = getattr(model_class, "trained_with_task", "sentence_vae")
        if other_task != "sentence_vae":
            raise SystemExit(f"error: --arch {arch} is {model_class.description}: train it with --task {other_task}")
        model = super().build_model(cfg, from_checkpoint)
        # fairseq-train builds the model before the criterion, which is checked against it
        self._model_class, self._model_arch = type(model), arch or type(model).__name__
        return model

    def build_criterion(self, cfg, from_checkpoint=False):
        """Refuse a plugin model with another plugin criterion (a KeyError deep in the first
        step otherwise): davam* and the ablation archs take --criterion davam, awd* takes
        --criterion awd_elbo. fairseq's own models with fairseq's own criteria are left alone."""
        criterion = super().build_criterion(cfg, from_checkpoint)
        name = _registered_name(criterion)
        other_task = getattr(criterion, "trained_with_task", "sentence_vae")
        if other_task != "sentence_vae":
            raise SystemExit(f"error: --criterion {name} {criterion.purpose}: use it with --task {other_task}")
        model_class = getattr(self, "_model_class", None)
        if model_class is None:
            return criterion
        arch = self._model_arch
        wanted = getattr(model_class, "criterion_name", "")
        if wanted and not isinstance(criterion, CRITERION_REGISTRY[wanted]):
            raise SystemExit(f"error: --arch {arch} trains with --criterion {wanted}")
        family = getattr(criterion, "arch_family", None)  # a plugin criterion: only for models that name it
        if family is not None and wanted != name:
            raise SystemExit(f"error: --criterion {name} needs {family} arch, got --arch {arch}")
        return criterion

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
        check_binary_split(os.path.join(data_path, split))
        dataset = data_utils.load_indexed_dataset(os.path.join(data_path, split), self.dictionary, combine=combine)
        if dataset is None:
            raise SystemExit(
                f"error: sentence_vae: split '{split}' not found in {data_path} (expected {split}.bin and "
                f"{split}.idx from fairseq-preprocess --only-source; check --train-subset/--valid-subset/--gen-subset)"
            )
        if combine:  # the training split (see load_dataset)
            check_training_data(dataset, self.dictionary, data_path, split)
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

    @property
    def sampling_from_prior(self) -> int:
        return getattr(self.cfg, "sample_from_prior", 0) or 0

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        if self.sampling_from_prior > 0:
            # N placeholder inputs (just EOS): one generated sentence each
            n = self.sampling_from_prior
            src = ListDataset([torch.tensor([self.dictionary.eos()])] * n, np.ones(n, dtype=np.int64))
            dataset = LanguagePairDataset(src, src.sizes, self.dictionary, shuffle=False)
            dataset.for_training = False
            self.datasets[split] = dataset
            logger.info(f"{split}: replaced by {n} code sequences sampled from --prior-path {self.cfg.prior_path}")
            return
        sentences = self.load_sentences(split, epoch, combine)
        dataset = self._pair_dataset(sentences, sentences.sizes)
        # fairseq's trainer is the only caller that loads with combine=True (it combines the
        # shards train, train1, ...): that marks the one dataset batched for training
        dataset.for_training = combine
        self.datasets[split] = dataset

    def get_interactive_tokens_and_lengths(self, lines, encode_fn):
        """fairseq-interactive: each typed line first gets the corpus preparation stored with the
        data (DATA/preprocessing.json of davam-prepare-corpus: Moses tokenizer, lower-casing,
        sentencepiece; nothing for data without it, or with --no-stored-preprocessing), then
        fairseq's own --tokenizer/--bpe."""
        if self.cfg.no_stored_preprocessing:
            return super().get_interactive_tokens_and_lengths(lines, encode_fn)
        if not hasattr(self, "_prepare_raw_text"):
            self._prepare_raw_text = raw_text_encoder(utils.split_paths(self.cfg.data)[0])
        prepare = self._prepare_raw_text
        return super().get_interactive_tokens_and_lengths(lines, lambda line: encode_fn(prepare(line)))

    def build_dataset_for_inference(self, src_tokens, src_lengths, **kwargs):
        """Datasets for fairseq-interactive (typed sentences, truncated like the corpus; empty
        lines are skipped). Each over-long or empty line is logged with the id fairseq gives it."""
        sizes = np.array([len(t) for t in src_tokens], dtype=np.int64)
        first = getattr(self, "_inputs_seen", 0)  # fairseq-interactive numbers inputs across buffers
        self._inputs_seen = first + len(sizes)
        max_len = self.cfg.max_sentence_length
        for i in np.flatnonzero(sizes > max_len):
            logger.warning(
                f"input {first + i}: {sizes[i]} tokens (words + EOS) truncated to --max-sentence-length {max_len}"
            )
        for i in np.flatnonzero(sizes <= 1):
            logger.info(f"input {first + i} is an empty line: skipped (no sentence to reconstruct)")
        dataset = TruncateSentenceDataset(ListDataset(src_tokens, sizes), max_len)
        pairs = self._pair_dataset(dataset, dataset.sizes, shuffle=False)
        pairs.empty_inputs = np.flatnonzero(sizes <= 1)  # left out by filter_indices_by_size
        return pairs

    def filter_indices_by_size(self, indices, dataset, max_positions=None, ignore_invalid_inputs=False):
        empty = getattr(dataset, "empty_inputs", None)
        if empty is not None and len(empty):
            indices = indices[~np.isin(indices, empty)]
        return super().filter_indices_by_size(indices, dataset, max_positions, ignore_invalid_inputs)

    def build_generator(self, models, args, **kwargs):
        check_beam(args)
        return super().build_generator(models, args, **kwargs)

    def get_batch_iterator(self, dataset, *args, required_batch_size_multiple=1, **kwargs):
        # whole evaluation batches, and a resumed run's training batches as a fresh run's (resume_batches.py)
        kwargs["required_batch_size_multiple"] = required_batch_size_multiple
        rebuild = getattr(self.cfg, "rebuild_batches", False)
        return task_batch_iterator(super().get_batch_iterator, dataset, args, kwargs, rebuild)

    def prior_for(self, model):
        """The --prior-path prior on ``model``'s device, checked against its codebook (loaded once)."""
        if self._prior is None:
            prior = load_prior(self.cfg.prior_path, flag="--prior-path")
            check_prior_matches(prior, model, "--prior-path", "--path")
            self._prior = prior
        return self._prior.to(next(model.parameters()).device)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        for m in models:  # Gaussian-latent models reconstruct from the posterior mean by default
            m.set_posterior_mean(not getattr(self.cfg, "posterior_sample", False))
        if self.sampling_from_prior > 0:
            if len(models) != 1:
                raise SystemExit("error: --sample-from-prior decodes with one model: give a single --path")
            sample = self._prior_sample(models[0], sample)
        with torch.no_grad(), autocast_for(self.cfg, models[0]):
            return generator.generate(models, sample, prefix_tokens=prefix_tokens, constraints=constraints)

    def _prior_sample(self, model, sample):
        """Replace the placeholder inputs by latents the model draws from its prior
        (``prior_net_input``: AWD's one z, the Gaussian latent sequences of GAVAM and VAE+Attn,
        DAVAM's code sequences from the --prior-path prior)."""
        net_input = sample["net_input"]
        if not hasattr(model, "prior_net_input"):
            raise SystemExit(f"error: --sample-from-prior does not know the prior of {type(model).__name__}")
        sampling = PriorSampling(
            temperature=self.cfg.prior_temperature,
            topk=self.cfg.prior_topk,
            max_len=self.cfg.prior_max_len or self.cfg.max_sentence_length,
            training_lengths=self._sample_training_lengths,
            stage_two_prior=self._stage_two_prior,
        )
        latents = model.prior_net_input(net_input["src_tokens"].size(0), sampling)
        return dict(sample, net_input=dict(net_input, **latents))

    def _stage_two_prior(self, model):
        if not self.cfg.prior_path:
            raise SystemExit(
                "error: --sample-from-prior needs --prior-path for DAVAM (a checkpoint of fairseq-train --task davam_prior)"
            )
        return self.prior_for(model)

    def _sample_training_lengths(self, n: int):
        """n sentence lengths (tokens, words + EOS) drawn from the training split of DATA."""
        if getattr(self, "_train_lengths", None) is None:
            try:
                sizes = self.load_sentences("train").sizes
            except SystemExit:
                raise SystemExit(
                    "error: --sample-from-prior with Gaussian latent sequences draws their lengths from the "
                    "training split: DATA has no train split"
                ) from None
            self._train_lengths = torch.as_tensor(np.asarray(sizes), dtype=torch.long)
        pick = torch.randint(len(self._train_lengths), (n,))
        return self._train_lengths[pick]

    @property
    def uses_ema(self) -> bool:
        """fairseq's trainer passes the --store-ema model to train/valid_step when True."""
        return bool(getattr(self.cfg, "validate_with_ema", False))

    def valid_step(self, sample, model, criterion, ema_model=None):
        if ema_model is not None:
            # the averaged copy does not follow the update counter: schedules read it
            ema_model.set_num_updates(getattr(model, "num_updates", 0))
            model = ema_model
        return super().valid_step(sample, model, criterion)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, ema_model=None):
        # fairseq feeds a dummy batch (ignore_grad=True) to a worker that ran out of data;
        # it must not enter the EMA codebook statistics (but still joins their all-reduce).
        quantizers = [m for m in model.modules() if isinstance(m, EMAVectorQuantizer)]
        for q in quantizers:
            q.contribute_statistics = not ignore_grad
        try:
            loss, sample_size, logging_output = super().train_step(
                sample, model, criterion, optimizer, update_num, ignore_grad
            )
            if not ignore_grad:
                for name, value in model.gradient_statistics().items():
                    logging_output[name] = value / max(sample_size, 1)
            return loss, sample_size, logging_output
        finally:
            for q in quantizers:
                q.contribute_statistics = True

    def begin_epoch(self, epoch, model):
        """--lr-scheduler davam_plateau may ask for checkpoint_best's weights after a decay."""
        super().begin_epoch(epoch, model)
        reload_best_if_pending(model)


def _registered_name(criterion) -> str:
    """The --criterion name of a criterion object (its class name if not registered)."""
    for name, cls in CRITERION_REGISTRY.items():
        if type(criterion) is cls:
            return name
    return type(criterion).__name__


STAGE_ONE_DAVAM = "stage-one DAVAM (--arch davam*)"


def load_sentence_vae_checkpoint(path: Optional[str], data: Optional[str], flag: str = "--path", device="cpu",
                                 use_ema: bool = False, expect: Optional[tuple] = None, expect_text: str = ""):  # fmt: skip
    """(SentenceVAETask, model) from a ``--task sentence_vae`` checkpoint (DAVAM, AWD, ...), with
    one-line errors naming ``flag``; :func:`davam_plugin.loading.load_sentence_model` documents it."""
    state, cfg = read_checkpoint(path, flag)
    check_model_class(cfg, path, flag, expect, expect_text)
    saved_task = cfg.get("task") or {}
    if saved_task.get("_name") not in (None, "sentence_vae"):
        raise SystemExit(f"error: {flag} {path} was trained with --task {saved_task.get('_name')}, not sentence_vae")
    task_cfg = SentenceVAEConfig(
        data=data if data is not None else saved_task.get("data"),
        max_sentence_length=saved_task.get("max_sentence_length", SentenceVAEConfig.max_sentence_length),
    )
    task = SentenceVAETask.setup_task(task_cfg)
    model = task.build_model(cfg.model)
    weights = checkpoint_weights(state, path, flag, use_ema)
    model.load_state_dict(weights, strict=True, model_cfg=cfg.model)
    model.set_num_updates(checkpoint_num_updates(state))
    return task, model.eval().to(device)
