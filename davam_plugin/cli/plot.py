"""``davam-plot``: training curves of one or more fairseq runs as a PNG, plus the data behind it.

    davam-plot LOG [LOG ...] --metrics rec,kl --out FIG.png [--x epoch|update]
               [--splits train,valid] [--labels a,b] [--hline rec=20.3:paper] [--json PATH]
               [--max-x 5]

LOG is what ``fairseq-train --log-format json`` writes (its ``--log-file``, or its redirected
console output; see :mod:`davam_plugin.cli.training_logs`), or the directory of its
``--tensorboard-logdir`` (or one event file in it; read without tensorboard, see
:mod:`davam_plugin.cli.tensorboard_logs`: fairseq writes no epochs there, so those runs plot
with ``--x update`` only). One subplot per metric, shared x
axis (epochs, or updates with ``--x update``: training curves then come from the
``train_inner`` records of every ``--log-interval`` updates), one colour per run, one line
style per split. ``--max-x N`` keeps the points up to epoch (update) N: runs of different
lengths compared over the budget they share. The curves are also written as JSON (``--json``, default FIG with the suffix
``.json``)::

    {"x": "epoch", "metrics": [...], "splits": [...], "hlines": {"rec": [{"value": 20.3, "label": "paper"}]},
     "runs": {"LABEL": {"log": "LOG", "splits": {"valid": {"rec": {"x": [1, 2], "y": [56.4, 55.8]}}}}}}

Problems (a missing log, an unknown metric or split, a bad option value) end the command
with one ``davam-plot: error: ...`` line on stderr and exit status 2.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from davam_plugin.cli import tensorboard_logs as tb
from davam_plugin.cli import training_logs as tl
from davam_plugin.cli.common import exit_status

PROG = "davam-plot"
_SPLIT_STYLES = {"train": "-", "valid": "--"}
_OTHER_STYLES = (":", "-.")
_MARKER_MAX_POINTS = 60


class PlotError(Exception):
    """A problem reported as one line on stderr (exit status 2)."""


def build_parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Plot the curves of fairseq training logs (--log-format json) of one or more "
        "runs into one figure (one subplot per metric) and write the data behind it as JSON.",
    )
    p.add_argument("logs", nargs="+", metavar="LOG",
                   help="a fairseq-train log (--log-format json: its --log-file, or redirected output), or its "
                   "--tensorboard-logdir (plotted per update)")  # fmt: skip
    p.add_argument("--metrics", default="loss", help="comma-separated metrics, e.g. rec,kl (default: loss)")
    p.add_argument("--out", required=True, metavar="FIG.png", help="the figure to write")
    p.add_argument("--json", metavar="PATH", help="the data behind the figure (default: FIG.json)")
    p.add_argument("--x", choices=tl.X_AXES, default="epoch", help="x axis (default: epoch)")
    p.add_argument("--splits", default="train,valid", help="comma-separated splits (default: train,valid)")
    p.add_argument("--labels", help="comma-separated run labels, one per LOG (default: each LOG's directory name)")
    p.add_argument(
        "--hline", action="append", default=[], metavar="NAME=VALUE[:LABEL]",
        help="a labelled horizontal reference line on the subplot of metric NAME (repeatable)",
    )  # fmt: skip
    p.add_argument("--title", help="figure title")
    p.add_argument("--max-x", type=float, metavar="N",
                   help="plot only the points with x <= N (e.g. the epochs every run has; default: all)")
    return p


def _comma_list(text, option):
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise PlotError(f"--{option} {text!r}: give comma-separated names, none empty")
    return list(dict.fromkeys(items))


def _parse_hline(text, metrics):
    name, sep, rest = text.partition("=")
    value_text, _, label = rest.partition(":")
    name = name.strip()
    try:
        value = float(value_text)
    except ValueError:
        value = None
    if not sep or not name or value is None:
        raise PlotError(f"--hline {text!r}: expected NAME=VALUE or NAME=VALUE:LABEL with a numeric VALUE")
    if name not in metrics:
        raise PlotError(f"--hline {text!r}: {name!r} is not among --metrics ({', '.join(metrics)})")
    return name, {"value": value, "label": label.strip() or f"{name} = {value_text.strip()}"}


def _default_labels(logs):
    dirs = [Path(log).absolute().parent.name for log in logs]
    # two logs in one directory: directory/file
    return [f"{d}/{Path(log).name}" if dirs.count(d) > 1 or not d else d for d, log in zip(dirs, logs, strict=True)]


def _run_labels(logs, labels_text):
    if labels_text is None:
        labels = _default_labels(logs)
    else:
        labels = [item.strip() for item in labels_text.split(",")]
        if len(labels) != len(logs) or not all(labels):
            raise PlotError(f"--labels {labels_text!r}: give {len(logs)} non-empty label(s), one per LOG")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise PlotError(f"run labels must be unique, {', '.join(duplicates)} repeats (use --labels)")
    return labels


def is_tensorboard(log):
    """Whether LOG is read as tensorboard event files: a directory, or a file named like one."""
    return Path(log).is_dir() or tb.is_event_file(log)


def load_runs(logs, labels, x="epoch"):
    """``[(label, log, records)]``; PlotError for a missing or unreadable log, one without
    records, or a tensorboard log plotted per epoch (``x``)."""
    for log in logs:
        if not Path(log).exists():
            raise PlotError(f"LOG not found: {log}")
        if not (Path(log).is_file() or Path(log).is_dir()):
            raise PlotError(f"LOG is not a file or a directory: {log}")
        if x == "epoch" and is_tensorboard(log):
            raise PlotError(f"LOG {log} is a tensorboard log, whose records fairseq writes without their epoch: "
                            "plot it with --x update")  # fmt: skip
    runs = []
    for log, label in zip(logs, labels, strict=True):
        try:
            records = tb.read_logdir(log) if is_tensorboard(log) else tl.read_log(log)
        except OSError as e:
            raise PlotError(f"cannot read LOG {log}: {e.strerror or e}") from None
        except tb.EventFileError as e:
            raise PlotError(f"LOG {log}: not a readable tensorboard event file: {e}") from None
        if not records and is_tensorboard(log):
            raise PlotError(f"no tensorboard scalars in {log} (give a fairseq-train --tensorboard-logdir, "
                            "one of its split directories or an event file)")  # fmt: skip
        if not records:
            raise PlotError(f"no fairseq JSON records in {log} (was it trained with --log-format json?)")
        runs.append((label, log, records))
    return runs


def collect(runs, metrics, splits, x, max_x=None):
    """``{label: {"log": LOG, "splits": {split: {metric: {"x": [...], "y": [...]}}}}}`` (only the
    points with x <= ``max_x`` when given); PlotError for a split or metric that no run has."""
    present_splits = set().union(*(tl.available_splits(records, x) for _, _, records in runs))
    missing = [s for s in splits if s not in present_splits]
    if missing:
        raise PlotError(
            f"unknown split {', '.join(map(repr, missing))} for --x {x}; splits in the log(s): "
            f"{', '.join(sorted(present_splits)) or 'none'}"
        )
    present = set().union(*(tl.metric_names(records, splits, x) for _, _, records in runs))
    missing = [m for m in metrics if m not in present]
    if missing:
        raise PlotError(
            f"unknown metric {', '.join(map(repr, missing))}; metrics in the log(s) "
            f"({', '.join(splits)}): {', '.join(sorted(present))}"
        )
    data = {}
    for label, log, records in runs:
        per_split = {}
        for split in splits:
            points = tl.curve_points(records, split, x)
            if max_x is not None:
                points = [(px, record) for px, record in points if px <= max_x]
            curves = {}
            for metric in metrics:
                xs, ys = tl.metric_series(points, metric)
                if xs:
                    curves[metric] = {"x": xs, "y": ys}
            if curves:
                per_split[split] = curves
        data[label] = {"log": str(log), "splits": per_split}
    return data


def draw(data, metrics, splits, x, hlines, out, title=None, vlines=()):
    """Write the figure (Agg canvas: no display needed): one subplot per metric, one legend
    entry per run and split above them, reference lines labelled on their subplot; ``vlines``
    ({"value": x, "label": ...}) are drawn on every subplot and labelled on the first, or, as
    a dict metric -> lines, each subplot gets its own (none where its metric is missing),
    labelled on the first subplot of each run of equal lists."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7.5, 1.6 + 2.4 * len(metrics)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    others = iter(_OTHER_STYLES * len(splits))
    styles = {s: _SPLIT_STYLES.get(s) or next(others) for s in splits}
    legend = {}
    per_metric = vlines if isinstance(vlines, dict) else {m: list(vlines) for m in metrics}
    above = None  # the vertical lines of the subplot above
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (label, run) in enumerate(data.items()):
            for split in splits:
                curve = run["splits"].get(split, {}).get(metric)
                if curve is None:
                    continue
                marker = "o" if len(curve["x"]) <= _MARKER_MAX_POINTS else None
                (line,) = ax.plot(curve["x"], curve["y"], color=f"C{i % 10}", linestyle=styles[split],
                                  marker=marker, markersize=3, linewidth=1.3)  # fmt: skip
                legend.setdefault(f"{label} {split}", line)
        for ref in hlines.get(metric, []):
            ax.axhline(ref["value"], color="0.25", linestyle=":", linewidth=1.2)
            ax.annotate(ref["label"], (1, ref["value"]), xycoords=ax.get_yaxis_transform(), xytext=(-4, 2),
                        textcoords="offset points", ha="right", va="bottom", fontsize="small",
                        color="0.25")  # fmt: skip
        lines = per_metric.get(metric) or []
        for i, ref in enumerate(lines):
            ax.axvline(ref["value"], color="0.55", linestyle="--", linewidth=0.9)
            if lines != above:  # labels staggered in height so that close lines stay readable
                ax.annotate(ref["label"], (ref["value"], 1 - 0.07 * (i % 3)), xycoords=ax.get_xaxis_transform(),
                            xytext=(2, -2), textcoords="offset points", ha="left", va="top", fontsize="x-small",
                            color="0.35")  # fmt: skip
        above = lines
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel(x)
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if legend:  # column by column: a run's splits one above the other
        ncols = min(4, -(-len(legend) // len(splits)))
        fig.legend(list(legend.values()), list(legend), loc="outside upper center", ncols=ncols,
                   fontsize="small", frameon=False)  # fmt: skip
    if title:
        axes[0].set_title(title)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=100)
    except ValueError as e:  # an extension matplotlib cannot write
        raise PlotError(f"--out {out}: {e}") from None


def dumps(obj, level=0):
    """JSON with one line per curve (its lists inline), so committed files diff well."""
    if isinstance(obj, dict) and obj:
        pad = "  " * (level + 1)
        items = (f"{pad}{json.dumps(str(k))}: {dumps(v, level + 1)}" for k, v in obj.items())
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    return json.dumps(obj, allow_nan=False)


def _summary(data, metrics, x):
    lines = []
    for label, run in data.items():
        if not run["splits"]:
            lines.append(f"  {label:<16} none of the metrics in these splits")
        for split, curves in run["splits"].items():
            xs = sorted({v for c in curves.values() for v in c["x"]})
            last = "  ".join(f"{m}={curves[m]['y'][-1]:g}" if m in curves else f"{m}=-" for m in metrics)
            lines.append(f"  {label:<16} {split:<6} {len(xs):>5} points, {x} {xs[0]}-{xs[-1]}   last: {last}")
    return lines


def run(args):
    metrics = _comma_list(args.metrics, "metrics")
    splits = _comma_list(args.splits, "splits")
    hlines = {}
    for text in args.hline:
        name, line = _parse_hline(text, metrics)
        hlines.setdefault(name, []).append(line)
    labels = _run_labels(args.logs, args.labels)
    runs = load_runs(args.logs, labels, args.x)
    if args.max_x is not None and not args.max_x > 0:
        raise PlotError(f"--max-x must be > 0, got {args.max_x:g}")
    data = collect(runs, metrics, splits, args.x, args.max_x)
    out = Path(args.out)
    json_path = Path(args.json) if args.json else out.with_suffix(".json")
    if json_path.absolute() == out.absolute():
        raise PlotError(f"--out {out} and the JSON would be the same file (give --out FIG.png or --json PATH)")
    draw(data, metrics, splits, args.x, hlines, out, args.title)
    doc = {"x": args.x, "max_x": args.max_x, "metrics": metrics, "splits": splits, "hlines": hlines, "runs": data}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(dumps(doc) + "\n")
    print(f"wrote {out} ({len(metrics)} subplot(s), {len(data)} run(s)) and {json_path}")
    print("\n".join(_summary(data, metrics, args.x)))


def main(argv=None):
    """Console script ``davam-plot``: returns 0, or 2 after one error line on stderr."""
    args = build_parser().parse_args(argv)
    # importing fairseq (via davam_plugin) sets the root logger to DEBUG: keep matplotlib's quiet
    for name in ("matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return exit_status(PROG, lambda: run(args), (PlotError,))  # OSError: e.g. --out not writable


if __name__ == "__main__":
    sys.exit(main())
