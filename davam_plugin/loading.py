"""Load a stage-one model (DAVAM, AWD, ...) and a stage-two prior from checkpoints, with
one-line errors: the entry point of the scripts (``davam_plugin.cli``), above the tasks.

Every problem a user can cause - a missing file, a file that is not a fairseq checkpoint, a
checkpoint of another model, a data directory whose dictionary differs from the one the model
was trained with, a prior fitted to another DAVAM model - raises ``SystemExit`` with one line
naming the flag to fix (fairseq's command-line tools print no traceback for ``SystemExit``).

The file reading and checks live below the tasks (:mod:`davam_plugin.checkpoint_reading`, also
used by the tasks: ``sentence_vae`` generation reads ``--prior-path``, ``davam_prior`` reads
``--davam-path``); a sentence model is built by its task
(:func:`davam_plugin.tasks.sentence_vae.load_sentence_vae_checkpoint`).
"""

from typing import Optional, Tuple

from davam_plugin.checkpoint_reading import check_prior_matches, default_device, load_prior
from davam_plugin.models.davam import DavamModel
from davam_plugin.tasks.sentence_vae import STAGE_ONE_DAVAM, load_sentence_vae_checkpoint


def load_sentence_model(path: Optional[str], data: Optional[str], flag: str = "--path", device="cpu",
                        use_ema: bool = False, expect: Optional[tuple] = None, expect_text: str = ""):  # fmt: skip
    """(SentenceVAETask, model) from a ``--task sentence_vae`` checkpoint (DAVAM, AWD, ...).

    The task reads ``data`` (the checkpoint's own data directory if None). ``use_ema`` loads the
    weights averaged by ``fairseq-train --store-ema`` instead of the trained ones. ``expect``
    (model classes) refuses other models with one line. The model is in eval mode."""
    return load_sentence_vae_checkpoint(path, data, flag, device, use_ema, expect, expect_text)


def load_davam(path: Optional[str], data: Optional[str], flag: str = "--path", device="cpu"):
    """(SentenceVAETask, DavamModel) from a stage-one checkpoint (see :func:`load_sentence_model`)."""
    return load_sentence_model(path, data, flag, device, expect=(DavamModel,), expect_text=STAGE_ONE_DAVAM)


__all__: Tuple[str, ...] = ("load_sentence_model", "load_davam", "load_prior", "check_prior_matches", "default_device")
