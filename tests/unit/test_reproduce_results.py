"""examples/reproduce/results.py on synthetic run logs: the LM baseline's JSON (base-2 loss per
token -> nats per sentence), and a DAVAM row's information curve taken from the run log or,
once the run directory is gone, from the committed lstm_lm_ptb.json (saying which)."""

import importlib.util
import json
import math
import shutil
from pathlib import Path

from fairseq.data import Dictionary, data_utils

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "fixtures" / "compat" / "data"


def _results_module():
    spec = importlib.util.spec_from_file_location("reproduce_results", REPO / "examples" / "reproduce" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _line(split, record):
    fields = {k: v if k == "epoch" else str(v) for k, v in record.items()}  # as fairseq writes them
    return f"2026-12-02 21:00:00 | INFO | {split} | {json.dumps(fields)}\n"


def _write_runs(runs):
    lm = runs / "lstm_lm_ptb"
    lm.mkdir(parents=True)
    lines = []
    for epoch, loss in [(1, 7.5), (2, 7.0), (3, 7.2)]:
        lines.append(_line("train", {"epoch": epoch, "train_loss": loss + 0.3, "train_train_wall": 1800, "train_wall": 1900 * epoch}))
        lines.append(_line("valid", {"epoch": epoch, "valid_loss": loss, "valid_num_updates": 100 * epoch}))
    (lm / "train.log").write_text("".join(lines))
    (lm / "train.cmd").write_text("fairseq-train DATA --arch lstm_lm\n")
    (lm / "train.done").write_text("2026-12-02T23:00:00Z\n")
    row = runs / "davam_fake"
    row.mkdir()
    lines = []
    for epoch, rec in [(1, 120.0), (2, 100.0)]:
        lines.append(_line("train", {"epoch": epoch, "train_loss": rec, "train_train_wall": 600}))
        lines.append(_line("valid", {"epoch": epoch, "valid_rec": rec, "valid_commitment": 1.5,
                                     "valid_code_usage": 10 * epoch, "valid_num_updates": 50 * epoch}))  # fmt: skip
    (row / "stage1.log").write_text("".join(lines))
    (row / "stage1.cmd").write_text("fairseq-train DATA --arch davam_ptb\n")


def test_lm_baseline_json_and_its_use_by_a_davam_row(tmp_path):
    results = _results_module()
    runs, out = tmp_path / "runs", tmp_path / "results"
    _write_runs(runs)
    d = Dictionary.load(str(DATA / "dict.txt"))
    valid = data_utils.load_indexed_dataset(str(DATA / "valid"), d)
    per_sentence = math.log(2) * float(valid.sizes.sum()) / len(valid)
    del valid

    results.main(["lstm_lm_ptb", "--runs", str(runs), "--data", str(DATA), "--out", str(out)])
    lm = json.loads((out / "lstm_lm_ptb.json").read_text())
    assert math.isclose(lm["valid_nll_per_sentence"], round(7.0 * per_sentence, 3))
    assert lm["best_epoch"] == 2 and lm["epochs"] == 3 and lm["train_hours"] == 1.5 and lm["status"] == "finished"
    assert lm["valid_curve"]["nll_per_sentence"] == [round(x * per_sentence, 3) for x in (7.5, 7.0, 7.2)]

    results.main(["davam_fake", "--runs", str(runs), "--data", str(DATA), "--out", str(out)])
    from_log = json.loads((out / "davam_fake.json").read_text())
    assert from_log["lm_baseline_source"].endswith("lstm_lm_ptb/train.log")
    assert from_log["valid_curves"]["info_vs_lm"]["value"] == [lm["valid_nll_per_sentence"] - r for r in (120.0, 100.0)]

    shutil.rmtree(runs / "lstm_lm_ptb")  # the machine changed: only the committed JSON is left
    results.main(["davam_fake", "--runs", str(runs), "--data", str(DATA), "--out", str(out)])
    from_json = json.loads((out / "davam_fake.json").read_text())
    assert "lstm_lm_ptb.json (commit" in from_json["lm_baseline_source"]
    assert from_json["valid_curves"]["info_vs_lm"] == from_log["valid_curves"]["info_vs_lm"]
    assert (out / "davam_fake.png").stat().st_size > 0
