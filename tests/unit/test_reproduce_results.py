"""examples/reproduce/results.py on synthetic run logs: the LM baseline's JSON (base-2 loss per
token -> nats per sentence), and a DAVAM row's information curve taken from the run log or,
once the run directory is gone, from the committed lstm_lm_ptb.json (saying which)."""

import json
import math
import shutil
from pathlib import Path

import pytest
from fairseq.data import Dictionary, data_utils
from helpers import load_script

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "fixtures" / "compat" / "data"


def _results_module():
    return load_script(REPO / "examples" / "reproduce" / "results.py", "reproduce_results")


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
        attention = {"valid_attn_entropy": 2.5, "valid_attn_entropy_uniform": 3.25, "valid_attn_v_norm": 0.5} if epoch == 2 else {}  # new in epoch 2
        lines.append(_line("valid", {"epoch": epoch, "valid_rec": rec, "valid_commitment": 1.5,
                                     "valid_code_usage": 10 * epoch, "valid_num_updates": 50 * epoch, **attention}))  # fmt: skip
    (row / "stage1.log").write_text("".join(lines))
    (row / "stage1.cmd").write_text("fairseq-train DATA --arch davam_ptb\n")


def test_lm_baseline_json_and_its_use_by_a_davam_row(tmp_path, monkeypatch):
    results = _results_module()
    runs, out = tmp_path / "runs", tmp_path / "results"
    _write_runs(runs)
    d = Dictionary.load(str(DATA / "dict.txt"))
    valid = data_utils.load_indexed_dataset(str(DATA / "valid"), d)
    per_sentence = math.log(2) * float(valid.sizes.sum()) / len(valid)
    del valid

    # the defaults of --runs, --data and --out are the recipes' RUNS, DATA and RESULTS (all.sh runs it so)
    monkeypatch.setenv("RUNS", str(runs))
    monkeypatch.setenv("DATA", str(DATA))
    monkeypatch.setenv("RESULTS", str(out))
    results.main(["lstm_lm_ptb"])
    lm = json.loads((out / "lstm_lm_ptb.json").read_text())
    assert math.isclose(lm["valid_nll_per_sentence"], round(7.0 * per_sentence, 3))
    assert lm["best_epoch"] == 2 and lm["epochs"] == 3 and lm["train_hours"] == 1.5 and lm["status"] == "finished"
    assert lm["precision"] == "fp32" and lm["seed"] == 1  # from train.cmd
    assert lm["valid_curve"]["nll_per_sentence"] == [round(x * per_sentence, 3) for x in (7.5, 7.0, 7.2)]

    results.main(["davam_fake", "--runs", str(runs), "--data", str(DATA), "--out", str(out)])
    from_log = json.loads((out / "davam_fake.json").read_text())
    assert from_log["lm_baseline_source"].endswith("lstm_lm_ptb/train.log")
    assert from_log["valid_curves"]["info_vs_lm"]["value"] == [lm["valid_nll_per_sentence"] - r for r in (120.0, 100.0)]
    assert from_log["valid_curves"]["attn_entropy"] == {"epoch": [2], "value": [2.5]}  # from where the log has it
    assert from_log["valid_curves"]["attn_v_norm"] == {"epoch": [2], "value": [0.5]}

    shutil.rmtree(runs / "lstm_lm_ptb")  # the machine changed: only the committed JSON is left
    results.main(["davam_fake", "--runs", str(runs), "--data", str(DATA), "--out", str(out)])
    from_json = json.loads((out / "davam_fake.json").read_text())
    assert "lstm_lm_ptb.json (commit" in from_json["lm_baseline_source"]
    assert from_json["valid_curves"]["info_vs_lm"] == from_log["valid_curves"]["info_vs_lm"]
    assert (out / "davam_fake.png").stat().st_size > 0


def test_readme_reproduction_table_is_the_one_the_committed_results_give():
    """README's table is written from results/*.json (``results.py --table --write README.md``):
    a results file committed without rewriting the table fails here."""
    results = _results_module()
    readme = (REPO / "README.md").read_text()
    block = readme.split(results.TABLE_START, 1)[1].split(results.TABLE_END, 1)[0]
    assert block == "\n" + results.reproduction_table(REPO / "results")


def test_reproduction_table_cells(tmp_path):
    results = _results_module()
    davam = {"row": "davam_ptb_k512", "status": "finished", "epochs": 40, "updates": 52600, "train_hours": 8.5,
             "precision": "fp32", "threads": 1,
             "valid_curves": {"rec": {"epoch": [1, 40], "value": [120.0, 61.234]},
                              "commitment": {"epoch": [1, 40], "value": [2.0, 0.5]},
                              "code_usage": {"epoch": [1, 40], "value": [3, 480]},
                              "info_vs_lm": {"epoch": [1, 40], "value": [-15.0, 44.0]}},
             "prior_epochs": 30, "prior_train_hours": 12.25, "prior_precision": "bf16-autocast",
             "prior_valid_curve": {"epoch": [1, 30], "nll_per_sentence": [150.0, 70.125]},
             "evaluation": {"rec": 60.5, "kl_paper": 3.0, "kl": 70.25, "ppl_paper": 18.0, "ppl_bound": 130.126},
             "diversity": {"sentences": 100, "ent": 7.125, "dist_1": 0.1234, "dist_2": 0.5678},
             "fluency": {"overall": {"sentences": 100, "ppl": 95.25}}}  # fmt: skip
    awd = {"row": "awd_ptb_uniform", "status": "training (interrupted or running)", "epochs": 3, "updates": 3945,
           "train_hours": 1.5, "precision": "fp32", "threads": 2,
           "valid_curves": {"neg_elbo": {"epoch": [3], "value": [110.0]}, "rec": {"epoch": [3], "value": [106.0]},
                            "kl": {"epoch": [3], "value": [4.0]}},
           "evaluation": {"neg_elbo": 100.0, "kl": 5.0, "mi": 4.25, "active_units": 12, "latent_dim": 32,
                          "iw_nll": 98.5, "iw_samples": 100}}  # fmt: skip
    for r in (davam, awd):
        (tmp_path / f"{r['row']}.json").write_text(json.dumps(r))
    (tmp_path / "davam_ptb_k512.png").write_bytes(b"")
    rows = {line.split(" | ")[0][2:]: line for line in results.reproduction_table(tmp_path).splitlines()[2:]}
    assert rows["`davam_ptb_k512`"] == (
        "| `davam_ptb_k512` | Rec 60.16, KL 3.12, PPL 17.94: row 11 of Table II (DAVAM) | "
        "[finished](results/davam_ptb_k512.json), [curves](results/davam_ptb_k512.png) | "
        "40 epochs, 52,600 updates, 8.50 h (fp32, 1 thread); prior 30 epochs, 12.25 h (bf16-autocast), "
        "valid NLL 70.12 | Rec 61.23, 480 codes, LM NLL - Rec +44.00 | "
        "Rec 60.50, KL 3.00 (paper conv.) / 70.25 (sum), PPL 18.00 (paper conv.) / 130.13 (bound); "
        "100 samples: Ent 7.12, Dist-1 0.123, Dist-2 0.568, LM PPL 95.2 |"
    )
    davam["prior_valid_curve"] = {"epoch": [1, 2, 3], "nll_per_sentence": [150.0, 68.5, 69.25]}  # past its best
    (tmp_path / "davam_ptb_k512.json").write_text(json.dumps(davam))
    table = results.reproduction_table(tmp_path)
    assert "prior 30 epochs, 12.25 h (bf16-autocast), valid NLL 69.25 (best 68.50, epoch 2) | Rec 61.23" in table
    assert rows["`awd_ptb_uniform`"].endswith(
        "| [training](results/awd_ptb_uniform.json) | 3 epochs, 3,945 updates, 1.50 h (fp32, 2 threads) | "
        "-ELBO 110.00, Rec 106.00, KL 4.00 | -ELBO 100.00, KL 5.00, MI 4.25, AU 12/32, IW-NLL 98.50 (S=100) |"
    )
    assert rows["`awd_ptb_none`"].endswith("| no results yet | - | - | - |")
    (tmp_path / "davam_ptb_k512.json").write_text(json.dumps(dict(davam, status="stage2 (interrupted or running)",
                                                                  stage="stage2")))  # fmt: skip
    table = results.reproduction_table(tmp_path)
    assert "| [training the prior](results/davam_ptb_k512.json), [curves](results/davam_ptb_k512.png) |" in table
    (tmp_path / "davam_ptb_k512.json").write_text(json.dumps(dict(davam, status="held before stage2: AWD first",
                                                                  stage="stage2")))  # fmt: skip
    table = results.reproduction_table(tmp_path)
    assert "| [held before its prior](results/davam_ptb_k512.json), [curves](results/davam_ptb_k512.png) |" in table
    # a last validation worse than an earlier one: the best so far is shown beside it
    worse = {"epoch": [1, 2, 3], "value": [120.0, 70.004, 71.5]}
    (tmp_path / "davam_ptb_k512.json").write_text(json.dumps(dict(davam, valid_curves=dict(davam["valid_curves"],
                                                                                           rec=worse))))  # fmt: skip
    awd["valid_curves"]["neg_elbo"] = {"epoch": [2, 3], "value": [109.5, 110.0]}
    (tmp_path / "awd_ptb_uniform.json").write_text(json.dumps(awd))
    table = results.reproduction_table(tmp_path)
    assert "| Rec 71.50 (best 70.00, epoch 2), 480 codes, LM NLL - Rec +44.00 |" in table
    assert "| -ELBO 110.00 (best 109.50, epoch 2), Rec 106.00, KL 4.00 |" in table


def test_davam_row_status_follows_its_stages_and_plots_the_prior(tmp_path):
    """A DAVAM row is finished only when its last stage (fluency) is; until then the JSON names
    the stage it is in. Stage two's validation NLL per epoch and its hours come from stage2.log."""
    results = _results_module()
    runs, out = tmp_path / "runs", tmp_path / "results"
    _write_runs(runs)
    row = runs / "davam_fake"
    args = ["davam_fake", "--runs", str(runs), "--data", str(DATA), "--out", str(out)]
    results.main(args)
    r = json.loads((out / "davam_fake.json").read_text())
    assert r["status"] == "stage1 (interrupted or running)" and r["stage"] == "stage1" and "prior_epochs" not in r
    (row / "stage1.done").write_text("2026-12-03T00:00:00Z\n")
    results.main(args)
    r = json.loads((out / "davam_fake.json").read_text())
    assert r["stage"] == "test" and "evaluation" not in r
    # stage one's test Rec (fairseq-validate's test.log) stands as the evaluation until the full one
    (row / "test.log").write_text("2026-12-03 01:00:00 | INFO | test | " + json.dumps(
        {"test_loss": "90.5", "test_rec": "80.28", "test_commitment": "1.2", "test_code_usage": "512"}) + "\n")
    (row / "test.done").write_text("2026-12-03T01:00:00Z\n")
    save = "2026-12-03 00:{} | INFO | fairseq.checkpoint_utils | Saved checkpoint /r/davam_fake/stage1/checkpoint_{}.pt (epoch {} @ {} updates, score {}) (writing took 0.5 seconds)\n"
    with open(row / "stage1.log", "a") as log:  # the last save of checkpoint_best.pt says which weights were tested
        log.write(save.format(10, "best", 1, 50, "121.5") + save.format(20, "best", 2, 100, "101.5")
                  + save.format(30, "last", 3, 150, "102.0"))
    results.main(args)
    r = json.loads((out / "davam_fake.json").read_text())
    tested = {"tool": "fairseq-validate", "split": "test", "path": "stage1/checkpoint_best.pt", "rec": 80.28,
              "commitment": 1.2, "code_usage": 512.0, "checkpoint": {"epoch": 2, "updates": 100, "score": 101.5}}
    assert r["stage"] == "stage2" and r["stage1_test"] == r["evaluation"] == tested
    assert "Rec 80.28, commitment 1.20, 512 codes (stage one, epoch 2's weights; KL and PPL once the prior is trained)" in results._test(r)
    assert "(stage one only, epoch 2's weights: no prior, so no KL or PPL)" in results._test(dict(r, stage=None))  # a recipe without one
    assert r["status"] == "stage2 (interrupted or running)"
    # held before its prior on purpose (RUN/hold_before, reached: RUN/held): the status says so, with the reason
    (row / "hold_before").write_text("stage2 the AWD rows first\n")
    results.main(args)
    assert json.loads((out / "davam_fake.json").read_text())["status"] == "stage2 (interrupted or running)"  # not reached
    (row / "held").write_text("stage2 2026-12-05T14:00:00Z\n")
    results.main(args)
    r = json.loads((out / "davam_fake.json").read_text())
    assert r["status"] == "held before stage2: the AWD rows first" and r["stage"] == "stage2"
    (row / "hold_before").write_text("eval\n")  # moved to a later stage: the row goes on to it
    assert results.held_before(row) is None
    (row / "hold_before").unlink()
    (row / "held").unlink()
    lines = []
    for epoch, nll in [(1, 150.0), (2, 120.5), (3, 110.25)]:
        lines.append(_line("train", {"epoch": epoch, "train_loss": 5.0, "train_train_wall": 900}))
        lines.append(_line("valid", {"epoch": epoch, "valid_nll_per_sentence": nll, "valid_num_updates": 40 * epoch}))
    (row / "stage2.log").write_text("".join(lines))
    (row / "stage2.cmd").write_text("fairseq-train DATA --task davam_prior --bf16-autocast\n")
    results.main(args)
    r = json.loads((out / "davam_fake.json").read_text())
    assert r["stage"] == "stage2" and r["prior_epochs"] == 3 and r["prior_updates"] == 120
    assert r["prior_train_hours"] == 0.75 and r["prior_precision"] == "bf16-autocast" and r["precision"] == "fp32"
    assert r["prior_valid_curve"] == {"epoch": [1, 2, 3], "nll_per_sentence": [150.0, 120.5, 110.25]}
    for stage in ("stage2", "eval", "samples", "diversity"):
        (row / f"{stage}.done").write_text("2026-12-03T00:00:00Z\n")
    (row / "diversity.json").write_text(json.dumps({"sentences": 100, "ent": 7.0, "dist_1": 0.1, "dist_2": 0.5}))
    full = {"rec": 80.28, "kl": 30.0, "kl_paper": 1.3, "ppl_bound": 40.0, "ppl_paper": 20.0}
    (row / "eval_test.json").write_text(json.dumps(full))
    results.main(args)
    r = json.loads((out / "davam_fake.json").read_text())
    assert r["stage"] == "fluency" and r["diversity"]["ent"] == 7.0 and "fluency" not in r
    assert r["evaluation"] == full and r["stage1_test"]["rec"] == 80.28  # the full evaluation wins
    (row / "fluency.done").write_text("2026-12-03T00:00:00Z\n")
    results.main(args)
    r = json.loads((out / "davam_fake.json").read_text())
    assert r["status"] == "finished" and r["stage"] is None


def test_a_run_stopped_on_purpose_says_so_and_why(tmp_path):
    """--stopped REASON records an unfinished run stopped by hand (issue 11's rule) in the status;
    a finished row or the LM baseline refuse it with one line."""
    results = _results_module()
    runs, out = tmp_path / "runs", tmp_path / "results"
    _write_runs(runs)
    args = ["davam_fake", "--runs", str(runs), "--data", str(DATA), "--out", str(out)]
    results.main(args + ["--stopped", "attention uniform after the warm-up"])
    r = json.loads((out / "davam_fake.json").read_text())
    assert r["status"] == "stopped in stage1: attention uniform after the warm-up" and r["stage"] == "stage1"
    assert (runs / "davam_fake" / "stopped.txt").read_text() == "attention uniform after the warm-up\n"
    results.TABLE_ROWS.append(("davam_fake", "Rec 60.16", "a test row"))
    assert "| `davam_fake` | Rec 60.16: a test row | [stopped while training](results/davam_fake.json), [curves]" in (
        results.reproduction_table(out))
    for stage in ("stage1", "test", "stage2", "eval", "samples", "diversity", "fluency"):
        (runs / "davam_fake" / f"{stage}.done").write_text("2026-12-04T00:00:00Z\n")
    with pytest.raises(SystemExit, match=r"^error: --stopped: davam_fake has finished"):
        results.main(args + ["--stopped", "why"])
    with pytest.raises(SystemExit):
        results.main(["lstm_lm_ptb", "--runs", str(runs), "--data", str(DATA), "--out", str(out), "--stopped", "why"])
    assert not (out / "lstm_lm_ptb.json").exists()


def test_a_restarted_unfinished_run_does_not_overwrite_the_record_of_a_run_that_got_further(tmp_path):
    """After a machine change lost a run, the row starts again: until the new run finishes (or
    --replace), results.py keeps the committed JSON and PNG of the old one and fails with one line."""
    results = _results_module()
    runs, out = tmp_path / "runs", tmp_path / "results"
    _write_runs(runs)
    out.mkdir()
    old = {"row": "davam_fake", "updates": 92050, "status": "stage1 (interrupted or running)"}
    (out / "davam_fake.json").write_text(json.dumps(old))
    args = ["davam_fake", "--runs", str(runs), "--data", str(DATA), "--out", str(out)]
    with pytest.raises(SystemExit) as refused:
        results.main(args)
    assert str(refused.value) == (
        f"error: {out}/davam_fake.json holds a run further along (92,050 updates, stage1 (interrupted or running)) "
        "than the unfinished one in the run directory (100 updates), such as a run lost with an earlier machine: "
        "it is kept; pass --replace to overwrite it")
    assert json.loads((out / "davam_fake.json").read_text()) == old and not (out / "davam_fake.png").exists()
    results.main(args + ["--replace"])
    assert json.loads((out / "davam_fake.json").read_text())["updates"] == 100
    # a finished run replaces the record without --replace
    (out / "davam_fake.json").write_text(json.dumps(old))
    for stage in ("stage1", "test", "stage2", "eval", "samples", "diversity", "fluency"):
        (runs / "davam_fake" / f"{stage}.done").write_text("2026-12-04T00:00:00Z\n")
    results.main(args)
    assert json.loads((out / "davam_fake.json").read_text())["status"] == "finished"
    # the LM baseline by epochs: its run (3 epochs) is finished, so it replaces a 9-epoch record ...
    lm_args = ["lstm_lm_ptb", "--runs", str(runs), "--data", str(DATA), "--out", str(out)]
    (out / "lstm_lm_ptb.json").write_text(json.dumps({"epochs": 9, "status": "finished"}))
    results.main(lm_args)
    assert json.loads((out / "lstm_lm_ptb.json").read_text())["epochs"] == 3
    # ... but not while it trains
    (out / "lstm_lm_ptb.json").write_text(json.dumps({"epochs": 9, "status": "finished"}))
    (runs / "lstm_lm_ptb" / "train.done").unlink()
    with pytest.raises(SystemExit, match=r"holds a run further along \(9 epochs, finished\)"):
        results.main(lm_args)
    assert json.loads((out / "lstm_lm_ptb.json").read_text())["epochs"] == 9


def test_write_table_needs_the_markers(tmp_path):
    results = _results_module()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{results.TABLE_START}\nold\n{results.TABLE_END}\ntail\n")
    results.write_table(readme, "| new |\n")
    assert readme.read_text() == f"# x\n{results.TABLE_START}\n| new |\n{results.TABLE_END}\ntail\n"
    readme.write_text("# no markers\n")
    try:
        results.write_table(readme, "| new |\n")
    except SystemExit as e:
        assert "no reproduction-table markers" in str(e)
    else:
        raise AssertionError("write_table accepted a README without markers")


def test_training_hours_leave_out_pauses(tmp_path):
    """A run paused with SIGSTOP logs the pause as train_wall: the estimate counts an interval
    longer than 3x the median time per update at the median, keeps the last occurrence of an
    update a resumed run repeats, and scales to the updates of the last record."""
    results = _results_module()
    inner = [(100, 50.0), (200, 50.0), (300, 5000.0), (400, 60.0), (300, 40.0), (400, 50.0), (450, 25.0)]
    lines = [_line("train_inner", {"epoch": 1, "update": u / 500, "num_updates": u, "train_wall": w}) for u, w in inner]
    lines.append(_line("train", {"epoch": 1, "train_train_wall": 5275.0, "train_num_updates": 500}))
    log = tmp_path / "train.log"
    log.write_text("".join(lines))
    hours, logged, paused = results.training_hours(results.read_curves(log)[0])
    # kept: 100: 50, 200: 50, 300: 40 (the rerun), 400: 50, 450: 25 -> 215 s for 450 updates, no pause left
    assert hours == round(215 * 500 / 450 / 3600, 3) and logged == round(5275 / 3600, 3) and paused == 0.0
    lines.insert(2, _line("train_inner", {"epoch": 1, "update": 0.5, "num_updates": 250, "train_wall": 4000.0}))  # paused: 50 updates
    log.write_text("".join(lines))
    hours, _, paused = results.training_hours(results.read_curves(log)[0])
    # median 0.5 s per update: the 50-update interval counts 3 x 0.5 x 50 = 75 s, 3925 s were a pause
    assert paused == round(3925 / 3600, 3) and hours == round((215 + 75) * 500 / 450 / 3600, 3)


def test_awd_ordering_line(tmp_path):
    """Below the table: the AWD paper's ordering claim, each part checked on our numbers as soon
    as the rows it compares have a test evaluation (the rest pending), with a warning when
    budgets differ."""
    results = _results_module()
    head = "**AWD ordering**"

    def row(mode, neg_elbo, kl, mi, epochs=40):
        r = {"row": f"awd_ptb_{mode}", "epochs_completed": epochs,
             "evaluation": {"neg_elbo": neg_elbo, "kl": kl, "mi": mi}}  # fmt: skip
        (tmp_path / f"awd_ptb_{mode}.json").write_text(json.dumps(r))

    row("adversarial", 99.5, 5.25, 4.5)
    (tmp_path / "awd_ptb_uniform.json").write_text(json.dumps({"row": "awd_ptb_uniform", "evaluation": None}))
    line = results.awd_ordering(tmp_path)
    assert line.startswith(head) and line.endswith("pending (no test evaluation yet of `none`, `uniform`).\n")
    row("uniform", 100.0, 5.0, 4.25)
    line = results.awd_ordering(tmp_path)
    assert line.endswith(
        "-ELBO 99.50 vs 100.00: holds; KL 5.25 vs 5.00: holds; MI 4.50 vs 4.25: holds; "
        "the rest pending (no test evaluation yet of `none`).\n"
    )
    (tmp_path / "awd_ptb_adversarial.json").unlink()
    row("none", 101.0, 1.0, 4.5, epochs=30)  # uniform against none: checked before adversarial's evaluation
    line = results.awd_ordering(tmp_path)
    assert line.endswith(
        "MI of `uniform` above `none`'s: 4.25 vs 4.50: does not hold (budgets differ: `none` 30 epochs, "
        "`uniform` 40 epochs); the rest pending (no test evaluation yet of `adversarial`).\n"
    )
    row("adversarial", 99.5, 5.25, 4.5)
    row("none", 101.0, 1.0, 0.5)
    line = results.awd_ordering(tmp_path)
    assert line.endswith(
        "-ELBO 99.50 vs 100.00: holds; KL 5.25 vs 5.00: holds; MI 4.50 vs 4.25: holds; "
        "MI of both above `none`'s 0.50: holds.\n"
    )
    row("adversarial", 100.5, 4.75, 0.25, epochs=30)
    line = results.awd_ordering(tmp_path)
    assert line.endswith(
        "-ELBO 100.50 vs 100.00: does not hold; KL 4.75 vs 5.00: does not hold; MI 0.25 vs 4.25: does not hold; "
        "MI of both above `none`'s 0.50: does not hold (budgets differ: `none` 40 epochs, `uniform` 40 epochs, "
        "`adversarial` 30 epochs).\n"
    )
    empty = tmp_path / "no-results"
    assert results.reproduction_table(empty).endswith("|\n\n" + results.awd_ordering(empty))
    assert line.startswith(head + " (the paper: ") and "), our test set, seed 1: -ELBO " in line
    # another seed's rows (SEED=2 awd_ptb.sh MODE: awd_ptb_MODE_seed2) get a line of their own,
    # below seed 1's, once one of them has a JSON
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "awd_ptb_uniform_seed3.json").write_text(
        json.dumps({"row": "awd_ptb_uniform_seed3", "epochs_completed": 40,
                    "evaluation": {"neg_elbo": 101.0, "kl": 6.0, "mi": 5.5}}))  # fmt: skip
    (tmp_path / "awd_ptb_uniform_seed3.json").write_text((seeds / "awd_ptb_uniform_seed3.json").read_text())
    assert results.awd_ordering(tmp_path, seed=3) == results.awd_ordering(seeds, seed=3)  # seed 1's rows are not seed 3's
    seed3 = results.awd_ordering(seeds, seed=3)
    assert seed3.startswith(head) and seed3.endswith("seed 3: pending (no test evaluation yet of `none`, `adversarial`).\n")
    table = results.reproduction_table(seeds)
    assert table.endswith("|\n\n" + results.awd_ordering(seeds) + "\n" + seed3) and "seed 3" not in results.reproduction_table(empty)


def test_seed_and_paper_lines_of_a_row(tmp_path):
    """results.py records the seed a row trained with from its stage's command (fairseq's
    --seed, hydra's common.seed=; the last one given), not from its own environment (all.sh
    runs it after SEED=2 awd_ptb.sh without SEED); another seed's row is drawn with its paper row's lines."""
    results = _results_module()
    cmd = tmp_path / "train.cmd"
    for text, seed in [("fairseq-train D --seed 3 --num-workers 0", 3), ("fairseq-hydra-train a common.seed=2 b", 2),
                       ("fairseq-train D --seed 1 --seed 4", 4), ("fairseq-train D --seeds 5", 1)]:  # fmt: skip
        cmd.write_text(text + "\n")
        assert results.seed_of(cmd) == seed, text
    assert results.paper_lines("awd_ptb_none_seed2") == results.PAPER["awd_ptb_none"]
    assert results.paper_lines("awd_ptb_none_h2048") == {}


def test_lr_decays_are_read_once_each_from_the_log(tmp_path):
    """davam_plateau's decays, as results.py (read_curves) puts them in the JSON and dashes them on the PNG:
    a decision replayed after a resume is logged twice but counted once."""
    results = _results_module()
    log = tmp_path / "stage1.log"
    prefix = "2026-12-03 02:35:45 | INFO | davam_plugin.optim.davam_plateau | davam_plateau: "
    log.write_text("".join(prefix + m + "\n" for m in [
        "epoch 18: decay 1/5, lr 0.5", "reloaded the weights of /runs/x/checkpoint_best.pt",
        "epoch 26: decay 2/5, lr 0.25", "epoch 26: decay 2/5, lr 0.25", "replaying the decision of epoch 26 (val 90.406)",
        "epoch 31: decay 3/5, lr 0.125", "3 decays reached: stopping (lr 0)",
    ]))  # fmt: skip
    assert results.tl.lr_decays(log.read_text().splitlines()) == [
        {"after_epoch": 18, "lr": 0.5}, {"after_epoch": 26, "lr": 0.25}, {"after_epoch": 31, "lr": 0.125}]
    log.write_text(prefix + "replaying the decision of epoch 6 (val 103.069)\n")
    assert results.tl.lr_decays(log.read_text().splitlines()) == []


def test_the_commit_is_the_one_the_stages_logged(tmp_path):
    """results.py names the code that trained a row: the "STAGE: code at commit SHA" lines that
    run_stage writes at every (re)start; a run from before those lines keeps the commit its JSON
    was first written with instead of taking HEAD anew at every rewrite."""
    results = _results_module()
    run, out = tmp_path / "runs" / "row", tmp_path / "results"
    run.mkdir(parents=True)
    out.mkdir()
    a, b = "a" * 40, "b" * 40
    (run / "stage1.log").write_text(
        f"[2026-12-03T10:00:00Z] stage1: code at commit {a}\n" + _line("train", {"epoch": 1})
        + f"[2026-12-03T11:00:00Z] stage1: code at commit {b} (uncommitted changes)\n"
        + f"[2026-12-03T12:00:00Z] stage1: code at commit {a}\n")  # fmt: skip
    (run / "stage2.log").write_text(f"[2026-12-03T13:00:00Z] stage2: code at commit {b}\n")
    got = results.provenance(run, REPO, None)
    assert got["commits"] == [a, b + "+uncommitted", b] and got["commit"] == b
    assert got["commit_source"].startswith("recorded")

    # a log that trained before its first record (a run resumed under the recording recipes)
    (run / "stage2.log").write_text(_line("train", {"epoch": 1}) + f"[2026-12-03T13:00:00Z] stage2: code at commit {b}\n")
    got = results.provenance(run, REPO, None)
    assert got["commits"][0] == "unrecorded" and got["commit"] == b and "predates" in got["commit_source"]

    # nothing recorded: the commit of the JSON as first written stays, however often it is rewritten
    for log in run.glob("*.log"):
        log.write_text(_line("train", {"epoch": 1}))
    first = results.provenance(run, REPO, {"commit": a})
    assert first["commit"] == a and first["commit_source"].startswith("not recorded")
    assert results.provenance(run, REPO, first) == first
    head = results.git_head(REPO)
    assert results.provenance(run, REPO, None)["commit"] == head


def test_epoch_table_from_a_rows_json(tmp_path, capsys):
    """--epochs prints a row's curves per epoch from its JSON: the main curve first with its best
    in bold, the rate davam_plateau trained each epoch at, and another row's curve beside it."""
    results = _results_module()
    out = tmp_path / "results"
    out.mkdir()
    curve = lambda epochs, values: {"epoch": epochs, "value": values}  # noqa: E731
    fast = {"commands": {"stage1": "fairseq-train DATA --lr 1.0 --lr-scheduler davam_plateau"},
            "lr_decays": [{"after_epoch": 2, "lr": 0.5}, {"after_epoch": 3, "lr": 0.25}],
            "valid_curves": {"code_usage": curve([1, 2, 3, 4], [5.0, 28.0, 30.0, 31.0]),
                             "rec": curve([1, 2, 3, 4], [130.0, 110.5, 110.25, 111.0]),
                             "attn_v_norm": curve([2, 3, 4], [7.084, 7.5, 8.0])}}  # fmt: skip
    authors = {"commands": {"stage1": "x"}, "valid_curves": {"rec": curve([1, 2, 3], [123.04, 116.77, 109.98])}}
    awd = {"commands": {"train": "fairseq-hydra-train optimization.lr=[1.0]"}, "lr_decays": [],
           "valid_curves": {"rec": curve([1], [126.0]), "neg_elbo": curve([1], [130.0])}}  # fmt: skip
    for name, r in [("fast", fast), ("authors", authors), ("awd", awd)]:
        (out / f"{name}.json").write_text(json.dumps(r))
    results.main(["--epochs", "fast", "--against", "authors", "--out", str(out)])
    assert capsys.readouterr().out == (
        "| epoch | lr | valid Rec | codes in use | `v` norm | valid Rec of `authors` |\n"
        "|---|---|---|---|---|---|\n"
        "| 1 | 1 | 130.00 | 5 |  | 123.04 |\n"
        "| 2 | 1 | 110.50 | 28 | 7.08 | 116.77 |\n"
        "| 3 | 0.5 | **110.25** | 30 | 7.50 | 109.98 |\n"
        "| 4 | 0.25 | 111.00 | 31 | 8.00 |  |\n"
    )
    results.main(["--epochs", "awd", "--out", str(out)])  # x0.96 per epoch, not davam_plateau: no lr column
    assert capsys.readouterr().out == "| epoch | valid -ELBO | valid Rec |\n|---|---|---|\n| 1 | **130.00** | 126.00 |\n"
    # the fast recipe: 2 warm-up epochs at the warm-up's rate, then stage one's (its last --lr)
    fast["commands"] = {"warmup": "fairseq-train DATA --lr 1.0 --lr-scheduler davam_plateau --max-epoch 100 --max-epoch 2",
                        "stage1": "fairseq-train DATA --lr 1.0 --lr-scheduler davam_plateau --lr 0.0005"}  # fmt: skip
    fast["lr_decays"] = [{"after_epoch": 3, "lr": 0.00025}]
    (out / "fast.json").write_text(json.dumps(fast))
    results.main(["--epochs", "fast", "--out", str(out)])
    assert [line.split(" | ")[1] for line in capsys.readouterr().out.splitlines()[2:]] == ["1", "1", "0.0005", "0.00025"]
    with pytest.raises(SystemExit, match="--against authors: its main curve is rec, awd's is neg_elbo"):
        results.main(["--epochs", "awd", "--against", "authors", "--out", str(out)])
    with pytest.raises(SystemExit, match="nope.json not found"):
        results.main(["--epochs", "nope", "--out", str(out)])
    with pytest.raises(SystemExit):
        results.main(["--epochs", "fast", "--table", "--out", str(out)])
    assert "--epochs takes no other row" in capsys.readouterr().err


def test_a_warm_up_and_the_stage_one_that_continues_it_make_one_curve(tmp_path):
    """The fast DAVAM recipe trains the authors' warm-up (warmup.log), then stage one from its
    last checkpoint with --reset-optimizer, after which fairseq counts updates from 0 again: the
    JSON joins both logs into one curve by epoch, carries the update count on, counts both parts'
    hours and lr decays, names both commands, and is in stage "warmup" until stage one starts."""
    results = _results_module()
    runs, out = tmp_path / "runs", tmp_path / "results"
    _write_runs(runs)
    row = runs / "davam_ptb_k512_fast"
    row.mkdir()

    def epochs(pairs):
        lines = []
        for epoch, rec, updates in pairs:
            lines.append(_line("train_inner", {"epoch": epoch, "update": epoch - 0.5, "num_updates": updates - 50,
                                               "train_wall": 60.0}))  # fmt: skip
            lines.append(_line("train_inner", {"epoch": epoch, "update": epoch - 0.1, "num_updates": updates,
                                               "train_wall": 60.0}))  # fmt: skip
            lines.append(_line("train", {"epoch": epoch, "train_loss": rec, "train_num_updates": updates}))
            lines.append(_line("valid", {"epoch": epoch, "valid_rec": rec, "valid_commitment": 1.0,
                                         "valid_code_usage": 100, "valid_num_updates": updates}))  # fmt: skip
        return "".join(lines)

    (row / "warmup.log").write_text(epochs([(1, 130.0, 100), (2, 118.0, 200)]))
    (row / "warmup.cmd").write_text("fairseq-train DATA --arch davam_ptb --optimizer sgd --max-epoch 2\n")
    args = ["davam_ptb_k512_fast", "--runs", str(runs), "--data", str(DATA), "--out", str(out)]
    results.main(args)
    r = json.loads((out / "davam_ptb_k512_fast.json").read_text())
    assert r["stage"] == "warmup" and r["epochs"] == 2 and r["updates"] == 200
    (row / "warmup.done").write_text("2026-12-05T00:00:00Z\n")
    stage1 = epochs([(3, 110.0, 100), (4, 112.0, 200), (5, 113.0, 300)])  # counted from 0 after the reset
    stage1 += "2026-12-05 03:00:00 | INFO | davam_plugin.optim.davam_plateau | davam_plateau: epoch 5: decay 1/5, lr 0.00025\n"
    (row / "stage1.log").write_text(stage1)
    (row / "stage1.cmd").write_text("fairseq-train DATA --arch davam_ptb --optimizer adam --reset-optimizer\n")
    results.main(args)
    r = json.loads((out / "davam_ptb_k512_fast.json").read_text())
    assert r["stage"] == "stage1" and r["epochs"] == 5 and r["epochs_completed"] == 5 and r["updates"] == 500
    assert r["valid_curves"]["rec"] == {"epoch": [1, 2, 3, 4, 5], "value": [130.0, 118.0, 110.0, 112.0, 113.0]}
    assert r["lr_decays"] == [{"after_epoch": 5, "lr": 0.00025}]
    assert set(r["commands"]) == {"warmup", "stage1"} and "--reset-optimizer" in r["commands"]["stage1"]
    assert r["train_hours"] == round(10 * 60 * 500 / 500 / 3600, 3)  # 10 logged intervals of 60 s


def test_compare_draws_several_rows_from_their_jsons(tmp_path, capsys):
    """--compare: the rows' validation curves from results/ROW.json on one figure, and the data
    behind it (curves, decays, the paper's value of the first row) beside it; clear errors for
    a missing JSON or curve, and --figure is required."""
    results = _results_module()
    out = tmp_path / "results"
    out.mkdir()
    rows = {
        "davam_ptb_k512_fast": {"status": "stage1 (interrupted or running)", "epochs": 3, "train_hours": 0.5,
                                "lr_decays": [{"after_epoch": 2, "lr": 0.00025}],
                                "valid_curves": {"rec": {"epoch": [1, 2, 3], "value": [120.0, 100.0, 90.5]},
                                                 "code_usage": {"epoch": [1, 2, 3], "value": [3.0, 40.0, 200.0]}}},
        "davam_other": {"status": "finished", "epochs": 2, "train_hours": 0.4, "lr_decays": [],
                        "valid_curves": {"rec": {"epoch": [1, 2], "value": [125.0, 110.0]}}},
    }
    for row, r in rows.items():
        (out / f"{row}.json").write_text(json.dumps(r))
    fig = tmp_path / "fig" / "cmp.png"
    results.main(["--compare", *rows, "--figure", str(fig), "--out", str(out)])
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    behind = json.loads(fig.with_suffix(".json").read_text())
    assert behind["paper"] == {"rec": 60.16}  # the first row's paper value
    assert behind["rows"]["davam_ptb_k512_fast"]["curves"] == {"rec": rows["davam_ptb_k512_fast"]["valid_curves"]["rec"]}
    assert behind["rows"]["davam_ptb_k512_fast"]["lr_decays"] == [{"after_epoch": 2, "lr": 0.00025}]
    assert behind["rows"]["davam_other"]["curves"]["rec"]["value"] == [125.0, 110.0]
    # how soon each row reached the other's best (the "same final Rec in fewer epochs")
    assert behind["metric_reached"] == "rec"
    assert behind["best"] == {"davam_ptb_k512_fast": {"value": 90.5, "epoch": 3}, "davam_other": {"value": 110.0, "epoch": 2}}
    assert behind["reaches"] == {"davam_ptb_k512_fast": {"davam_other": 2}, "davam_other": {"davam_ptb_k512_fast": None}}
    printed = capsys.readouterr().out
    assert "davam_ptb_k512_fast (3 epochs), davam_other (2 epochs)" in printed
    assert "davam_ptb_k512_fast reached davam_other's best valid rec, 110.00 (its epoch 2), at epoch 2: 100% of the epochs" in printed
    assert "davam_other reached davam_ptb_k512_fast's best valid rec, 90.50 (its epoch 3), not in its 2 epochs" in printed
    with pytest.raises(SystemExit, match=r"davam_other.json has no code_usage curve \(it has rec\)"):
        results.main(["--compare", *rows, "--figure", str(fig), "--out", str(out), "--metrics", "rec,code_usage"])
    with pytest.raises(SystemExit, match=r"nosuch.json not found: write it first \(results.py nosuch\)"):
        results.main(["--compare", "davam_other", "nosuch", "--figure", str(fig), "--out", str(out)])
    for argv in (["--compare", "davam_other", "--out", str(out)], ["--figure", str(fig), "--table"]):
        with pytest.raises(SystemExit) as exit_info:
            results.main(argv)
        assert exit_info.value.code == 2  # argparse's usage error
    assert "--compare needs --figure FIG.png" in capsys.readouterr().err


def test_a_lost_run_is_marked_as_a_record_and_a_new_run_replaces_it_once_further(tmp_path):
    """--lost REASON marks a committed, unfinished JSON whose run directory is gone: its status says
    so (and the table), nothing else changes; a finished row or a missing JSON refuse it."""
    results = _results_module()
    runs, out = tmp_path / "runs", tmp_path / "results"
    _write_runs(runs)
    args = ["davam_fake", "--runs", str(runs), "--data", str(DATA), "--out", str(out)]
    results.main(args)
    before = json.loads((out / "davam_fake.json").read_text())
    shutil.rmtree(runs / "davam_fake")  # the machine change
    results.main(["davam_fake", "--out", str(out), "--lost", " the machine change of 2026-12-05 "])
    after = json.loads((out / "davam_fake.json").read_text())
    assert after.pop("status") == "lost in stage1: the machine change of 2026-12-05"
    before.pop("status")
    assert after == before
    results.TABLE_ROWS.append(("davam_fake", "Rec 60.16", "a test row"))
    assert "| `davam_fake` | Rec 60.16: a test row | [run lost while training (record)](results/davam_fake.json)" in (
        results.reproduction_table(out))
    with pytest.raises(SystemExit, match=r"^error: --lost needs a reason"):
        results.main(["davam_fake", "--out", str(out), "--lost", " "])
    with pytest.raises(SystemExit, match=r"^error: --lost: .*other_row.json not found"):
        results.main(["other_row", "--out", str(out), "--lost", "why"])
    (out / "done_row.json").write_text(json.dumps({"row": "done_row", "status": "finished"}))
    with pytest.raises(SystemExit, match=r"^error: --lost: .*records a finished run"):
        results.main(["done_row", "--out", str(out), "--lost", "why"])
    with pytest.raises(SystemExit):
        results.main(["davam_fake", "--out", str(out), "--lost", "why", "--replace"])
    # a row held before its prior when it was lost never trained the prior
    (out / "held_row.json").write_text(json.dumps(dict(before, row="held_row", stage="stage2", status="held before stage2: x")))
    results.main(["held_row", "--out", str(out), "--lost", "why"])
    assert json.loads((out / "held_row.json").read_text())["status"] == "lost before stage2: why"
    results.TABLE_ROWS.append(("held_row", "Rec 60.16", "a test row"))
    assert "[run lost before its prior (record)](results/held_row.json)" in results.reproduction_table(out)
