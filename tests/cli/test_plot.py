"""``davam-plot`` (davam_plugin/cli/plot.py): fairseq json training logs -> PNG + JSON.

The logs are written here line by line in the formats ``fairseq-train --log-format json``
writes (checked against a real run of davam_tiny): the bare records of ``--log-file`` (with
the Python repr of the configuration, the model and messages in between, and each record
of epoch N written N times, as fairseq 0.12 does) and the console lines
``DATE TIME | INFO | train_inner | {...}`` of redirected output.

The installed console script runs once as a subprocess, started before this process imports
davam_plugin (importing fairseq takes seconds of CPU, so the two overlap); everything else,
the one-line errors included, calls the module functions and ``main()`` in process.
"""

import json
import os
import subprocess

import pytest

from conftest import BIN, SUBPROCESS_ENV

# davam_plugin.cli.plot and .training_logs are imported inside the tests: importing them imports
# davam_plugin (and fairseq), which should overlap with the console-script subprocess

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CONFIG_REPR = (
    "{'_name': None, 'common': {'_name': None, 'no_progress_bar': False, 'log_interval': 1, "
    "'log_format': 'json', 'log_file': 'davam/train.log'}, 'task': {'_name': 'sentence_vae'}}"
)


def inner(epoch, update, n, loss, rec, **extra):
    rec_ = {"epoch": epoch, "update": update, "loss": loss, "rec": rec}
    rec_.update(extra)
    rec_.update({"num_updates": str(n), "lr": "1", "gnorm": "3.1", "train_wall": "0", "wall": str(n)})
    return json.dumps(rec_)


def epoch_record(split, epoch, n, **metrics):
    rec_ = {"epoch": epoch}
    rec_.update({f"{split}_{k}": v for k, v in metrics.items()})
    rec_[f"{split}_num_updates"] = str(n)
    return json.dumps(rec_)


# A DAVAM run (--log-file), 2 updates per epoch, stopped by --max-update 3 in epoch 2 (fairseq
# then validates and closes epoch 2 early), then resumed from the end of epoch 1
# (--restore-file checkpoint1.pt): update 3 and epoch 2 appear again, with other values.
DAVAM_LOG = [
    CONFIG_REPR,
    "DavamModel(",
    "  (encoder): DavamEncoder(",
    "  )",
    ")",
    "task: SentenceVAETask",
    "Start iterating over samples",
    inner(1, 0.5, 1, "60.5", "58.25", commitment="9.5", code_usage="3"),
    inner(1, 1.0, 2, "50.5", "48.25", commitment="8.5", code_usage="4"),
    'begin validation on "valid" subset',
    epoch_record("valid", 1, 2, loss="55", rec="53.5", commitment="7.25", code_usage="4", best_loss="55"),
    "end of epoch 1 (average epoch stats below)",
    epoch_record("train", 1, 2, loss="55.5", rec="53.25", commitment="9", code_usage="4", wall="2"),
    "Start iterating over samples",
    *[inner(2, 1.5, 3, "47", "45.5", commitment="6", code_usage="4")] * 2,
    'begin validation on "valid" subset',
    *[epoch_record("valid", 2, 3, loss="51", rec="49.5", commitment="6", code_usage="5", best_loss="51")] * 2,
    "end of epoch 2 (average epoch stats below)",
    *[epoch_record("train", 2, 3, loss="47", rec="45.5", commitment="6", code_usage="4", wall="3")] * 2,
    "done training in 3.1 seconds",
    CONFIG_REPR,  # the resumed run
    "Loaded checkpoint davam/checkpoint1.pt (epoch 1 @ 2 updates)",
    "Start iterating over samples",
    *[inner(2, 1.5, 3, "44", "42.75", commitment="5", code_usage="5")] * 2,
    *[inner(2, 2.0, 4, "40", "38.5", commitment="4.5", code_usage="6")] * 2,
    'begin validation on "valid" subset',
    *[epoch_record("valid", 2, 4, loss="46", rec="44.5", commitment="3", code_usage="6", best_loss="46")] * 2,
    "end of epoch 2 (average epoch stats below)",
    *[epoch_record("train", 2, 4, loss="42", rec="40.625", commitment="4.75", code_usage="6", wall="4")] * 2,
    "done training in 2.9 seconds",
]


def console(tag, record):
    return f"2026-12-02 12:34:26 | INFO | {tag} | {record}"


# An AWD run's redirected console output: kl is missing from its first record.
AWD_LOG = [
    "2026-12-02 12:34:22 | INFO | fairseq.tasks.text_to_speech | Please install tensorboardX: pip install tensorboardX",
    console("fairseq_cli.train", CONFIG_REPR),
    "2026-12-02 12:34:23 | INFO | fairseq_cli.train | AwdModel(",
    ")",
    console("train_inner", inner(1, 0.5, 1, "70", "69.5", neg_elbo="70.5")),
    console("train_inner", inner(1, 1.0, 2, "65", "62.5", kl="2.5", neg_elbo="65")),
    console("valid", epoch_record("valid", 1, 2, loss="66", rec="63", kl="3", best_loss="66")),
    console("train", epoch_record("train", 1, 2, loss="67.5", rec="66", kl="1.25")),
    console("train_inner", inner(2, 1.5, 3, "60", "57", kl="3.5", neg_elbo="60.5")),
    console("train_inner", inner(2, 2.0, 4, "58", "54.25", kl="3.75", neg_elbo="58")),
    console("valid", epoch_record("valid", 2, 4, loss="61", rec="57.5", kl="3.5", best_loss="61")),
    console("train", epoch_record("train", 2, 4, loss="59", rec="55.5", kl="3.625")),
    "2026-12-02 12:34:27 | INFO | fairseq_cli.train | done training in 1.7 seconds",
]

EXPECTED_EPOCH_RUNS = {
    "davam": {
        "train": {"rec": {"x": [1, 2], "y": [53.25, 40.625]}},
        "valid": {"rec": {"x": [1, 2], "y": [53.5, 44.5]}},
    },
    "awd": {
        "train": {"rec": {"x": [1, 2], "y": [66.0, 55.5]}, "kl": {"x": [1, 2], "y": [1.25, 3.625]}},
        "valid": {"rec": {"x": [1, 2], "y": [63.0, 57.5]}, "kl": {"x": [1, 2], "y": [3.0, 3.5]}},
    },
}


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot")
    paths = {}
    for name, lines in (("davam", DAVAM_LOG), ("awd", AWD_LOG)):
        (root / name).mkdir()
        paths[name] = root / name / "train.log"
        paths[name].write_text("\n".join(lines) + "\n")
    return root, paths


@pytest.fixture(scope="module", autouse=True)
def console_runs(logs):
    """Start the installed ``davam-plot`` (from another directory) before the first test;
    ``results(name)`` waits for its run and gives ``(returncode, stdout, stderr)``."""
    root, _ = logs
    exe = str(BIN / "davam-plot")
    commands = {
        "ok": [exe, "davam/train.log", "awd/train.log", "--metrics", "rec,kl", "--out", "figs/curves.png",
               "--hline", "rec=50:paper"],
    }  # fmt: skip
    procs = {
        name: subprocess.Popen(cmd, cwd=root, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
        for name, cmd in commands.items()
    }
    done = {}

    def results(name):
        if name not in done:
            out, err = procs[name].communicate(timeout=240)
            done[name] = (procs[name].returncode, out, err)
        return done[name]

    yield root, results
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def assert_png(path):
    from PIL import Image

    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE)
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100
        image.verify()


def curves(doc):
    return {label: run["splits"] for label, run in doc["runs"].items()}


def test_parse_lines_skips_everything_but_records():
    from davam_plugin.cli import training_logs as tl

    records = tl.parse_lines(DAVAM_LOG)
    assert [r.split for r in records[:4]] == ["train_inner", "train_inner", "valid", "train"]
    assert len(records) == 2 + 2 + 6 + 8
    first = records[0]
    assert (first.epoch, first.num_updates) == (1, 1)
    assert first.metrics["rec"] == 58.25 and "num_updates" not in first.metrics
    assert records[2].metrics == {"loss": 55.0, "rec": 53.5, "commitment": 7.25, "code_usage": 4.0, "best_loss": 55.0}
    assert records[2].num_updates == 2
    assert tl.parse_lines(AWD_LOG)[0] == tl.parse_lines([inner(1, 0.5, 1, "70", "69.5", neg_elbo="70.5")])[0]


def test_curve_points_keep_the_last_occurrence():
    from davam_plugin.cli import training_logs as tl

    records = tl.parse_lines(DAVAM_LOG)
    by_update = tl.curve_points(records, "train", "update")
    assert tl.metric_series(by_update, "rec") == ([1, 2, 3, 4], [58.25, 48.25, 42.75, 38.5])
    assert tl.metric_series(tl.curve_points(records, "valid", "epoch"), "loss") == ([1, 2], [55.0, 46.0])
    assert tl.available_splits(records, "epoch") == {"train", "valid"}
    awd = tl.curve_points(tl.parse_lines(AWD_LOG), "train", "update")
    assert tl.metric_series(awd, "kl") == ([2, 3, 4], [2.5, 3.5, 3.75])  # missing in update 1


def test_console_script_writes_png_and_json(console_runs):
    root, results = console_runs
    rc, out, err = results("ok")
    assert rc == 0, err
    assert "wrote figs/curves.png" in out
    assert_png(root / "figs" / "curves.png")
    doc = json.loads((root / "figs" / "curves.json").read_text())
    assert curves(doc) == EXPECTED_EPOCH_RUNS
    assert doc["runs"]["davam"]["log"] == "davam/train.log"
    assert (doc["x"], doc["metrics"], doc["splits"]) == ("epoch", ["rec", "kl"], ["train", "valid"])
    assert doc["hlines"] == {"rec": [{"value": 50.0, "label": "paper"}]}


def test_main_per_update_with_labels(logs, tmp_path, capsys):
    from davam_plugin.cli import plot

    _, paths = logs
    fig, data = tmp_path / "u" / "fig.png", tmp_path / "data" / "curves.json"
    argv = [str(paths["davam"]), str(paths["awd"]), "--metrics", "rec,kl", "--x", "update", "--splits", "train",
            "--labels", "DAVAM,AWD", "--out", str(fig), "--json", str(data)]  # fmt: skip
    assert plot.main(argv) == 0
    assert_png(fig)
    assert not fig.with_suffix(".json").exists()
    doc = json.loads(data.read_text())
    assert curves(doc) == {
        "DAVAM": {"train": {"rec": {"x": [1, 2, 3, 4], "y": [58.25, 48.25, 42.75, 38.5]}}},
        "AWD": {
            "train": {
                "rec": {"x": [1, 2, 3, 4], "y": [69.5, 62.5, 57.0, 54.25]},
                "kl": {"x": [2, 3, 4], "y": [2.5, 3.5, 3.75]},
            }
        },
    }
    assert "DAVAM" in capsys.readouterr().out


def test_max_x_keeps_the_shared_budget(logs, tmp_path):
    """--max-x N: only the points up to epoch (update) N, of every run and split."""
    from davam_plugin.cli import plot

    _, paths = logs
    fig = tmp_path / "fig.png"
    argv = [str(paths["davam"]), str(paths["awd"]), "--metrics", "rec,kl", "--labels", "davam,awd",
            "--max-x", "1", "--out", str(fig)]  # fmt: skip
    assert plot.main(argv) == 0
    doc = json.loads(fig.with_suffix(".json").read_text())
    expected = {label: {split: {m: {"x": c["x"][:1], "y": c["y"][:1]} for m, c in curves_.items()}
                        for split, curves_ in splits.items()} for label, splits in EXPECTED_EPOCH_RUNS.items()}  # fmt: skip
    assert curves(doc) == expected and doc["max_x"] == 1.0
    argv[argv.index("--max-x") + 1] = "3"  # beyond the last epoch: everything
    assert plot.main(argv) == 0
    assert curves(json.loads(fig.with_suffix(".json").read_text())) == EXPECTED_EPOCH_RUNS


@pytest.mark.parametrize(
    "args, message",
    [
        (["nowhere/train.log", "--metrics", "rec"], "LOG not found: nowhere/train.log"),
        (["--metrics", "rec,nope"], "unknown metric 'nope'; metrics in the log(s) (train, valid): best_loss, code_"),
        (["--metrics", "rec", "--hline", "rec=high"], "--hline 'rec=high': expected NAME=VALUE"),
        (["--metrics", "rec", "--hline", "kl=3"], "'kl' is not among --metrics"),
        (["--metrics", "rec", "--splits", "train,test"], "unknown split 'test' for --x epoch; splits in the log(s):"),
        (["--metrics", "rec", "--labels", "a,b"], "--labels 'a,b': give 1 non-empty label(s)"),
        (["--metrics", "rec", "--max-x", "0"], "--max-x must be > 0, got 0"),
    ],
)
def test_main_errors_are_one_line(logs, tmp_path, capsys, args, message):
    """main() reports a problem as one stderr line (no traceback) and returns 2, writing nothing."""
    from davam_plugin.cli import plot

    _, paths = logs
    assert plot.main([str(paths["davam"]), *args, "--out", str(tmp_path / "f.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("davam-plot: error: ")
    assert captured.err.count("\n") == 1 and message in captured.err
    assert not os.listdir(tmp_path)


def test_vertical_reference_lines_are_drawn(tmp_path):
    """draw(..., vlines=[...]): dashed lines across every subplot (results.py marks the
    learning-rate decays with them); the figure differs from the one without them only there."""
    from davam_plugin.cli import plot

    data = {"run": {"splits": {"valid": {"rec": {"x": [1, 2, 3, 4], "y": [4.0, 3.0, 2.5, 2.0]},
                                         "kl": {"x": [1, 2, 3, 4], "y": [1.0, 1.5, 1.7, 1.8]}}}}}  # fmt: skip
    plain, marked = tmp_path / "plain.png", tmp_path / "marked.png"
    plot.draw(data, ["rec", "kl"], ["valid"], "epoch", {}, plain)
    plot.draw(data, ["rec", "kl"], ["valid"], "epoch", {}, marked, vlines=[{"value": 2.5, "label": "lr 0.5"}])
    import matplotlib.image

    a, b = matplotlib.image.imread(plain), matplotlib.image.imread(marked)
    assert a.shape == b.shape
    rows, columns = (abs(a - b).sum(axis=2) > 0.1).nonzero()
    assert len(rows), "the lines are missing"
    assert columns.max() - columns.min() < 0.2 * a.shape[1], "one x position (line and its label)"
    assert rows.max() - rows.min() > 0.6 * a.shape[0], "a line runs across both subplots"


def test_vertical_lines_per_subplot(tmp_path):
    """draw(..., vlines={metric: [...]}): each subplot gets its own lines, none where its metric
    has none (results.py marks stage one's decays on its panels and the prior's on its own)."""
    from davam_plugin.cli import plot

    data = {"run": {"splits": {"valid": {"rec": {"x": [1, 2, 3, 4], "y": [4.0, 3.0, 2.5, 2.0]},
                                         "kl": {"x": [1, 2, 3, 4], "y": [1.0, 1.5, 1.7, 1.8]}}}}}  # fmt: skip
    plain, marked = tmp_path / "plain.png", tmp_path / "marked.png"
    plot.draw(data, ["rec", "kl"], ["valid"], "epoch", {}, plain)
    plot.draw(data, ["rec", "kl"], ["valid"], "epoch", {}, marked, vlines={"kl": [{"value": 2.5, "label": "lr 0.5"}]})
    import matplotlib.image

    a, b = matplotlib.image.imread(plain), matplotlib.image.imread(marked)
    rows, columns = (abs(a - b).sum(axis=2) > 0.1).nonzero()
    assert len(rows), "the line is missing"
    assert rows.min() > 0.45 * a.shape[0], "only in the lower subplot (kl), not in rec's"
    assert columns.max() - columns.min() < 0.2 * a.shape[1], "one x position (line and its label)"
