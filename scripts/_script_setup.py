"""Shared preamble of the evaluation scripts: import path, logging, JSON output.

Imported first by ``scripts/*.py`` (``from _script_setup import write_json``): puts the
repository root on ``sys.path`` (so ``davam_plugin`` imports from a checkout without
installing), sends progress to stderr in fairseq's log format (results go to stdout), and
silences the INFO line fairseq logs about tensorboardX when its tasks are imported.
"""

import json
import logging
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO)
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` (nothing if ``path`` is None)."""
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
