"""No plugin option collides with a fairseq option.

fairseq turns every dataclass field of the chosen task, model and criterion into a ``--flag``
of one flat namespace that it shares with its ~200 global options (and the options of the
chosen optimizer and lr scheduler); a clash is swallowed silently, e.g. a model field
``ema_decay`` would quietly take fairseq's model-EMA default. The plugin's components are
discovered from fairseq's dataclass registries, so new ones are covered automatically.
"""

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field

import pytest
from fairseq import options
from fairseq.criterions import CRITERION_DATACLASS_REGISTRY
from fairseq.dataclass import FairseqDataclass
from fairseq.dataclass.utils import gen_parser_from_dataclass
from fairseq.models import MODEL_DATACLASS_REGISTRY
from fairseq.registry import REGISTRIES
from fairseq.tasks import TASK_DATACLASS_REGISTRY
from omegaconf import II

import davam_plugin  # noqa: F401  (registers the plugin's components)

PLUGIN_MODULE = "davam_plugin"
KINDS = {"model": MODEL_DATACLASS_REGISTRY, "task": TASK_DATACLASS_REGISTRY, "criterion": CRITERION_DATACLASS_REGISTRY}
# components combined with any model/task/criterion: their options share the namespace too
SHARED_COMPONENT_REGISTRIES = ("optimizer", "lr_scheduler")


def option_strings(parser):
    return {s for s in parser._option_string_actions if s.startswith("--")}


@pytest.fixture(scope="module")
def fairseq_global_options():
    """Options of fairseq's command-line parsers, built without any task/model/criterion."""
    argv = sys.argv
    sys.argv = [argv[0]]  # get_parser() looks for --user-dir in sys.argv
    try:
        builders = [
            options.get_preprocessing_parser, options.get_training_parser, options.get_generation_parser,
            options.get_interactive_generation_parser, options.get_validation_parser, options.get_eval_lm_parser,
        ]  # fmt: skip
        found = set()
        for build in builders:
            found |= option_strings(build())
    finally:
        sys.argv = argv
    return found


@pytest.fixture(scope="module")
def fairseq_component_options():
    """Options of every fairseq optimizer and lr scheduler (not the plugin's own)."""
    found = set()
    for name in SHARED_COMPONENT_REGISTRIES:
        for cls in REGISTRIES[name]["registry"].values():
            if cls.__module__.startswith(PLUGIN_MODULE):
                continue
            parser = argparse.ArgumentParser(add_help=False)
            cls.add_args(parser)
            found |= option_strings(parser)
    return found


def dataclass_options(dc):
    """{--option: default} for the fields of a fairseq dataclass, as fairseq names them.

    Skips ``_name``, the positional ``data`` and fields whose default is an interpolation
    (``"${...}"``): those deliberately alias a fairseq option.
    """
    found = {}
    for f in dataclasses.fields(dc):
        if f.name in ("_name", "data"):
            continue
        if isinstance(f.type, type) and issubclass(f.type, FairseqDataclass):
            found.update(dataclass_options(f.type))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if isinstance(default, str) and default.startswith("${"):
            continue
        found["--" + f.name.replace("_", "-")] = default
        alias = f.metadata.get("argparse_alias")
        if alias:
            found[alias] = default
    return found


def plugin_components():
    """[(kind, registry name, dataclass)] for every plugin component in fairseq's registries."""
    found = []
    for kind, registry in KINDS.items():
        for name, dc in registry.items():
            if dc is not None and dc.__module__.startswith(PLUGIN_MODULE):
                found.append((kind, name, dc))
    return found


def collisions(dc, fairseq_options):
    return sorted(set(dataclass_options(dc)) & fairseq_options)


# ----------------------------------------------------------------------------- sanity
def test_fairseq_option_collection(fairseq_global_options, fairseq_component_options):
    for opt in ("--seed", "--max-tokens", "--batch-size", "--beam", "--ema-decay", "--user-dir", "--lr", "--path"):
        assert opt in fairseq_global_options, opt
    for opt in ("--momentum", "--weight-decay", "--warmup-updates", "--adam-betas"):
        assert opt in fairseq_component_options, opt
    # no task/model/criterion options: the parsers were built without components
    for opt in ("--encoder-embed-dim", "--label-smoothing", "--beta-max", "--num-codes"):
        assert opt not in fairseq_global_options, opt


def test_plugin_components_are_discovered():
    found = {(kind, name) for kind, name, _ in plugin_components()}
    assert {("model", "davam"), ("task", "sentence_vae"), ("criterion", "davam")} <= found


def test_option_names_match_fairseqs_parser():
    """dataclass_options() names fields exactly as fairseq's parser generator does."""
    for _, _, dc in plugin_components():
        parser = argparse.ArgumentParser(add_help=False)
        gen_parser_from_dataclass(parser, dc())
        assert set(dataclass_options(dc)) <= option_strings(parser), dc


def test_collision_check_catches_a_clash(fairseq_global_options):
    """The check flags a field named like fairseq's model-EMA option, and only that one."""

    @dataclass
    class Clashing(FairseqDataclass):
        ema_decay: float = field(default=0.99, metadata={"help": "clashes with fairseq's --ema-decay"})
        codebook_decay: float = field(default=0.99, metadata={"help": "distinctive"})
        seed_alias: int = II("common.seed")

    assert collisions(Clashing, fairseq_global_options) == ["--ema-decay"]


# ----------------------------------------------------------------------------- the plugin
def test_no_plugin_option_collides_with_fairseq(fairseq_global_options, fairseq_component_options):
    clashes = {
        f"{kind} {name}": collisions(dc, fairseq_global_options | fairseq_component_options)
        for kind, name, dc in plugin_components()
    }
    assert not any(clashes.values()), clashes


def test_plugin_components_agree_on_shared_options():
    """An option defined by components of different kinds (model, task, criterion) lands in one
    namespace slot: the defaults must agree or one component silently gets the other's."""
    seen = {}  # option -> {(kind, name): default}
    for kind, name, dc in plugin_components():
        for opt, default in dataclass_options(dc).items():
            seen.setdefault(opt, {})[(kind, name)] = default
    conflicts = {
        opt: owners
        for opt, owners in seen.items()
        if len({kind for kind, _ in owners}) > 1 and len({repr(d) for d in owners.values()}) > 1
    }
    assert not conflicts, conflicts
