"""Checkpoints load through torch's safe (weights_only) unpickler, and hostile ones are refused.

Importing davam_plugin allow-lists exactly the types fairseq checkpoints contain; it must not
turn the check off (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) or replace ``torch.load``.
"""

import argparse
import builtins
import collections
import json
import os
import pickle
import subprocess
import sys
import typing

import pytest
import torch

import davam_plugin  # noqa: F401  (the one way the tests import the plugin)
from conftest import PLUGIN, SUBPROCESS_ENV, TRAIN_TINY, run_cli


class RunsAShellCommand:
    """Pickles as ``os.system(command)``: unpickling it with the full unpickler runs the command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def clean_env():
    return {k: v for k, v in SUBPROCESS_ENV.items() if k not in ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_WEIGHTS_ONLY_LOAD")}


def python(code, check=True):
    return run_cli("python", "-c", code, env=clean_env(), check=check)


def find_instances(obj, cls, path=""):
    if isinstance(obj, cls):
        yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from find_instances(v, cls, f"{path}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from find_instances(v, cls, f"{path}[{i}]")


# ----------------------------------------------------------------------------- registration
def test_import_registers_the_fairseq_checkpoint_types():
    from fairseq.distributed.utils import _TensorPlaceholder
    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode

    safe = torch.serialization.get_safe_globals()
    for needed in (
        argparse.Namespace, DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode,
        typing.Any, collections.defaultdict, _TensorPlaceholder,
    ):  # fmt: skip
        assert needed in safe, needed
    for dangerous in (os.system, builtins.eval, builtins.exec, builtins.getattr, builtins.__import__, subprocess.Popen, pickle.loads):
        assert dangerous not in safe, dangerous


def test_import_keeps_torch_load_safe():
    """In a fresh interpreter with a clean environment, importing the plugin leaves torch.load alone."""
    proc = python(
        "import os, json, torch; load = torch.load; import davam_plugin; "
        "print(json.dumps({'env': os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'), "
        "'same_load': torch.load is load and torch.load is torch.serialization.load, "
        "'n_safe': len(torch.serialization.get_safe_globals())}))"
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["env"] is None, "the plugin must not set TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    assert result["same_load"], "the plugin must not replace torch.load"
    assert result["n_safe"] > 0


# ----------------------------------------------------------------------------- real checkpoints
def test_trained_checkpoint_loads_with_weights_only(tiny_checkpoint):
    state = torch.load(tiny_checkpoint, weights_only=True)
    assert "encoder.bottleneck.quantizer.codebook" in state["model"]
    # fairseq-train stores the legacy sgd optimizer's options as an argparse.Namespace
    assert list(find_instances(state, argparse.Namespace)), "expected a Namespace in the checkpoint"

    from fairseq import checkpoint_utils

    state = checkpoint_utils.load_checkpoint_to_cpu(str(tiny_checkpoint))
    assert state["cfg"].model._name == "davam_tiny" and state["cfg"].model.num_codes == 64
    assert state["cfg"].task._name == "sentence_vae"


def test_trained_checkpoint_needs_the_allow_list(tiny_checkpoint):
    """Negative control: without importing the plugin, torch's safe loader refuses the same file."""
    proc = python(
        f"import torch, pickle\ntry:\n    torch.load({str(tiny_checkpoint)!r}, weights_only=True)\n"
        "    print('LOADED')\nexcept pickle.UnpicklingError as e:\n    print('REFUSED', e)",
    )
    assert "REFUSED" in proc.stdout and "argparse.Namespace" in proc.stdout, proc.stdout[-2000:]


def test_checkpoint_with_legacy_namespace_args_loads(tiny_raw, tiny_data, tiny_checkpoint, tmp_path, monkeypatch):
    """A checkpoint whose configuration is an ``argparse.Namespace`` (``state["args"]``, as
    written by fairseq before hydra) loads safely and validates."""
    from fairseq import checkpoint_utils, options

    monkeypatch.setattr(sys, "argv", ["fairseq-train"])
    args = options.parse_args_and_arch(options.get_training_parser(), [str(a) for a in (tiny_data, *TRAIN_TINY)])
    assert args.arch == "davam_tiny" and args.encoder_hidden_dim == 128
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["args"], state["cfg"] = args, None
    legacy = tmp_path / "legacy.pt"
    torch.save(state, legacy)

    loaded = torch.load(legacy, weights_only=True)
    assert isinstance(loaded["args"], argparse.Namespace) and loaded["args"].encoder_hidden_dim == 128
    upgraded = checkpoint_utils.load_checkpoint_to_cpu(str(legacy))
    assert upgraded["cfg"].model.encoder_hidden_dim == 128
    assert upgraded["cfg"].task._name == "sentence_vae"

    proc = run_cli(
        "fairseq-validate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", legacy,
        "--valid-subset", "valid", "--cpu", "--batch-size", "16",
    )  # fmt: skip
    n_valid = len((tiny_raw / "valid.txt").read_text().split("\n")) - 1
    assert f"bsz {n_valid}" in proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- hostile checkpoints
def test_checkpoint_that_runs_code_is_refused(tiny_data, tiny_checkpoint, tmp_path):
    sentinel = tmp_path / "SENTINEL"
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["extra_state"]["payload"] = RunsAShellCommand(f"touch {sentinel}")
    evil = tmp_path / "evil.pt"
    torch.save(state, evil)
    assert not sentinel.exists()

    from fairseq import checkpoint_utils

    with pytest.raises(pickle.UnpicklingError, match="system"):
        checkpoint_utils.load_checkpoint_to_cpu(str(evil))
    assert not sentinel.exists()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(evil, weights_only=True)
    assert not sentinel.exists()

    proc = run_cli(
        "fairseq-validate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", evil,
        "--valid-subset", "valid", "--cpu", "--batch-size", "16", env=clean_env(), check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Weights only load failed" in out or "UnpicklingError" in out, out[-3000:]
    assert "valid on 'valid' subset" not in out
    assert not sentinel.exists(), "loading the checkpoint ran the pickled command"

    # positive control: the payload is real - the unsafe unpickler does run it
    python(f"import torch; torch.load({str(evil)!r}, weights_only=False)")
    assert sentinel.exists()
