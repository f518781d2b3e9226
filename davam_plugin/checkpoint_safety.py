"""Let fairseq load checkpoints with ``torch.load(weights_only=True)`` (torch >= 2.6).

fairseq checkpoints of dataclass models hold only primitive types and tensors; legacy
``add_args`` models also store an ``argparse.Namespace``; resuming a multi-process run
broadcasts omegaconf containers, ``typing.Any``, ``collections.defaultdict`` and fairseq's
``_TensorPlaceholder``. Exactly these types are allow-listed - nothing that can run code -
so every fairseq command-line tool keeps torch's safe unpickler. A checkpoint that pickles
any other callable is refused with ``UnpicklingError``.
"""

import argparse
import collections
import typing

import torch


def safe_checkpoint_globals():
    from fairseq.distributed.utils import _TensorPlaceholder
    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode

    return [
        argparse.Namespace,
        DictConfig,
        ListConfig,
        ContainerMetadata,
        Metadata,
        AnyNode,
        typing.Any,
        collections.defaultdict,
        dict,
        list,
        int,
        _TensorPlaceholder,
    ]


def allow_fairseq_checkpoint_types() -> None:
    torch.serialization.add_safe_globals(safe_checkpoint_globals())
