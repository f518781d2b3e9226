"""Shared preamble of the evaluation scripts: import path, logging, JSON output.

Imported first by ``scripts/*.py`` (``from _script_setup import write_json``): puts the
repository root on ``sys.path`` (so ``davam_plugin`` imports from a checkout without
installing), sends progress to stderr in fairseq's log format (results go to stdout), and
silences the INFO line fairseq logs about tensorboardX when its tasks are imported.
Output files are written atomically (:func:`atomic_open`): a killed script leaves the
previous file or none, never a partial one.
"""

import contextlib
import json
import logging
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO)
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)


@contextlib.contextmanager
def atomic_open(path, mode="w", encoding="utf-8"):
    """Open ``path`` for writing through ``path.tmp``: when the block ends without an
    exception the file is flushed, fsync-ed and moved onto ``path`` with ``os.replace`` (atomic);
    otherwise it is removed and ``path`` is untouched. Not a regular file (``/dev/stdout``):
    written directly."""
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
        return
    tmp = f"{path}.tmp"
    try:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON to ``path``, atomically (nothing if ``path`` is None)."""
    if path:
        with atomic_open(path) as f:
            json.dump(obj, f, indent=2)
