"""Small pieces shared by the pipeline commands ``davam-sweep`` and ``davam-augment``:
comma-separated lists, stage markers, fairseq-validate summaries, JSON writing."""

import json
import math
import re
from pathlib import Path

from davam_plugin.cli.training_logs import parse_line


class PipelineError(Exception):
    """A problem reported as one ``PROG: error: ...`` line on stderr (exit status 2)."""


_INT = re.compile(r"^[+-]?\d+$")


def number_list(text, flag, kind=float, positive=False):
    """``"128,256"`` -> ``[128, 256]`` (ints stay ints when ``kind`` is float and the item has no
    decimal point); PipelineError naming ``flag`` for an empty item, a non-number, a repeat."""
    items = [item.strip() for item in str(text).split(",")]
    values = []
    for item in items:
        if not item:
            raise PipelineError(f"{flag} {text!r}: give comma-separated numbers, none empty")
        try:
            if kind is int or _INT.match(item):
                value = int(item)
            else:
                value = float(item)
        except ValueError:
            want = "an integer" if kind is int else "a number"
            raise PipelineError(f"{flag} {text!r}: {item!r} is not {want}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise PipelineError(f"{flag} {text!r}: {item!r} is not a finite number")
        if positive and value <= 0:
            raise PipelineError(f"{flag} {text!r}: {item!r} must be > 0")
        values.append(value)
    repeats = sorted({str(v) for v in values if values.count(v) > 1})
    if repeats:
        raise PipelineError(f"{flag} {text!r}: {', '.join(repeats)} repeats")
    return values


def value_label(value):
    """``128`` -> ``"128"``, ``0.5`` -> ``"0.5"``, ``1.0`` -> ``"1"``: the key of a value in JSON."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def read_json(path):
    return json.loads(Path(path).read_text())


def write_json(path, obj):
    """Write atomically (a temporary file, then a rename): a killed run leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, allow_nan=False) + "\n")
    tmp.replace(path)


def validate_summary(log):
    """The metrics of the last ``fairseq-validate --log-format json`` summary in ``log``:
    ``{"valid_rec": "66.5", ...}`` -> ``{"rec": 66.5, ...}`` (prefix = the subset's name)."""
    record = None
    for line in Path(log).read_text(errors="replace").splitlines():
        if "| INFO |" not in line or "{" not in line:
            continue
        obj = parse_line(line)
        if obj is None:
            start = line.find("{")
            try:
                obj, _ = json.JSONDecoder().raw_decode(line[start:])
            except ValueError:
                continue
        if not isinstance(obj, dict) or "epoch" in obj:
            continue
        prefix = next((k[: -len("_loss")] for k in obj if k.endswith("_loss")), None)
        if prefix:
            record = {k[len(prefix) + 1 :]: float(v) for k, v in obj.items() if k.startswith(prefix + "_")}
    if record is None:
        raise PipelineError(f"no fairseq-validate summary in {log}")
    return record


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def join_dash_values(argv, flags):
    """``--setting --num-codes`` -> ``--setting=--num-codes`` (argparse would take a value that
    starts with ``-`` for an option)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in flags and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out
