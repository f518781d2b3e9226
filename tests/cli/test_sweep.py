"""davam-sweep (davam_plugin/cli/sweep.py): one training per value of a fairseq setting, final
Rec and KL as JSON + PNG, resumable; bad inputs give one error line naming the flag."""

import json
import math

import pytest

from davam_plugin.cli import sweep
from davam_plugin.cli.pipeline import PipelineError, number_list, validate_summary, value_label

from conftest import TRAIN_TINY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PRIOR_ARGS = (
    "--arch davam_prior_tiny --criterion davam_prior --optimizer adam --lr 0.003 --batch-size 32 --cpu "
    "--num-workers 0 --no-epoch-checkpoints --max-update 3"
)
TRAIN = [*TRAIN_TINY, "--max-update", "3"]


def test_number_list_and_value_labels():
    assert number_list("128, 256,512", "--values") == [128, 256, 512]
    assert [type(v) for v in number_list("1,0.5,2e1", "--values")] == [int, float, float]
    assert number_list("0.1,20", "--values") == [0.1, 20]
    assert [value_label(v) for v in (128, 0.5, 1.0, 20.0)] == ["128", "0.5", "1", "20"]
    for text, message in [
        ("128,,256", "--values '128,,256': give comma-separated numbers, none empty"),
        ("128,abc", "--values '128,abc': 'abc' is not a number"),
        ("128,nan", "--values '128,nan': 'nan' is not a finite number"),
        ("128,128", "--values '128,128': 128 repeats"),
    ]:
        with pytest.raises(PipelineError) as e:
            number_list(text, "--values")
        assert str(e.value) == message
    with pytest.raises(PipelineError, match=r"'0' must be > 0"):
        number_list("0,1", "--sizes", kind=int, positive=True)
    with pytest.raises(PipelineError, match=r"'0.5' is not an integer"):
        number_list("1,0.5", "--sizes", kind=int)


def test_validate_summary_reads_the_subset_prefixed_record(tmp_path):
    log = tmp_path / "v.log"
    log.write_text(
        '2026-12-02 15:30:21 | INFO | fairseq_cli.train | {"epoch": 1, "valid_loss": "9"}\n'
        '2026-12-02 15:30:21 | INFO | test | {"test_loss": "7.403", "test_ppl": "169.2", "test_wpb": "480"}\n'
    )
    assert validate_summary(log) == {"loss": 7.403, "ppl": 169.2, "wpb": 480.0}
    log.write_text("nothing here\n")
    with pytest.raises(PipelineError, match="no fairseq-validate summary"):
        validate_summary(log)


def test_log_x_axis_for_codebook_sizes():
    assert sweep.use_log_x([128, 256, 512, 1024])
    assert not sweep.use_log_x([8, 16])
    assert not sweep.use_log_x([0, 5, 10])


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.parent.name != "__pycache__"}


def test_sweep_two_codebook_sizes_then_resume(tiny_data, tmp_path, capsys):
    root = tmp_path / "sweep"
    argv = [str(tiny_data), "--save-root", str(root), "--setting", "--num-codes", "--values", "8,16",
            "--prior-args", PRIOR_ARGS, "--", *TRAIN]  # fmt: skip
    assert sweep.main(argv) == 0
    out = capsys.readouterr().out
    doc = json.loads((root / "sweep.json").read_text())
    assert (root / "sweep.png").read_bytes()[:8] == PNG_MAGIC
    assert doc["setting"] == "--num-codes" and doc["values"] == [8, 16] and sorted(doc["runs"]) == ["16", "8"]
    assert doc["kl_available"] and not doc["log_x"]
    for value in ("8", "16"):
        r = doc["runs"][value]
        for key in ("rec", "kl", "kl_paper", "commitment"):
            assert math.isfinite(r[key]), (value, key, r[key])
        assert r["kl"] > r["kl_paper"] > 0, "summed KL > KL averaged over >= 2 positions"
        assert r["updates"] == 3 and r["epochs"] == 1
        assert 1 <= r["code_usage"] <= int(value)
        # the value reached fairseq: the checkpoint's codebook has K rows
        log = (root / f"num-codes_{value}" / "train.log").read_text()
        assert f"'num_codes': {value}" in log
        assert r["kl_source"].startswith("stage-two prior")
    assert "| --num-codes | Rec |" in out and "\n| 8 | " in out and "\n| 16 | " in out

    before = _mtimes(root / "num-codes_8") | _mtimes(root / "num-codes_16")
    assert sweep.main(argv) == 0
    out = capsys.readouterr().out
    assert "training finished already" in out and "fairseq-train ->" not in out
    after = _mtimes(root / "num-codes_8") | _mtimes(root / "num-codes_16")
    assert after == before, "a finished sweep reruns nothing (train/prior logs and checkpoints untouched)"
    assert json.loads((root / "sweep.json").read_text())["runs"] == doc["runs"]


def test_reuse_json_takes_a_lost_value_from_an_earlier_json_and_trains_the_rest(tiny_data, tmp_path, capsys):
    """After a lost save root, --reuse-json keeps the values an earlier JSON holds (entries
    unchanged but for "reused_from") and trains only the others; a JSON of another sweep is
    refused with one line naming the difference."""
    root = tmp_path / "sweep"
    base = [str(tiny_data), "--setting", "--num-codes", "--prior-args", PRIOR_ARGS]
    assert sweep.main([*base, "--values", "8", "--save-root", str(root), "--", *TRAIN]) == 0
    kept = tmp_path / "committed.json"
    kept.write_text((root / "sweep.json").read_text())
    first = json.loads(kept.read_text())["runs"]["8"]
    lost = tmp_path / "lost"
    (root).rename(lost)  # the save root is gone
    argv = [*base, "--values", "8,16", "--save-root", str(root), "--reuse-json", str(kept), "--", *TRAIN]
    assert sweep.main(argv) == 0
    out = capsys.readouterr().out
    assert f"[--num-codes 8] no {root / 'num-codes_8'}: taken from --reuse-json {kept}" in out
    assert not (root / "num-codes_8").exists(), "the reused value is not trained again"
    assert (root / "num-codes_16" / "train.done").exists()
    doc = json.loads((root / "sweep.json").read_text())
    assert doc["values"] == [8, 16]
    assert doc["runs"]["8"] == {**first, "reused_from": str(kept)}
    assert "reused_from" not in doc["runs"]["16"] and math.isfinite(doc["runs"]["16"]["kl"])
    # reused again from the new JSON: the entry keeps the file it was first reused from
    again = tmp_path / "again"
    again_argv = [*base, "--values", "8,16", "--save-root", str(again), "--reuse-json", str(root / "sweep.json"), "--", *TRAIN]
    assert sweep.main(again_argv) == 0
    capsys.readouterr()
    redo = json.loads((again / "sweep.json").read_text())["runs"]
    assert redo["8"]["reused_from"] == str(kept) and redo["16"]["reused_from"] == str(root / "sweep.json")
    assert not any(again.glob("num-codes_*"))
    # a value whose directory exists is the directory's, whatever the JSON says
    both = [*base, "--values", "8,16", "--save-root", str(lost), "--reuse-json", str(root / "sweep.json"), "--", *TRAIN]
    assert sweep.main(both) == 0
    out = capsys.readouterr().out
    assert "[--num-codes 8] training finished already" in out and "fairseq-train ->" not in out
    mixed = json.loads((lost / "sweep.json").read_text())["runs"]
    assert "reused_from" not in mixed["8"] and mixed["16"]["reused_from"] == str(root / "sweep.json")
    # other sweeps are refused, nothing written
    other = tmp_path / "other"
    for extra, argv_train, message in [
        ([], [*TRAIN[:-1], "4"], "that sweep had other fairseq-train arguments (argument "),
        (["--checkpoint", "last"], TRAIN, "that sweep had --checkpoint 'best', this one 'last'"),
        (["--eval-subset", "test"], TRAIN, "that sweep had --eval-subset 'valid', this one 'test'"),
    ]:
        bad = [*base, "--values", "8", "--save-root", str(other), "--reuse-json", str(kept), *extra, "--", *argv_train]
        assert sweep.main(bad) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"davam-sweep: error: --reuse-json {kept}: {message}"), err
        assert not (other / "sweep.json").exists()
    (tmp_path / "junk.json").write_text("[1, 2]")
    bad = [*base, "--values", "8", "--save-root", str(other), "--reuse-json", str(tmp_path / "junk.json"), "--", *TRAIN]
    assert sweep.main(bad) == 2
    assert capsys.readouterr().err.strip() == f"davam-sweep: error: --reuse-json: {tmp_path / 'junk.json'} is not a davam-sweep JSON"


def test_value_field_starts_each_value_from_its_own_earlier_model(tiny_data, tmp_path, capsys):
    """``{value}`` in the fairseq-train arguments becomes the value: a second phase (another
    optimizer, say) starts each K from that K's model of a first sweep via
    --finetune-from-model, with fairseq's resets on the first start only."""
    warm, then = tmp_path / "warmup", tmp_path / "adam"
    base = [str(tiny_data), "--setting", "--num-codes", "--values", "8,16"]
    assert sweep.main([*base, "--save-root", str(warm), "--", *TRAIN]) == 0
    ckpt = str(warm / "num-codes_{value}" / "checkpoints" / "checkpoint_last.pt")
    second = [a if a != "3" else "2" for a in TRAIN] + ["--finetune-from-model", ckpt]
    assert sweep.main([*base, "--save-root", str(then), "--", *second]) == 0
    capsys.readouterr()
    doc = json.loads((then / "sweep.json").read_text())
    assert "--finetune-from-model" in doc["train_args"] and ckpt in doc["train_args"], "the JSON keeps the template"
    for value in ("8", "16"):
        log = (then / f"num-codes_{value}" / "train.log").read_text()
        source = warm / f"num-codes_{value}" / "checkpoints" / "checkpoint_last.pt"
        assert f"loading pretrained model from {source}: optimizer, lr scheduler, meters, dataloader will be reset" in log
        assert doc["runs"][value]["updates"] == 2, "updates counted from 0 again after the reset"
    # a value with no model to start from: one error line, no sweep JSON
    assert sweep.main([*base[:3], "--values", "32", "--save-root", str(tmp_path / "x"), "--", *second]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("davam-sweep: error: ") and "--num-codes 32" in err[0] and "--finetune-from-model" in err[0], err
    assert not (tmp_path / "x" / "sweep.json").exists()


@pytest.mark.parametrize(
    "setting, values, extra, message",
    [
        ("--num-codes", "8,x", [], "--values '8,x': 'x' is not a number"),
        ("--num-codez", "8,16", [], "--setting --num-codez: not a fairseq-train flag of --task sentence_vae "
         "--arch davam_tiny --criterion davam"),
        ("num-codes", "8,16", [], "--setting 'num-codes': give a fairseq-train flag such as --num-codes"),
        ("--num-codes", "8,0.5", [], "--values: 0.5 is refused by --num-codes: argument --num-codes: invalid int value: '0.5'"),
        ("--max-update", "3,4", [], "do not pass --max-update after --: the sweep sets it for every value"),
        ("--num-codes", "8,16", ["--save-dir", "x"], "do not pass --save-dir after --"),
        ("--num-codes", "8,16", ["--no-such-flag"], "the fairseq-train arguments after -- include unknown flag(s): --no-such-flag"),
    ],
)  # fmt: skip
def test_bad_sweep_inputs_give_one_error_line(tiny_data, tmp_path, capsys, setting, values, extra, message):
    argv = [str(tiny_data), "--save-root", str(tmp_path / "s"), "--setting", setting, "--values", values, "--",
            *TRAIN, *extra]  # fmt: skip
    assert sweep.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"davam-sweep: error: {message}"), err
    assert not (tmp_path / "s" / "sweep.json").exists()


def test_sweep_refuses_a_data_dir_without_dictionary(tmp_path, capsys):
    argv = [str(tmp_path), "--save-root", str(tmp_path / "s"), "--setting", "--num-codes", "--values", "8", "--", *TRAIN]
    assert sweep.main(argv) == 2
    assert capsys.readouterr().err.strip() == f"davam-sweep: error: DATA {tmp_path}: no dict.txt there " \
        "(give a fairseq-preprocess --only-source directory)"  # fmt: skip


def test_sweep_needs_the_fairseq_train_arguments(tiny_data, tmp_path, capsys):
    argv = [str(tiny_data), "--save-root", str(tmp_path / "s"), "--setting", "--num-codes", "--values", "8,16"]
    assert sweep.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "davam-sweep: error: give the fairseq-train arguments after -- (task, arch, criterion, optimizer, budget)"
    )


AWD_TRAIN = [
    "--user-dir", sweep.runner.PLUGIN_DIR, "--task", "sentence_vae", "--arch", "awd_tiny", "--criterion", "awd_elbo",
    "--optimizer", "adam", "--lr", "0.003", "--batch-size", "32", "--cpu", "--num-workers", "0",
    "--no-epoch-checkpoints", "--seed", "1", "--max-update", "2",
]  # fmt: skip


def test_awd_dropout_rate_sweep_with_evaluation_and_a_compared_sweep(tiny_data, tmp_path, capsys):
    """The AWD paper's Fig. 2 as two sweeps of --word-dropout-rate (uniform, then adversarial drawn
    against it): davam-evaluate adds -ELBO, MI and active units per value; the figure overlays both."""
    ev = "--iw-samples 2 --iw-max-sentences 4"
    uniform = [str(tiny_data), "--save-root", str(tmp_path / "uniform"), "--setting", "--word-dropout-rate",
               "--values", "0.2,0.4", "--evaluate-args", ev, "--", *AWD_TRAIN, "--word-dropout-mode", "uniform"]  # fmt: skip
    assert sweep.main(uniform) == 0
    doc = json.loads((tmp_path / "uniform" / "sweep.json").read_text())
    for value in ("0.2", "0.4"):
        r = doc["runs"][value]
        assert all(math.isfinite(r[k]) for k in ("rec", "kl", "neg_elbo", "mi", "iw_nll")), r
        assert 0 <= r["active_units"] <= 4 and r["kl_source"].startswith("criterion")
        assert abs(r["neg_elbo"] - (r["rec"] + r["kl"])) < 0.5 * r["neg_elbo"]  # same terms, other z samples
        log = (tmp_path / "uniform" / f"word-dropout-rate_{value}" / "train.log").read_text()
        assert f"'word_dropout_rate': {value}" in log
    capsys.readouterr()
    adversarial = [str(tiny_data), "--save-root", str(tmp_path / "adversarial"), "--setting", "--word-dropout-rate",
                   "--values", "0.2", "--evaluate-args", ev, "--label", "AWD",
                   "--compare", f"uniform={tmp_path / 'uniform' / 'sweep.json'}",
                   "--", *AWD_TRAIN, "--word-dropout-mode", "adversarial"]  # fmt: skip
    assert sweep.main(adversarial) == 0
    out = capsys.readouterr().out
    assert "| --word-dropout-rate | Rec | -ELBO |" in out
    assert (tmp_path / "adversarial" / "sweep.png").read_bytes()[:8] == PNG_MAGIC
    bad = [*adversarial[:7], "--compare", f"x={tmp_path / 'uniform' / 'nothing.json'}", "--", *AWD_TRAIN]
    assert sweep.main(bad) == 2
    assert capsys.readouterr().err.startswith("davam-sweep: error: --compare x=")
    junk = tmp_path / "junk.json"
    junk.write_text('{"values": [1]}')
    bad = [*adversarial[:7], "--compare", f"x={junk}", "--", *AWD_TRAIN]
    assert sweep.main(bad) == 2
    assert capsys.readouterr().err.strip() == f"davam-sweep: error: --compare x={junk}: {junk} is not a davam-sweep JSON"


def test_evaluate_args_refuse_discrete_latents(tiny_data, tmp_path, capsys):
    argv = [str(tiny_data), "--save-root", str(tmp_path / "s"), "--setting", "--num-codes", "--values", "8",
            "--evaluate-args", "", "--", *TRAIN]  # fmt: skip
    assert sweep.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["davam-sweep: error: --num-codes 8: --evaluate-args is for Gaussian latents (awd*, gavam*, "
                   "vae_attn*); discrete latents are evaluated with their prior (--prior-args)"]  # fmt: skip
