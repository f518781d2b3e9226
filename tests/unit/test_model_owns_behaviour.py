"""Models own their behaviour (issue 12): the sentence_vae task asks the model class which
criterion it trains with and how to sample its prior latents; it holds no per-model table.

In-process, on the compatibility fixture's dictionary: the one-line errors for wrong
model/criterion pairs (the same lines tests/test_cli.py checks through fairseq-train), and a
model class the task has never heard of, which needs no edit of the task.
"""

from argparse import Namespace
from pathlib import Path

import pytest
import torch
from fairseq.criterions.cross_entropy import CrossEntropyCriterionConfig
from fairseq.models.lstm import LSTMModel

import davam_plugin  # noqa: F401
from davam_plugin.criterions.awd_elbo import AwdElboConfig
from davam_plugin.criterions.davam import DavamCriterionConfig
from davam_plugin.models.awd import AwdModel
from davam_plugin.models.base import PriorSampling, SentenceVAEBaseModel
from davam_plugin.models.davam import DavamModel
from davam_plugin.tasks.sentence_vae import SentenceVAEConfig, SentenceVAETask

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "compat" / "data"


@pytest.fixture
def task():
    return SentenceVAETask.setup_task(SentenceVAEConfig(data=str(DATA), sample_from_prior=3))


def criterion_cfg(name):
    """A --criterion NAME configuration with that criterion's defaults (as fairseq-train makes it)."""
    cfg = {"davam": DavamCriterionConfig, "awd_elbo": AwdElboConfig, "cross_entropy": CrossEntropyCriterionConfig}
    defaults = vars(cfg[name]()) if name in cfg else {}
    return Namespace(criterion=name, **{k: v for k, v in defaults.items() if not k.startswith("_")})


def pair(task, model_class, arch, criterion):
    task._model_class, task._model_arch = model_class, arch
    return task.build_criterion(criterion_cfg(criterion))


@pytest.mark.parametrize(
    "model_class, arch, criterion, message",
    [
        (AwdModel, "awd_tiny", "davam", "error: --arch awd_tiny trains with --criterion awd_elbo"),
        (DavamModel, "gavam_tiny", "awd_elbo", "error: --arch gavam_tiny trains with --criterion davam"),
        (LSTMModel, "lstm", "davam", "error: --criterion davam needs a davam*, gavam*, davam_q* or vae_attn* arch, got --arch lstm"),
        (LSTMModel, "lstm", "awd_elbo", "error: --criterion awd_elbo needs an awd* arch, got --arch lstm"),
        (DavamModel, "davam_tiny", "davam_prior", "error: --criterion davam_prior fits the stage-two prior: use it with --task davam_prior"),
    ],
)  # fmt: skip
def test_wrong_pairs_fail_with_one_line(task, model_class, arch, criterion, message):
    with pytest.raises(SystemExit) as e:
        pair(task, model_class, arch, criterion)
    assert str(e.value) == message


def test_right_pairs_and_foreign_pairs_pass(task):
    assert type(pair(task, DavamModel, "davam_tiny", "davam")).__name__ == "DavamCriterion"
    assert type(pair(task, AwdModel, "awd_tiny", "awd_elbo")).__name__ == "AwdElboCriterion"
    # fairseq's own model with fairseq's own criterion: left alone
    assert type(pair(task, LSTMModel, "lstm", "cross_entropy")).__name__ == "CrossEntropyCriterion"


def test_stage_two_prior_arch_is_refused(task):
    with pytest.raises(SystemExit) as e:
        task.build_model(Namespace(arch="davam_prior_tiny"))
    assert str(e.value) == "error: --arch davam_prior_tiny is the stage-two prior: train it with --task davam_prior"


class _NewModel(SentenceVAEBaseModel):
    """A model family the task does not know: it names its criterion and its prior."""

    criterion_name = "davam"

    def __init__(self):  # no encoder/decoder needed here
        torch.nn.Module.__init__(self)
        self.weight = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def prior_net_input(self, bsz, sampling):
        lengths = sampling.training_lengths(bsz)
        return {"new_latents": torch.full((bsz, 2), sampling.temperature, dtype=self.weight.dtype),
                "new_lengths": lengths}  # fmt: skip


def test_a_new_model_needs_no_task_edit(task):
    assert type(pair(task, _NewModel, "new_tiny", "davam")).__name__ == "DavamCriterion"
    with pytest.raises(SystemExit, match=r"^error: --arch new_tiny trains with --criterion davam$"):
        pair(task, _NewModel, "new_tiny", "awd_elbo")
    task.cfg.prior_temperature = 0.5
    sample = {"net_input": {"src_tokens": torch.full((3, 1), 2), "src_lengths": torch.ones(3, dtype=torch.long)}}
    net = task._prior_sample(_NewModel(), sample)["net_input"]
    train_sizes = set(task.load_sentences("train").sizes.tolist())
    assert net["new_latents"].tolist() == [[0.5, 0.5]] * 3 and set(net["new_lengths"].tolist()) <= train_sizes
    assert net["src_tokens"] is sample["net_input"]["src_tokens"]


def test_models_without_a_prior_fail_with_one_line(task):
    sample = {"net_input": {"src_tokens": torch.full((3, 1), 2), "src_lengths": torch.ones(3, dtype=torch.long)}}

    class Base(SentenceVAEBaseModel):
        def __init__(self):
            torch.nn.Module.__init__(self)

    for model, name in ((torch.nn.Linear(2, 2), "Linear"), (Base(), "Base")):
        with pytest.raises(SystemExit) as e:
            task._prior_sample(model, sample)
        assert str(e.value) == f"error: --sample-from-prior does not know the prior of {name}"


def test_prior_sampling_settings_come_from_the_task(task):
    """--prior-max-len 0 means --max-sentence-length; DAVAM without --prior-path: one line."""
    seen = {}

    class Spy(_NewModel):
        def prior_net_input(self, bsz, sampling: PriorSampling):
            seen.update(temperature=sampling.temperature, topk=sampling.topk, max_len=sampling.max_len)
            return sampling.stage_two_prior(self)

    task.cfg.prior_topk, task.cfg.prior_max_len = 4, 0
    sample = {"net_input": {"src_tokens": torch.full((2, 1), 2)}}
    with pytest.raises(SystemExit, match="^error: --sample-from-prior needs --prior-path for DAVAM"):
        task._prior_sample(Spy(), sample)
    assert seen == {"temperature": 1.0, "topk": 4, "max_len": task.cfg.max_sentence_length}
