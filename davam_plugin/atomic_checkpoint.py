"""Checkpoints that survive a killed ``fairseq-train``, and one-line errors for unreadable ones.

What fairseq (v0.12, ``fairseq/checkpoint_utils.py``) does: ``save_checkpoint`` writes the
first file of a save (``checkpoint_1_200.pt``, ``checkpoint3.pt``, ...) with
``torch_persistent_save`` - to ``NAME.tmp``, then ``os.rename``, without ``fsync`` - and
makes every other file of that save (``checkpoint_last.pt``, ``checkpoint_best.pt``, ...)
with ``PathManager.copy``, which copies straight onto the destination. A process killed
during that copy (SIGKILL, out of memory, a pre-empted job) leaves ``checkpoint_last.pt``
empty or cut short, and rerunning the same command dies loading it (``EOFError``,
``PytorchStreamReader failed reading zip archive``). Loading such a file in
``fairseq-generate`` / ``-validate`` / ``-interactive`` is a traceback too.

:func:`install` (called when ``--user-dir davam_plugin`` imports the plugin) replaces four
module attributes of ``fairseq.checkpoint_utils``, and nothing else:

* ``torch_persistent_save``: local, synchronous saves are written to ``NAME.tmp`` in the same
  directory, flushed and ``fsync``-ed, moved onto ``NAME`` with ``os.replace`` (atomic) and
  the directory is ``fsync``-ed. A reader sees the old file or the new one, never a part.
  ``--write-checkpoints-asynchronously`` and remote (iopath) paths keep fairseq's function.
* ``PathManager``: :class:`AtomicCopyPathManager`, a subclass of fairseq's ``PathManager``
  whose ``copy`` writes local destinations the same way (temporary file, ``fsync``,
  ``os.replace``); so every copy ``save_checkpoint`` makes, ``checkpoint_last.pt`` included,
  is atomic. Other modules keep fairseq's ``PathManager``.
* ``load_checkpoint`` (resuming ``fairseq-train``): when ``checkpoint_last.pt`` in
  ``--save-dir`` is unreadable (empty, truncated, not a checkpoint: :func:`unreadable_reason`),
  training resumes from the newest readable ``checkpoint*.pt`` there (by modification time),
  with one warning naming both files; with none it stops with a one-line error. An
  unreadable file named by ``--restore-file``, ``--continue-once`` or
  ``--finetune-from-model`` stops with a one-line error naming the flag and the file.
  A checkpoint already at ``--max-update`` ends the run with status 0 and one log line:
  fairseq's loop tests ``--max-update`` only after a step, so rerunning a finished command
  would train one update past it and overwrite the final checkpoints.
* ``load_checkpoint_to_cpu``: an unreadable file stops with a one-line error naming it
  (:class:`UnreadableCheckpointError`, a ``SystemExit``: fairseq's tools print no traceback
  for it) instead of torch's exception. Complete files go to fairseq's function unchanged,
  so a checkpoint refused by torch's safe unpickler still raises ``UnpicklingError``.

The checks read the zip directory at the end of a file (torch saves zip archives), not the
tensors: a cut-short copy has none, or one pointing past the end of the file.
"""

import contextlib
import logging
import os
import shutil
import zipfile
from typing import Callable, Optional

import torch
from fairseq import checkpoint_utils
from fairseq.file_io import PathManager

logger = logging.getLogger(__name__)

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"  # torch.save(..., _use_new_zipfile_serialization=False) files start with it
DEFAULT_RESTORE_FILE = "checkpoint_last.pt"  # fairseq's default --restore-file


class UnreadableCheckpointError(SystemExit):
    """A checkpoint file that is empty, cut short or not a checkpoint (one-line message)."""

    def __init__(self, path: str, reason: str, flag: Optional[str] = None):
        self.path, self.reason, self.flag = path, reason, flag
        where = f"{flag} {path}" if flag else f"checkpoint {path}"
        super().__init__(f"error: {where} {reason}")


# ----------------------------------------------------------------------------- checks
def unreadable_reason(path: str) -> Optional[str]:
    """Why ``path`` cannot be a complete checkpoint (e.g. "is empty (0 bytes)"), or None."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if size == 0:
        return "is empty (0 bytes; its write was cut short)"
    if _ZIP_MAGIC.startswith(head):  # a zip archive, or the first bytes of one
        try:
            with zipfile.ZipFile(path) as archive:
                end = max((i.header_offset + i.compress_size for i in archive.infolist()), default=0)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            end = None
        if end is None or end > size:
            return f"is truncated ({size} bytes, an incomplete zip archive; its write was cut short)"
        return None
    if head.startswith(_PICKLE_PROTO):
        return None  # torch's legacy format: left to torch.load
    return f"is not a PyTorch checkpoint ({size} bytes, unknown format)"


def _is_local(path: str) -> bool:
    return not PathManager.path_requires_pathmanager(path)


# ----------------------------------------------------------------------------- atomic writes
def _fsync_directory(directory: str) -> None:
    with contextlib.suppress(OSError):  # not every file system can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str, write: Callable) -> None:
    """``write(binary file)`` into ``path + ".tmp"``, fsync, ``os.replace`` onto ``path``.

    The temporary name is fairseq's own (``torch_persistent_save``): a leftover of a killed
    write is overwritten by the next one and never matches ``checkpoint*.pt``."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(path)))


_fairseq_persistent_save = checkpoint_utils.torch_persistent_save
_fairseq_load_checkpoint = checkpoint_utils.load_checkpoint
_fairseq_load_checkpoint_to_cpu = checkpoint_utils.load_checkpoint_to_cpu


def torch_persistent_save(obj, filename, async_write: bool = False):
    """fairseq's ``torch_persistent_save`` with an fsync-ed, atomic write for local files."""
    if async_write or not _is_local(filename):
        return _fairseq_persistent_save(obj, filename, async_write=async_write)
    atomic_write(filename, lambda f: torch.save(obj, f))


class AtomicCopyPathManager(PathManager):
    """fairseq's ``PathManager`` whose ``copy`` replaces local destinations atomically."""

    @staticmethod
    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if not (_is_local(src_path) and _is_local(dst_path)):
            return PathManager.copy(src_path, dst_path, overwrite=overwrite)
        if os.path.exists(dst_path) and not overwrite:
            return False
        with open(src_path, "rb") as src:
            atomic_write(dst_path, lambda f: shutil.copyfileobj(src, f, 16 << 20))
        return True


# ----------------------------------------------------------------------------- loading
def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
    """fairseq's ``load_checkpoint_to_cpu``, refusing an unreadable local file in one line."""
    if _is_local(path) and os.path.isfile(path):
        reason = unreadable_reason(path)
        if reason:
            raise UnreadableCheckpointError(path, reason)
    return _fairseq_load_checkpoint_to_cpu(path, arg_overrides=arg_overrides, load_on_all_ranks=load_on_all_ranks)


def _restore_target(cfg, suffix: str):
    """(path, flag) of the file fairseq's ``load_checkpoint`` will read (flag None: the
    default checkpoint_last), following its rules; path None when it reads nothing."""
    if cfg.restore_file == DEFAULT_RESTORE_FILE:
        path = os.path.join(cfg.save_dir, f"checkpoint_last{suffix}.pt")
        if PathManager.exists(path):
            return path, None
        if getattr(cfg, "continue_once", None) is not None:
            return cfg.continue_once, "--continue-once"
        if cfg.finetune_from_model is not None and PathManager.exists(cfg.finetune_from_model):
            return cfg.finetune_from_model, "--finetune-from-model"
        return None, None
    if suffix is not None:
        return cfg.restore_file.replace(".pt", suffix + ".pt"), "--restore-file"
    return cfg.restore_file, "--restore-file"


def newest_readable_checkpoint(save_dir: str, suffix: str = "", exclude=()) -> Optional[str]:
    """The most recently written readable ``checkpoint*{suffix}.pt`` in ``save_dir``."""
    try:
        names = os.listdir(save_dir)
    except OSError:
        return None
    excluded = {os.path.abspath(p) for p in exclude}
    candidates = []
    for name in names:
        path = os.path.join(save_dir, name)
        if not (name.startswith("checkpoint") and name.endswith(f"{suffix}.pt")) or os.path.abspath(path) in excluded:
            continue
        with contextlib.suppress(OSError):
            if os.path.isfile(path):
                candidates.append((os.path.getmtime(path), name, path))
    for _, _, path in sorted(candidates, reverse=True):
        if unreadable_reason(path) is None:
            return path
    return None


def load_checkpoint(cfg, trainer, **passthrough_args):
    """fairseq's ``load_checkpoint`` (resume), falling back from an unreadable checkpoint_last,
    and ending the run cleanly when the checkpoint is already at ``--max-update``."""
    result = _resume(cfg, trainer, **passthrough_args)
    max_update = trainer.cfg.optimization.max_update
    if max_update and trainer.get_num_updates() >= max_update:
        # fairseq_cli.train would take one more step (it tests --max-update only after a step)
        logger.info(
            f"the checkpoint is at {trainer.get_num_updates()} updates and --max-update is {max_update}: "
            f"training is already finished, nothing to do (raise --max-update to train on)"
        )
        raise SystemExit(0)
    return result


def _resume(cfg, trainer, **passthrough_args):
    suffix = trainer.checkpoint_suffix or ""
    path, flag = _restore_target(cfg, suffix)
    if path is None or not _is_local(path) or not os.path.isfile(path):
        return _fairseq_load_checkpoint(cfg, trainer, **passthrough_args)
    reason = unreadable_reason(path)
    if reason is None:
        return _fairseq_load_checkpoint(cfg, trainer, **passthrough_args)
    if flag is not None:
        raise UnreadableCheckpointError(path, reason, flag)
    fallback = newest_readable_checkpoint(cfg.save_dir, suffix, exclude=[path])
    if fallback is None:
        raise SystemExit(
            f"error: {path} {reason}, and --save-dir {cfg.save_dir} holds no other readable checkpoint: "
            f"remove it to train from scratch"
        )
    logger.warning(f"{path} {reason}: resuming from {fallback}, the newest readable checkpoint in --save-dir")
    load = trainer.load_checkpoint  # fairseq's load_checkpoint passes `path` to it: read `fallback`

    def load_fallback(filename, *args, **kwargs):
        return load(fallback if filename == path else filename, *args, **kwargs)

    trainer.load_checkpoint = load_fallback
    try:
        return _fairseq_load_checkpoint(cfg, trainer, **passthrough_args)
    finally:
        del trainer.load_checkpoint


def install() -> None:
    """Patch ``fairseq.checkpoint_utils`` as the module docstring says (idempotent)."""
    checkpoint_utils.torch_persistent_save = torch_persistent_save
    checkpoint_utils.PathManager = AtomicCopyPathManager
    checkpoint_utils.load_checkpoint = load_checkpoint
    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
