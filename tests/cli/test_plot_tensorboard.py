"""``davam-plot`` on ``fairseq-train --tensorboard-logdir`` (davam_plugin/cli/tensorboard_logs.py).

The fixture (tests/fixtures/tensorboard, made by its make_fixture.py with tensorboard installed)
is one real run of davam_tiny, 2 epochs of 8 updates in two processes (the second resumed),
that logged both ways at once: ``tb/`` (torch's SummaryWriter through fairseq's wrapper) and
``train.log`` (``--log-format json``). The event files are read here without tensorboard; the
curves they give must be the JSON log's.
"""

import json
import math
import shutil
import struct
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tensorboard"
TB = FIXTURE / "tb"
JSON_LOG = FIXTURE / "train.log"
METRICS = "loss,rec,commitment,beta,code_usage,lr"


def plot_json(tmp_path, name, *argv):
    from davam_plugin.cli import plot

    fig = tmp_path / f"{name}.png"
    assert plot.main([*map(str, argv), "--out", str(fig)]) == 0
    return json.loads(fig.with_suffix(".json").read_text())


def assert_same_curves(got, expected):
    """The same splits, metrics and x; y equal up to float32 (the event files' precision)."""
    assert got.keys() == expected.keys()
    for split, curves in expected.items():
        assert got[split].keys() == curves.keys(), split
        for metric, curve in curves.items():
            assert got[split][metric]["x"] == curve["x"], (split, metric)
            assert got[split][metric]["y"] == pytest.approx(curve["y"], rel=1e-6, abs=1e-6), (split, metric)


def test_logdir_gives_the_json_logs_curves(tmp_path):
    """Per update, train (train_inner) and valid: the logdir's curves are the JSON log's, over
    both processes' event files (updates 1-16, validations after 8 and 16)."""
    expected = plot_json(tmp_path, "json", JSON_LOG, "--metrics", METRICS, "--x", "update", "--labels", "run")
    got = plot_json(tmp_path, "tb", TB, "--metrics", METRICS, "--x", "update", "--labels", "run")
    runs = expected["runs"]["run"]["splits"]
    assert runs["train"]["rec"]["x"] == list(range(1, 17)) and runs["valid"]["rec"]["x"] == [8, 16]
    assert_same_curves(got["runs"]["run"]["splits"], runs)
    assert got["runs"]["run"]["log"] == str(TB)


def test_split_directory_and_event_file(tmp_path):
    """One split's directory, or one of its event files, is that split alone."""
    expected = plot_json(tmp_path, "json", JSON_LOG, "--metrics", "rec", "--x", "update", "--splits", "valid",
                         "--labels", "run")["runs"]["run"]["splits"]  # fmt: skip
    got = plot_json(tmp_path, "dir", TB / "valid", "--metrics", "rec", "--x", "update", "--splits", "valid",
                    "--labels", "run")["runs"]["run"]["splits"]  # fmt: skip
    assert_same_curves(got, expected)
    first = sorted((TB / "valid").iterdir())[0]
    got = plot_json(tmp_path, "file", first, "--metrics", "rec", "--x", "update", "--splits", "valid",
                    "--labels", "run")["runs"]["run"]["splits"]  # fmt: skip
    assert got["valid"]["rec"]["x"] == [8]
    assert got["valid"]["rec"]["y"] == pytest.approx(expected["valid"]["rec"]["y"][:1], rel=1e-6)


def test_crc32c_and_truncated_tail():
    """CRC-32C's check value; a record cut short at the end (a file being written) ends the
    file, where a changed byte is an error."""
    from davam_plugin.cli import tensorboard_logs as tb

    assert tb.crc32c(b"123456789") == 0xE3069283
    data = sorted((TB / "valid").iterdir())[0].read_bytes()
    whole = tb.tfrecords(data)
    assert len(whole) > 3
    # the last record without its final byte
    assert tb.tfrecords(data[:-1]) == whole[:-1]
    bad = bytearray(data)
    bad[len(data) // 2] ^= 0x01
    with pytest.raises(tb.EventFileError, match="CRC"):
        tb.tfrecords(bytes(bad))


def _record(payload):
    from davam_plugin.cli import tensorboard_logs as tb

    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", tb.masked_crc32c(length)) + payload + struct.pack("<I", tb.masked_crc32c(payload))


def _field(number, wire, body):
    key = bytes([number << 3 | wire])
    if wire == 2:
        assert len(body) < 128
        return key + bytes([len(body)]) + body
    return key + body


def _scalar_event(step, tag, value, tensor=False):
    if tensor:  # the new-style scalar: a DT_DOUBLE tensor with one double_val
        value_field = _field(8, 2, _field(1, 0, b"\x02") + _field(6, 2, struct.pack("<d", value)))
    else:
        value_field = _field(2, 5, struct.pack("<f", value))
    summary_value = _field(1, 2, tag.encode()) + value_field
    return _field(1, 1, struct.pack("<d", 1.5e9)) + _field(2, 0, bytes([step])) + _field(5, 2, _field(1, 2, summary_value))


def test_scalar_values_and_records():
    """simple_value and tensor scalars both read; one record per step, a new one when a tag repeats."""
    from davam_plugin.cli import tensorboard_logs as tb

    data = b"".join(_record(p) for p in [
        _field(3, 2, b"brain.Event:2"),  # file_version: no scalars
        _scalar_event(3, "rec", 20.5), _scalar_event(3, "kl", 0.25, tensor=True),
        _scalar_event(3, "rec", 19.5),  # the same step again (a rerun): a new record
        _scalar_event(5, "rec", 18.0),
    ])  # fmt: skip
    events = [tb.scalar_events(p) for p in tb.tfrecords(data)]
    assert events == [(0, []), (3, [("rec", 20.5)]), (3, [("kl", 0.25)]), (3, [("rec", 19.5)]), (5, [("rec", 18.0)])]
    records = tb.records_from_events("valid", events)
    assert [(r.split, r.epoch, r.num_updates, r.metrics) for r in records] == [
        ("valid", None, 3, {"rec": 20.5, "kl": 0.25}),
        ("valid", None, 3, {"rec": 19.5}),
        ("valid", None, 5, {"rec": 18.0}),
    ]
    assert all(math.isfinite(v) for r in records for v in r.metrics.values())


@pytest.mark.parametrize("case", ["epoch", "empty", "corrupt"])
def test_errors_are_one_line(tmp_path, capsys, case):
    from davam_plugin.cli import plot

    log, x, message = TB, "epoch", "is a tensorboard log, whose records fairseq writes without their epoch: plot it with --x update"
    if case == "empty":
        log, x, message = tmp_path / "empty", "update", "no tensorboard scalars in"
        log.mkdir()
    elif case == "corrupt":
        log = tmp_path / "tb"
        shutil.copytree(TB, log)
        event_file = sorted((log / "valid").iterdir())[0]
        data = bytearray(event_file.read_bytes())
        data[40] ^= 0xFF
        event_file.write_bytes(bytes(data))
        x, message = "update", f"LOG {log}: not a readable tensorboard event file: {event_file}: bad record"
    out = tmp_path / "out" / "f.png"
    assert plot.main([str(log), "--metrics", "rec", "--x", x, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("davam-plot: error: ")
    assert captured.err.count("\n") == 1 and message in captured.err
    assert not out.parent.exists()
