"""Read the logs of ``fairseq-train --log-format json`` into curves (pure functions, no I/O
besides :func:`read_log`).

fairseq writes one JSON object per line for each record, either bare (the file of
``--log-file PATH``) or after the console prefix (stdout/stderr redirected)::

    {"epoch": 1, "update": 0.083, "loss": "95.621", "rec": "80.763", ..., "num_updates": "1", ...}
    2026-12-02 12:34:26 | INFO | train_inner | {"epoch": 1, "update": 0.083, ...}
    2026-12-02 12:34:26 | INFO | valid | {"epoch": 1, "valid_loss": "86.251", ..., "valid_num_updates": "12"}
    2026-12-02 12:34:26 | INFO | train | {"epoch": 1, "train_loss": "69.858", ..., "train_num_updates": "12", ...}

* ``train_inner`` records (every ``--log-interval`` updates) have an ``update`` key (fractional
  epoch) and unprefixed metrics, among them ``num_updates``;
* end-of-epoch records (``train``, and ``valid`` or any other ``--valid-subset``) have no
  ``update`` key and every metric prefixed with the split name: ``valid_rec``,
  ``valid_num_updates``; validation also runs mid-epoch with ``--validate-interval-updates``.

Metric values are strings (``"95.621"``); non-numeric and non-finite values are dropped.
Everything else in a log (the configuration, the model, messages, the Python ``repr`` of
the configuration, which starts with ``{`` but is not JSON) is skipped.

A log of a resumed run, or of a run started again into the same ``--log-file``, repeats
updates and epochs; fairseq 0.12 also writes each record of epoch N of the ``--log-file``
N times (every epoch's progress bar adds one more file handler). :func:`curve_points` keeps
the last occurrence: a record whose x is not past the previous one replaces every earlier
record of its split at that x or later, so curves are whole and strictly increasing in x.
"""

import json
import math
import re
from dataclasses import dataclass, field

X_AXES = ("epoch", "update")
_NOT_METRICS = {"epoch", "update", "num_updates"}
# the learning-rate decay message of davam_plateau (davam_plugin/optim/davam_plateau.py) and of
# examples/reproduce/authors_davam.py (the authors' own rule), anywhere in a line:
# "davam_plateau: epoch E: decay N/M, lr X" -> groups E, N, M, X
LR_DECAY = re.compile(r"(?:davam_plateau|authors' rule): epoch (\d+): decay (\d+)/(\d+), lr ([0-9.eE+-]+)")


@dataclass(frozen=True)
class LogRecord:
    """One fairseq JSON record: ``split`` is ``train_inner``, ``train``, ``valid`` (or another
    validation subset); ``metrics`` are the numeric values with the split prefix removed."""

    split: str
    epoch: int
    num_updates: int | None
    metrics: dict = field(default_factory=dict)


def parse_line(line):
    """The JSON object a log line carries (bare or after fairseq's console prefix), else None."""
    start = line.find("{")
    if start < 0:
        return None
    try:
        obj = json.loads(line[start:])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _count(value):
    value = _number(value)
    return None if value is None else int(value)


def record_from_json(obj):
    """A :class:`LogRecord` from a parsed fairseq record, or None for anything else (a record
    without an integer ``epoch``, a JSON line that is not a training record)."""
    epoch = obj.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        return None
    if "update" in obj:  # train_inner: unprefixed metrics
        metrics = {k: _number(v) for k, v in obj.items() if k not in _NOT_METRICS}
        split, num_updates = "train_inner", _count(obj.get("num_updates"))
    else:  # end of epoch (or mid-epoch validation): every key but epoch is "<split>_<metric>"
        split = next((k[: -len("_num_updates")] for k in obj if k.endswith("_num_updates")), None)
        if not split:
            split = next((k[: -len("_loss")] for k in obj if k.endswith("_loss")), None)
        if not split:
            return None
        prefix = split + "_"
        metrics = {k[len(prefix) :]: _number(v) for k, v in obj.items() if k.startswith(prefix)}
        num_updates = _count(metrics.pop("num_updates", None))
    metrics = {k: v for k, v in metrics.items() if v is not None and k not in _NOT_METRICS}
    return LogRecord(split, epoch, num_updates, metrics)


def parse_lines(lines):
    """The training records among ``lines``, in order."""
    records = []
    for line in lines:
        obj = parse_line(line)
        record = record_from_json(obj) if obj is not None else None
        if record is not None:
            records.append(record)
    return records


def read_log(path):
    """The training records of the log file at ``path`` (OSError if it cannot be read)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_lines(f)


def source_split(split, x):
    """The record split behind a user-facing split: per update, ``train`` is the
    ``train_inner`` records; per epoch, the end-of-epoch ``train`` records."""
    if split == "train" and x == "update":
        return "train_inner"
    return split


def available_splits(records, x):
    """The user-facing splits that ``records`` can plot against ``x``."""
    names = set()
    for r in records:
        if r.split == "train_inner":
            if x == "update":
                names.add("train")
        elif not (r.split == "train" and x == "update"):
            names.add(r.split)
    return names


def curve_points(records, split, x):
    """``[(x, record)]`` for one user-facing ``split``, x strictly increasing; a record at an x
    already seen (a resumed run, a repeated line) replaces the earlier records from that x on."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {X_AXES}, got {x!r}")
    wanted = source_split(split, x)
    points = []
    for r in records:
        if r.split != wanted:
            continue
        pos = r.epoch if x == "epoch" else r.num_updates
        if pos is None:
            continue
        while points and points[-1][0] >= pos:
            points.pop()
        points.append((pos, r))
    return points


def metric_series(points, metric):
    """``(xs, ys)`` of ``metric`` over ``points`` (records without it are left out)."""
    xs, ys = [], []
    for pos, record in points:
        if metric in record.metrics:
            xs.append(pos)
            ys.append(record.metrics[metric])
    return xs, ys


def metric_names(records, splits, x):
    """Every metric that ``records`` have in the user-facing ``splits`` (plotted against x)."""
    wanted = {source_split(s, x) for s in splits}
    names = set()
    for r in records:
        if r.split in wanted:
            names.update(r.metrics)
    return names


def lr_decays(lines):
    """The learning-rate decays (:data:`LR_DECAY`) among a training log's lines:
    [{"after_epoch", "lr"}], each once (a resumed run replays and logs the decision of the epoch
    it was stopped after again)."""
    seen = {}
    for line in lines:
        m = LR_DECAY.search(line)
        if m:
            seen[int(m.group(1))] = float(m.group(4))
    return [{"after_epoch": e, "lr": lr} for e, lr in sorted(seen.items())]
