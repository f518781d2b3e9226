"""The DAVAM reproduction recipe (examples/reproduce/davam_ptb.sh) and the LM baseline it scores
its samples with (lstm_lm_ptb.sh), end to end on the tiny corpus for a few updates per stage
(MAX_UPDATE): the recipes' own commands, not copies of them. The AWD recipe has its smoke
run in test_awd_cli.py."""

import json
import math
import os
import signal as signal_module
import shutil
import subprocess
import sys
import time

import pytest
import torch

import davam_plugin  # noqa: F401  (allow-lists fairseq's checkpoint types for torch.load)

from conftest import BIN, REPO, SUBPROCESS_ENV

RECIPES = REPO / "examples" / "reproduce"
DAVAM_STAGES = ("stage1", "test", "stage2", "eval", "samples", "diversity", "fluency")


def recipe(name, env, *args):
    cmd = ["bash", str(RECIPES / name), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def last_updates(checkpoint):
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return state, state["optimizer_history"][-1]["num_updates"]


def test_davam_recipe_smoke_run_every_stage_then_resume(tiny_data, tmp_path):
    env = dict(SUBPROCESS_ENV, DATA=str(tiny_data), RUNS=str(tmp_path), MAX_UPDATE="2", VENV_BIN=str(BIN),
               PTB=str(tmp_path / "unused"))  # fmt: skip
    # the LM baseline first: the DAVAM recipe refuses to start without it (fluency needs it)
    refused = recipe("davam_ptb.sh", env, "davam_ptb_k512")
    assert refused.returncode == 2 and not (tmp_path / "davam_ptb_k512").exists()
    error = refused.stderr.strip().splitlines()
    assert len(error) == 1 and "LM_PATH" in error[0] and "lstm_lm_ptb.sh" in error[0], refused.stderr

    lm = recipe("lstm_lm_ptb.sh", env)
    assert lm.returncode == 0, (lm.stdout + lm.stderr)[-3000:]
    assert last_updates(tmp_path / "lstm_lm_ptb" / "lm" / "checkpoint_best.pt")[1] == 2

    first = recipe("davam_ptb.sh", env, "davam_ptb_k512")
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    run = tmp_path / "davam_ptb_k512"
    assert all((run / f"{stage}.done").is_file() for stage in DAVAM_STAGES)
    stage1, updates = last_updates(run / "stage1" / "checkpoint_last.pt")
    assert updates == 2 and stage1["cfg"]["model"]["_name"] == "davam_ptb"
    assert stage1["cfg"]["model"]["num_codes"] == 512 and stage1["cfg"]["lr_scheduler"]["_name"] == "davam_plateau"
    assert (run / "stage1.cmd").read_text().split()[-2:] == ["--max-update", "2"]  # the smoke flag goes last
    stage2, updates = last_updates(run / "stage2" / "checkpoint_last.pt")
    assert updates == 2 and stage2["cfg"]["model"]["_name"] == "davam_prior"
    assert stage2["cfg"]["model"]["prior_layers"] == 15 and stage2["cfg"]["task"]["bf16_autocast"]  # PRIOR_PRECISION
    evaluation = json.loads((run / "eval_test.json").read_text())
    assert all(math.isfinite(evaluation[k]) for k in ("rec", "kl", "kl_paper", "ppl_bound", "ppl_paper"))
    hypotheses = [x for x in (run / "samples" / "generate-test.txt").read_text().splitlines() if x.startswith("H-")]
    assert len(hypotheses) == 10
    assert json.loads((run / "diversity.json").read_text())["sentences"] == 10
    assert json.loads((run / "fluency.json").read_text())["overall"]["sentences"] == 10

    # the row records the command that resumes it (status.sh prints it for a stopped row) and
    # that it finished; that command, run again, skips every stage
    assert (run / "recipe.done").is_file()
    command = (run / "recipe_command.txt").read_text().strip()
    assert command.startswith(f"cd {REPO} && ") and command.endswith(" examples/reproduce/davam_ptb.sh davam_ptb_k512")
    assert f"DATA={tiny_data} RUNS={tmp_path} " in command and " MAX_UPDATE=2 " in command
    again = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("done already") == len(DAVAM_STAGES), again.stdout[-2000:]

    # results.py: stage one's test Rec (fairseq-validate) is kept as stage1_test; the full
    # evaluation (davam-evaluate, with the prior's KL) is the row's evaluation and agrees on Rec
    results = REPO / "examples" / "reproduce" / "results.py"
    out = subprocess.run([str(BIN / "python"), str(results), "davam_ptb_k512", "--runs", str(tmp_path),
                          "--data", str(tiny_data), "--out", str(tmp_path / "results")],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads((tmp_path / "results" / "davam_ptb_k512.json").read_text())
    assert row["status"] == "finished" and row["stage1_test"]["tool"] == "fairseq-validate"
    assert "kl_paper" in row["evaluation"] and row["evaluation"]["rec"] == pytest.approx(row["stage1_test"]["rec"], abs=0.01)

    # davam_ptb_long.sh continues that stage one (2 updates) with more halvings allowed, from
    # copies of its checkpoints and log, then scores the best checkpoint on the test set
    source_log = (run / "stage1.log").read_text()
    long = recipe("davam_ptb_long.sh", dict(env, MAX_UPDATE="4"))
    assert long.returncode == 0, (long.stdout + long.stderr)[-3000:]
    cont = tmp_path / "davam_ptb_k512_long"
    state, updates = last_updates(cont / "stage1" / "checkpoint_last.pt")
    assert updates == 4 and state["cfg"]["lr_scheduler"]["max_lr_decays"] == 10
    assert last_updates(run / "stage1" / "checkpoint_last.pt")[1] == 2  # the source row is left as it was
    assert (cont / "stage1.log").read_text().startswith(source_log)  # one log, from the first epoch
    assert all((cont / f"{name}.done").is_file() for name in ("init", "stage1", "test", "recipe"))
    out = subprocess.run([str(BIN / "python"), str(results), "davam_ptb_k512_long", "--runs", str(tmp_path),
                          "--data", str(tiny_data), "--out", str(tmp_path / "results")],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads((tmp_path / "results" / "davam_ptb_k512_long.json").read_text())
    assert row["status"] == "finished" and row["updates"] == 4
    test = row["evaluation"]
    assert test["tool"] == "fairseq-validate" and test["split"] == "test" and math.isfinite(test["rec"])
    assert 0 < test["code_usage"] <= 512
    # the code that trained it: the commit each stage logged when it started (this checkout's)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert row["commit"].split("+")[0] == head and row["commits"] == [row["commit"]]
    assert row["commit_source"].startswith("recorded in the stage logs")


def test_davam_long_recipe_needs_a_finished_source_row(tmp_path):
    env = dict(SUBPROCESS_ENV, RUNS=str(tmp_path), VENV_BIN=str(BIN))
    proc = recipe("davam_ptb_long.sh", env)
    assert proc.returncode == 2 and proc.stdout == "" and not (tmp_path / "davam_ptb_k512_long").exists()
    assert proc.stderr == (f"error: {tmp_path}/davam_ptb_k512/stage1.done not found: finish stage one of "
                           "examples/reproduce/davam_ptb.sh davam_ptb_k512 first, or set SOURCE_RUN\n")  # fmt: skip
    bad = recipe("davam_ptb_long.sh", dict(env, MAX_LR_DECAYS="5"))
    assert bad.returncode == 2 and bad.stderr == "error: MAX_LR_DECAYS must be an integer above the authors' 5, got '5'\n"


def test_davam_recipe_rejects_a_bad_prior_precision(tmp_path):
    env = dict(SUBPROCESS_ENV, RUNS=str(tmp_path), PRIOR_PRECISION="fp16", VENV_BIN=str(BIN))
    proc = recipe("davam_ptb.sh", env, "davam_ptb_k512")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: PRIOR_PRECISION must be fp32 or bf16, got 'fp16'"
    unknown = recipe("davam_ptb.sh", env, "davam_ptb_k64")
    assert unknown.returncode == 2 and "unknown row 'davam_ptb_k64'" in unknown.stderr


def stand_in_env(tmp_path, tools, **env):
    """The environment that runs a recipe with stand-in tools (name -> bash script body, in
    tmp_path/bin, first on PATH) on a data directory prepare_ptb takes as binarized already."""
    bin_dir, data = tmp_path / "bin", tmp_path / "data"
    bin_dir.mkdir()
    data.mkdir()
    for name, body in tools.items():
        (bin_dir / name).write_text("#!/usr/bin/env bash\n" + body)
        (bin_dir / name).chmod(0o755)
    for name in ("dict.txt", "train.bin"):
        (data / name).write_text("")
    return dict(SUBPROCESS_ENV, DATA=str(data), RUNS=str(tmp_path / "runs"), VENV_BIN=str(bin_dir), **env)


def test_a_recipe_stopped_by_a_signal_is_not_marked_done(tmp_path):
    """A killed recipe used to run its EXIT trap with the status of the last finished command
    (0) and wrote recipe.done: all.sh would then have skipped the stopped row for good."""
    started = tmp_path / "started"
    env = stand_in_env(tmp_path, {"fairseq-train": f"touch {started}; sleep 30\n"})
    run = tmp_path / "runs" / "lstm_lm_ptb"
    for signal in ("TERM", "INT", "HUP"):
        started.unlink(missing_ok=True)
        # the recipe in the foreground of its own shell, as nohup or a terminal would run it
        proc = subprocess.Popen(["bash", str(RECIPES / "lstm_lm_ptb.sh")], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
        deadline = time.time() + 30
        while not started.exists():
            assert time.time() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(getattr(signal_module, f"SIG{signal}"))
        os.killpg(proc.pid, signal_module.SIGTERM)  # and the stand-in training, as all.sh does
        proc.communicate(timeout=30)
        assert proc.returncode == {"TERM": 143, "INT": 130, "HUP": 129}[signal], signal
        assert (run / "recipe_command.txt").is_file() and not (run / "recipe.done").exists(), signal
        assert not (run / "train.done").exists()


def test_recipes_started_together_binarize_the_corpus_once(tmp_path):
    """Two lanes of all.sh may start two recipes on a machine without the binarized PTB: one
    builds it (in a temporary directory renamed when complete), the other waits and uses it."""
    calls, ptb, data = tmp_path / "calls.txt", tmp_path / "ptb", tmp_path / "data-bin" / "ptb"
    ptb.mkdir()
    for split in ("train", "valid", "test"):
        (ptb / f"{split}.txt").write_text("a b c\n")
    prepare = ('dest=""; while [ $# -gt 0 ]; do [ "$1" = --destdir ] && dest=$2; shift; done\n'
               f'echo "$dest" >> {calls}; sleep 1; mkdir -p "$dest"; touch "$dest/dict.txt" "$dest/train.bin"\n')  # fmt: skip
    env = dict(stand_in_env(tmp_path, {"davam-prepare-corpus": prepare, "fairseq-train": "true\n"}, PTB=str(ptb)),
               DATA=str(data))  # fmt: skip
    procs = [subprocess.Popen(["bash", str(RECIPES / "lstm_lm_ptb.sh")], env=dict(env, RUNS=str(tmp_path / f"runs{i}")),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]  # fmt: skip
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
    built = calls.read_text().split()
    assert len(built) == 1 and built[0].startswith(f"{data}.tmp.")  # once, into a temporary directory
    assert (data / "dict.txt").is_file() and sorted(p.name for p in data.parent.iterdir()) == ["ptb", "ptb.lock"]

    # a directory that holds something else is never overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    proc = recipe("lstm_lm_ptb.sh", dict(env, DATA=str(other), RUNS=str(tmp_path / "runs3")))
    assert proc.returncode == 2 and (other / "notes.txt").read_text() == "mine\n"
    assert proc.stderr == (f"error: {other} exists but holds no binarized corpus (dict.txt, train.bin): "
                           "remove it or point elsewhere\n")  # fmt: skip


def test_davam_rows_commands(tmp_path):
    """The commands each DAVAM row runs, through stand-in tools that only record their
    arguments: the fast row trains the authors' stage one for 10 epochs (its warm-up), then
    stage one from the warm-up's last state with Adam, beta held at 5 and a fresh optimizer
    and schedule (on the first start only); the superseded early-decay row is the authors'
    stage one with halving from epoch 8 and 10 halvings, the rejected dead-code row adds the
    restart flag to halving from epoch 8; the fast row's prior may halve from epoch 4 instead of
    16; the rest is equal."""
    calls = tmp_path / "calls.txt"
    tools = ("fairseq-train", "fairseq-validate", "davam-evaluate", "fairseq-generate", "davam-diversity", "davam-fluency")
    (tmp_path / "lm.pt").write_text("")
    env = stand_in_env(tmp_path, {tool: f'echo "$(basename "$0") $*" >> {calls}\n' for tool in tools},
                       LM_PATH=str(tmp_path / "lm.pt"))  # fmt: skip
    commands = {}
    rows = ("davam_ptb_k512", "davam_ptb_k512_fast", "davam_ptb_k512_earlydecay", "davam_ptb_k512_deadcode")
    for row in rows:
        calls.write_text("")
        proc = recipe("davam_ptb.sh", env, row)
        assert proc.returncode == 0, proc.stderr
        lines = calls.read_text().replace(str(tmp_path / "runs" / row), "RUN").splitlines()
        stage_one = 2 if row == "davam_ptb_k512_fast" else 1
        # stage one, its test Rec (fairseq-validate), the prior, then the evaluation and samples
        assert [line.split()[0] for line in lines] == ["fairseq-train"] * stage_one + [
            "fairseq-validate", "fairseq-train", "davam-evaluate", "fairseq-generate", "davam-diversity", "davam-fluency"]
        commands[row] = lines
    authors, fast, early, dead = (commands[r] for r in rows)
    assert fast[0] == authors[0].replace("RUN/stage1", "RUN/warmup") + " --max-epoch 10"
    assert fast[1] == authors[0] + (
        " --optimizer adam --lr 0.0005 --beta-start 5.0 --beta-max 5.0 --beta-warmup-updates 0 --lr-decay-start-epoch 11"
        " --restore-file RUN/warmup/checkpoint_last.pt --reset-optimizer --reset-lr-scheduler --reset-meters")
    assert early[0] == authors[0] + " --lr-decay-start-epoch 8 --max-lr-decays 10"
    assert dead[0] == authors[0] + " --codebook-dead-code-threshold 0.02 --lr-decay-start-epoch 8"
    # every row's prior: the authors' plateau rule with halving allowed from its epoch 4
    assert fast[2:] == authors[1:] and " --lr-decay-start-epoch 4 --max-lr-decays 5 " in authors[2]
    assert authors[1:] == early[1:] == dead[1:]
    stage1 = authors[0].split()
    assert stage1[stage1.index("--lr-decay-start-epoch") + 1] == "16" and "--codebook-dead-code-threshold" not in stage1
    # stage one's test Rec: its best checkpoint on the test split, in stage one's precision
    assert authors[1].endswith(" --path RUN/stage1/checkpoint_best.pt --valid-subset test --batch-size 64 --log-format json")
    assert "--bf16-autocast" in authors[2] and "--bf16-autocast" not in authors[0] + authors[1] + authors[3]
    # both trainings also save checkpoint_last.pt every 500 updates mid-epoch (SAVE_LAST_EVERY)
    assert " --save-last-interval-updates 500 " in authors[0] and " --save-last-interval-updates 500 " in authors[2]
    assert " --sample-from-prior 100 " in authors[4] and "--max-update" not in " ".join(authors)
    # rerun once stage one has a checkpoint of its own: the warm-up is done, stage one resumes
    # its own checkpoint_last.pt (no restore, no reset), and the rest is skipped as done
    fast_run = tmp_path / "runs" / "davam_ptb_k512_fast"
    (fast_run / "stage1.done").unlink()
    (fast_run / "stage1").mkdir(exist_ok=True)
    (fast_run / "stage1" / "checkpoint_last.pt").write_text("")
    calls.write_text("")
    proc = recipe("davam_ptb.sh", env, "davam_ptb_k512_fast")
    assert proc.returncode == 0, proc.stderr
    assert "warmup: done already" in proc.stdout
    assert calls.read_text().replace(str(fast_run), "RUN").splitlines() == [fast[1].split(" --restore-file")[0]]


def test_davam_ptb_k512_starts_from_the_fast_rows_finished_warm_up(tmp_path):
    """davam_ptb_k512's first 10 epochs are the fast row's warm-up (the same command): on its
    first start the row copies the warm-up's checkpoints and log and resumes them; not when the
    warm-up is unfinished or ran another command, with SHARE_WARMUP=0, or once the row has a
    stage one of its own."""
    calls = tmp_path / "calls.txt"
    tools = ("fairseq-train", "fairseq-validate", "davam-evaluate", "fairseq-generate", "davam-diversity", "davam-fluency")
    (tmp_path / "lm.pt").write_text("")
    env = stand_in_env(tmp_path, {tool: f'echo "$(basename "$0") $*" >> {calls}\n' for tool in tools},
                       LM_PATH=str(tmp_path / "lm.pt"))  # fmt: skip
    runs = tmp_path / "runs"
    fast, row = runs / "davam_ptb_k512_fast", runs / "davam_ptb_k512"
    assert recipe("davam_ptb.sh", env, "davam_ptb_k512_fast").returncode == 0
    warm = calls.read_text().splitlines()[0]
    (fast / "warmup").mkdir(exist_ok=True)
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        (fast / "warmup" / name).write_text(f"warm-up {name}\n")
    (fast / "warmup.log").write_text((fast / "warmup.log").read_text() + '| valid | {"epoch": 10, "valid_rec": "101.7"}\n')

    def start(**extra):
        shutil.rmtree(row, ignore_errors=True)
        calls.write_text("")
        proc = recipe("davam_ptb.sh", dict(env, **extra), "davam_ptb_k512")
        assert proc.returncode == 0, proc.stderr
        return proc, calls.read_text().splitlines()[0]

    proc, stage1 = start()
    assert "stage1: starts from davam_ptb_k512_fast's warm-up (epoch 10)" in proc.stdout
    # the very warm-up command, into this row's directory and to epoch 100, resuming its own copy
    assert warm.endswith(" --max-epoch 10")
    assert stage1 == warm.replace(f"{fast}/warmup", f"{row}/stage1")[: -len(" --max-epoch 10")]
    assert "--restore-file" not in stage1
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        assert (row / "stage1" / name).read_text() == f"warm-up {name}\n"
    log = (row / "stage1.log").read_text()
    assert "its first 10 epochs are davam_ptb_k512_fast's warm-up" in log.splitlines()[0]
    assert (fast / "warmup.log").read_text() in log and log.index("valid_rec") < log.index("stage1: fairseq-train")
    assert not list(row.glob("stage1/*.tmp")) and not list(row.glob("*.tmp"))

    # a copy cut short (checkpoint_last.pt is renamed into place last) is made again on the rerun
    (row / "stage1" / "checkpoint_last.pt").rename(row / "stage1" / "checkpoint_last.pt.tmp")
    (row / "stage1.done").unlink()
    calls.write_text("")
    redo = recipe("davam_ptb.sh", env, "davam_ptb_k512")
    assert redo.returncode == 0 and "stage1: starts from davam_ptb_k512_fast's warm-up" in redo.stdout
    assert (row / "stage1" / "checkpoint_last.pt").read_text() == "warm-up checkpoint_last.pt\n"
    assert (row / "stage1.log").read_text().count("its first 10 epochs are") == 1

    # a rerun of the row does not copy again (its stage one has a log and a checkpoint of its own)
    (row / "stage1" / "checkpoint_last.pt").write_text("own\n")
    (row / "stage1.done").unlink()
    calls.write_text("")
    again = recipe("davam_ptb.sh", env, "davam_ptb_k512")
    assert again.returncode == 0 and "starts from" not in again.stdout
    assert (row / "stage1" / "checkpoint_last.pt").read_text() == "own\n"

    # SHARE_WARMUP=0, a warm-up that ran another command, or one that has not finished: from scratch
    proc, _ = start(SHARE_WARMUP="0")
    assert "starts from" not in proc.stdout and not (row / "stage1" / "checkpoint_last.pt").exists()
    (fast / "warmup.cmd").write_text(warm.replace("--lr 1.0", "--lr 0.5") + "\n")
    proc, _ = start()
    assert "stage1: not starting from" in proc.stdout and "is not this stage one's with --max-epoch 10" in proc.stdout
    assert not (row / "stage1" / "checkpoint_last.pt").exists()
    (fast / "warmup.cmd").write_text(warm + "\n")
    (fast / "warmup.done").unlink()
    proc, _ = start()
    assert "starts from" not in proc.stdout and not (row / "stage1" / "checkpoint_last.pt").exists()


def recording_figure_tool(calls):
    """The script of a stand-in that records its arguments one per line and writes the figure
    named by --out and its JSON, as davam-sweep, davam-augment and davam-plot do."""
    return f"""printf '%s\\n' "$@" > {calls}
while [ $# -gt 0 ]; do
  if [ "$1" = --out ]; then mkdir -p "$(dirname "$2")"; echo png > "$2"; echo '{{}}' > "${{2%.png}}.json"; fi
  shift
done
"""


def test_k_sweep_and_augmentation_recipes_commands(tmp_path):
    """davam_ptb_k_sweep.sh and snli_augment.sh: the flags they pass (the stated reduced
    budgets, the prior under --bf16-autocast) and the results they copy; the real tools'
    runs are tested in test_sweep/test_augment, and both recipes were smoke-run on real data."""
    calls = tmp_path / "calls.txt"
    snli, out = tmp_path / "snli", tmp_path / "results"
    snli.mkdir()
    tools = {tool: recording_figure_tool(calls) for tool in ("davam-sweep", "davam-augment")}
    env = stand_in_env(tmp_path, tools, RESULTS=str(out), SNLI=str(snli))

    proc = recipe("davam_ptb_k_sweep.sh", env)
    assert proc.returncode == 0, proc.stderr
    args = calls.read_text().splitlines()
    assert args[args.index("--values") + 1] == "128,256,512,1024" and args[args.index("--setting") + 1] == "--num-codes"
    prior = next(a for a in args if a.startswith("--prior-args=")).split()
    assert "--bf16-autocast" in prior and prior[prior.index("--prior-layers") + 1] == "5"
    assert prior[prior.index("--max-epoch") + 1] == "2"
    train = args[args.index("--") + 1 :]
    assert train[train.index("--max-epoch") + 1] == "3" and train[train.index("--beta-warmup-updates") + 1] == "2630"
    assert train[train.index("--save-last-interval-updates") + 1] == prior[prior.index("--save-last-interval-updates") + 1] == "500"
    assert "--max-update" not in " ".join(args)
    assert (out / "davam_ptb_k_sweep.png").is_file() and (out / "davam_ptb_k_sweep.json").is_file()

    # the longer budget: each K warmed up by the authors' recipe (beta over all EPOCHS epochs),
    # then Adam from that K's own last state, as davam_ptb_k512_fast trains K = 512
    # one K after the other (warm-up, Adam, prior), the results copied after each: the stand-in
    # writes the sweep's JSON with the values it was given, and the recipe adds the planned ones
    both, published = tmp_path / "both.txt", tmp_path / "published.txt"
    (tmp_path / "bin" / "davam-sweep").write_text(
        "#!/usr/bin/env bash\n" + recording_figure_tool(calls) + f"{{ cat {calls}; echo CALL-END; }} >> {both}\n"
        f"""out=$(sed -n '/^--out$/{{n;p}}' {calls}); values=$(sed -n '/^--values$/{{n;p}}' {calls})
if [ -n "$out" ]; then echo "{{\\"values\\": [$values]}}" > "${{out%.png}}.json"; fi
if [ -z "$out" ] && [ -f {out}/davam_ptb_k_sweep_fast.json ]; then cat {out}/davam_ptb_k_sweep_fast.json >> {published}; echo CALL-END >> {published}; fi
"""
    )
    proc = recipe("davam_ptb_k_sweep.sh", dict(env, EPOCHS="10", ADAM_EPOCHS="10"))
    assert proc.returncode == 0, proc.stderr
    calls_made = [c.strip().splitlines() for c in both.read_text().split("CALL-END")[:-1]]
    sofar = ["128", "128,256", "128,256,512", "128,256,512,1024"]
    assert [c[c.index("--values") + 1] for c in calls_made] == [v for v in sofar for _ in (0, 1)]
    assert [c[c.index("--save-root") + 1].rsplit("/", 1)[1] for c in calls_made] == ["warmup", "adam"] * 4
    seen = [json.loads(d) for d in published.read_text().split("CALL-END")[:-1]]
    assert [d["values"] for d in seen] == [[128], [128, 256], [128, 256, 512]]  # at each later warm-up
    assert all(d["values_planned"] == [128, 256, 512, 1024] and d["complete"] is False for d in seen)
    final = json.loads((out / "davam_ptb_k_sweep_fast.json").read_text())
    assert final == {"values": [128, 256, 512, 1024], "values_planned": [128, 256, 512, 1024], "complete": True}
    warm, adam = calls_made[:2]
    root = tmp_path / "runs" / "davam_ptb_k_sweep_fast"
    assert warm[warm.index("--save-root") + 1] == f"{root}/warmup" and not any(a.startswith("--prior-args") for a in warm)
    wtrain = warm[warm.index("--") + 1 :]
    assert wtrain[wtrain.index("--max-epoch") + 1] == "10" and wtrain[wtrain.index("--beta-warmup-updates") + 1] == "13150"
    assert adam[adam.index("--save-root") + 1] == f"{root}/adam"
    atrain = adam[adam.index("--") + 1 :]
    last = {flag: atrain[len(atrain) - 1 - atrain[::-1].index(flag) + 1]
            for flag in ("--max-epoch", "--optimizer", "--lr", "--beta-start", "--beta-warmup-updates")}  # fmt: skip
    assert last == {"--max-epoch": "10", "--optimizer": "adam", "--lr": "0.0005", "--beta-start": "5.0",
                    "--beta-warmup-updates": "0"}  # fmt: skip
    assert atrain[atrain.index("--finetune-from-model") + 1] == f"{root}/warmup/num-codes_{{value}}/checkpoints/checkpoint_last.pt"
    assert atrain[atrain.index("--lr-scheduler") + 1] == "davam_plateau"
    assert (out / "davam_ptb_k_sweep_fast.png").is_file() and (out / "davam_ptb_k_sweep_fast.json").is_file()
    assert (root / "recipe.done").is_file() and "ADAM_EPOCHS=10" in (root / "recipe_command.txt").read_text()

    # after a lost RUNS the Ks in the published JSON are not trained again: the warm-up gets the
    # others only, the Adam sweep all Ks so far with --reuse-json (davam-sweep takes them from it)
    shutil.rmtree(root)
    (out / "davam_ptb_k_sweep_fast.json").write_text(json.dumps({"values": [128], "runs": {"128": {"rec": 88.8}}}))
    both.write_text("")
    proc = recipe("davam_ptb_k_sweep.sh", dict(env, EPOCHS="10", ADAM_EPOCHS="10", VALUES="128,256,512"))
    assert proc.returncode == 0, proc.stderr
    assert "K=128: in " in proc.stdout and "not trained again" in proc.stdout
    calls_made = [c.strip().splitlines() for c in both.read_text().split("CALL-END")[:-1]]
    assert [(c[c.index("--save-root") + 1].rsplit("/", 1)[1], c[c.index("--values") + 1]) for c in calls_made] == [
        ("warmup", "256"), ("adam", "128,256"), ("warmup", "256,512"), ("adam", "128,256,512")]
    reuse = [c[c.index("--reuse-json") + 1] if "--reuse-json" in c else None for c in calls_made]
    assert reuse == [None, str(out / "davam_ptb_k_sweep_fast.json"), None, str(out / "davam_ptb_k_sweep_fast.json")]

    missing = recipe("snli_augment.sh", env)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: {snli}/valid.txt not found: set SNLI to the SNLI sentences directory"
    for split in ("valid", "test"):
        (snli / f"{split}.txt").write_text("a b\n")
    proc = recipe("snli_augment.sh", dict(env, MAX_UPDATE="2"))
    assert proc.returncode == 0, proc.stderr
    args = calls.read_text().splitlines()
    assert args[args.index("--source") + 1] == f"{snli}/valid.txt" and args[args.index("--test") + 1] == f"{snli}/test.txt"
    assert args[args.index("--sizes") + 1] == "1000,2000,4000" and args[args.index("--ratios") + 1] == "0.5,1,2,4"
    assert "--prior-args=--bf16-autocast --max-update 2" in args and "--lm-args=--max-update 2" in args
    assert "--sample-args=--prior-max-len 10 --max-len-b 20" in args
    assert "--davam-size" not in args
    assert (out / "snli_augment.png").is_file() and (out / "snli_augment.json").is_file()

    # DAVAM_SIZE: one DAVAM for every size, its own row directory and results
    proc = recipe("snli_augment.sh", dict(env, DAVAM_SIZE="9000"))
    assert proc.returncode == 0, proc.stderr
    args = calls.read_text().splitlines()
    root = tmp_path / "runs" / "snli_augment_pretrained"
    assert args[args.index("--davam-size") + 1] == "9000" and args[args.index("--work-dir") + 1] == str(root)
    assert (out / "snli_augment_pretrained.png").is_file() and (out / "snli_augment_pretrained.json").is_file()
    assert "DAVAM_SIZE=9000" in (root / "recipe_command.txt").read_text()
    bad = recipe("snli_augment.sh", dict(env, DAVAM_SIZE="9k"))
    assert bad.returncode == 2 and "DAVAM_SIZE" in bad.stderr


def test_dynamics_ptb_recipe_commands(tmp_path):
    """dynamics_ptb.sh: GAVAM with the DAVAM row's stage-one recipe for EPOCHS epochs, drawn
    against that row's first EPOCHS epochs (and its prior's once stage two has a log): the fast
    row's warm-up log (the authors' recipe) or another row's stage-one log."""
    calls, train_calls, davam_run = tmp_path / "calls.txt", tmp_path / "train.txt", tmp_path / "davam_row"
    tools = {"fairseq-train": f'echo "$*" > {train_calls}\n', "davam-plot": recording_figure_tool(calls)}
    env = stand_in_env(tmp_path, tools, RESULTS=str(tmp_path / "results"), DAVAM_RUN=str(davam_run))
    missing = recipe("dynamics_ptb.sh", env)
    assert missing.returncode == 2 and missing.stderr.startswith(f"error: {davam_run}/stage1.log not found")
    davam_run.mkdir()
    (davam_run / "stage1.log").write_text("")
    assert recipe("dynamics_ptb.sh", env).returncode == 0
    train = train_calls.read_text().split()
    assert train[train.index("--arch") + 1] == "gavam" and train[train.index("--max-epoch") + 1] == "5"
    assert train[train.index("--lr") + 1] == "1.0" and train[train.index("--optimizer") + 1] == "sgd"
    assert train[train.index("--save-last-interval-updates") + 1] == "500"
    args = calls.read_text().splitlines()
    assert args[:2] == [str(tmp_path / "runs" / "dynamics_ptb" / "gavam.log"), str(davam_run / "stage1.log")]
    assert args[args.index("--metrics") + 1] == "rec,kl" and args[args.index("--max-x") + 1] == "5"
    (davam_run / "stage2.log").write_text("")
    # GAVAM trained for 5 epochs is not taken for the 3 (or 10) asked now: that run's own RUNS
    refused = recipe("dynamics_ptb.sh", dict(env, EPOCHS="3"))
    assert refused.returncode == 2 and "--max-epoch 5 -> --max-epoch 3" in refused.stderr
    assert recipe("dynamics_ptb.sh", dict(env, EPOCHS="3", RUNS=str(tmp_path / "runs3"))).returncode == 0
    args = calls.read_text().splitlines()
    assert args[2] == str(davam_run / "stage2.log") and args[args.index("--labels") + 1].count(",") == 2
    assert args[args.index("--metrics") + 1] == "rec,kl,nll_per_sentence" and args[args.index("--max-x") + 1] == "3"

    # the fast row: its first 10 epochs (warmup.log) are the authors' recipe; more is refused
    fast = tmp_path / "fast_row"
    fast.mkdir()
    (fast / "warmup.cmd").write_text("fairseq-train DATA --arch davam_ptb --max-epoch 100 --lr 1.0 --max-epoch 10\n")
    (fast / "warmup.log").write_text("")
    env = dict(env, DAVAM_RUN=str(fast))
    assert recipe("dynamics_ptb.sh", env).returncode == 0
    assert calls.read_text().splitlines()[1] == str(fast / "warmup.log")
    refused = recipe("dynamics_ptb.sh", dict(env, EPOCHS="11"))
    assert refused.returncode == 2 and refused.stderr.startswith(
        f"error: EPOCHS=11 is more than the 10 epochs of {fast}'s authors'-recipe warm-up")


def test_every_recipe_answers_help_without_running_anything(tmp_path):
    """RECIPE --help prints the recipe's header comment and the shared environment variables
    and exits 0 before it reads, makes or runs anything (it used to start training); a recipe
    set up by environment variables alone refuses stray arguments with one line."""
    env = dict(SUBPROCESS_ENV, RUNS=str(tmp_path / "runs"), DATA=str(tmp_path / "data"), RESULTS=str(tmp_path / "res"),
               PTB=str(tmp_path / "ptb"), VENV_BIN=str(tmp_path / "no-venv"))  # fmt: skip
    scripts = sorted(p.name for p in RECIPES.glob("*.sh") if p.name != "common.sh")
    assert {"davam_ptb.sh", "awd_ptb.sh", "lstm_lm_ptb.sh", "snli_augment.sh", "status.sh"} <= set(scripts)
    for name in scripts:
        for flag in ("--help", "-h"):
            proc = recipe(name, env, flag)
            assert proc.returncode == 0 and proc.stderr == "", (name, proc.stderr)
            header = (RECIPES / name).read_text().splitlines()[1]
            assert proc.stdout.splitlines()[0] == header[2:], name
            assert "Environment of every recipe" in proc.stdout and "RUNS=../runs" in proc.stdout
    assert list(tmp_path.iterdir()) == []
    takes_arguments = {"davam_ptb.sh", "awd_ptb.sh", "davam_ptb_probe.sh", "all.sh"}
    for name in set(scripts) - takes_arguments:
        proc = recipe(name, env, "extra")
        assert proc.returncode == 2 and proc.stdout == "", name
        assert proc.stderr == f"error: {name} takes no arguments, got 'extra' (its settings are environment variables: --help)\n"
    assert list(tmp_path.iterdir()) == []


def test_every_recipe_refuses_a_bad_number_before_it_starts(tmp_path):
    """common.sh checks the whole-number settings once for every recipe (they used to be checked
    by two recipes, each its own way, and reached bash arithmetic or fairseq in the others): a
    bad value ends any recipe with one line naming the variable, before anything is made."""
    env = dict(SUBPROCESS_ENV, RUNS=str(tmp_path / "runs"), DATA=str(tmp_path / "data"), RESULTS=str(tmp_path / "res"),
               PTB=str(tmp_path / "ptb"), VENV_BIN=str(tmp_path / "no-venv"))  # fmt: skip
    args = {"davam_ptb.sh": ["davam_ptb_k512"], "awd_ptb.sh": ["uniform"], "davam_ptb_probe.sh": ["adam"]}
    for name in sorted(p.name for p in RECIPES.glob("*.sh") if p.name != "common.sh"):
        for var, value, what in [("EPOCHS", "3x", "a positive integer"), ("MAX_UPDATE", "0", "a positive integer"),
                                 ("THREADS", "-1", "a positive integer"), ("SEED", "one", "a non-negative integer"),
                                 ("SAVE_LAST_EVERY", "5 min", "a non-negative integer")]:  # fmt: skip
            proc = recipe(name, dict(env, **{var: value}), *args.get(name, []))
            assert proc.returncode == 2 and proc.stdout == "", (name, var, proc.stderr)
            assert proc.stderr == f"error: {var} must be {what}, got '{value}'\n", (name, proc.stderr)
    assert list(tmp_path.iterdir()) == []
    # the authors' code reads the raw text itself: a missing file is named before anything is cloned
    proc = recipe("davam_ptb_authors_code.sh", env)
    assert proc.returncode == 2 and proc.stdout == "" and list(tmp_path.iterdir()) == []
    assert proc.stderr == f"error: {tmp_path}/ptb/train.txt not found: set PTB to the raw Penn Treebank directory\n"


def test_running_a_stage_again_clears_the_stopped_on_purpose_marker(tmp_path):
    """common.sh's run_stage: a row stopped on purpose (stopped.txt, results.py --stopped) that is
    run again loses the marker when a stage runs; a stage already done leaves it."""
    row = tmp_path / "row"
    row.mkdir()
    script = f"source {REPO}/examples/reproduce/common.sh; run_stage done_one {row} true; run_stage s1 {row} true"
    (row / "done_one.done").write_text("x\n")
    (row / "stopped.txt").write_text("why\n")
    proc = subprocess.run(["bash", "-c", script + "; ls " + str(row)], env=dict(SUBPROCESS_ENV, RUNS=str(tmp_path)),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (row / "s1.done").is_file() and not (row / "stopped.txt").exists()
    (row / "stopped.txt").write_text("why\n")
    subprocess.run(["bash", "-c", f"source {REPO}/examples/reproduce/common.sh; run_stage s1 {row} true"],
                   env=dict(SUBPROCESS_ENV, RUNS=str(tmp_path)), capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert (row / "stopped.txt").is_file()


def test_a_stage_continues_only_with_the_command_that_started_it(tmp_path):
    """common.sh's run_stage: a stage whose recorded command (NAME.cmd) differs from this run's is
    neither continued nor counted as done: one line names the file and what differs, and
    nothing runs. Another SEED used to continue the first seed's checkpoint, and a smoke run's
    done stages (MAX_UPDATE) used to pass for the real run's. An unfinished stage may change its
    budget (--max-epoch, --max-update, --epochs), a done one may not; the flags that only say
    where a stage's first state comes from (--restore-file, --reset-*) are not compared."""
    row, ran, tool = tmp_path / "row", tmp_path / "ran", tmp_path / "tool"
    tool.write_text(f"#!/usr/bin/env bash\ntouch {ran}\n")
    tool.chmod(0o755)

    def stage(*args):
        script = f"source {RECIPES}/common.sh; run_stage s1 {row} {tool} {' '.join(args)}"
        proc = subprocess.run(["bash", "-c", script], env=dict(SUBPROCESS_ENV, RUNS=str(tmp_path)),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        return proc, ran.exists() and (ran.unlink() or True)

    first, trained = stage("--seed", "1", "--max-update", "2", "--restore-file", "a.pt", "--reset-optimizer")
    assert first.returncode == 0 and trained, first.stderr
    started = f"error: {row}/s1 was started with another command ({row}/s1.cmd): "
    cases = [  # (done?, this run's flags, the one line's difference and what to remove, or None: it runs)
        (False, ["--seed", "1", "--max-update", "2"], None),  # a rerun, without the first-start flags
        (False, ["--seed", "1"], None),  # a longer (here: fairseq's default) budget for an unfinished stage
        (False, ["--seed", "2", "--max-update", "2"], started + "--seed 1 -> --seed 2. "),
        (False, ["--seed", "1", "--bf16-autocast"], started + "(nothing) -> --bf16-autocast. "),
        (True, ["--seed", "1", "--max-update", "2"], "done already"),
        (True, ["--seed", "1"], f"error: {row}/s1 was trained with another command ({row}/s1.cmd): --max-update 2 -> (nothing). "),
    ]  # fmt: skip
    for done, args, says in cases:
        (row / "s1.cmd").write_text(f"{tool} --seed 1 --max-update 2\n")
        (row / "s1.done").unlink(missing_ok=True)
        if done:
            (row / "s1.done").write_text("x\n")
        proc, trained = stage(*args)
        if says is None:
            assert proc.returncode == 0 and trained and proc.stderr == "", (args, proc.stderr)
        elif says == "done already":
            assert proc.returncode == 0 and not trained and "s1: done already" in proc.stdout
        else:
            assert proc.returncode == 2 and not trained and "done already" not in proc.stdout, (args, proc.stderr)
            assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(says), proc.stderr
            remove = f"{row}/s1.cmd and {row}/s1.done" if done else f"{row}/s1.cmd"
            assert proc.stderr.endswith(f"or remove {remove} to continue it with this command\n")
            assert (row / "s1.cmd").read_text() == f"{tool} --seed 1 --max-update 2\n"  # the record is kept
    (row / "s1.cmd").unlink()  # the way to continue it with another command on purpose
    (row / "s1.done").unlink()
    proc, trained = stage("--seed", "2")
    assert proc.returncode == 0 and trained and (row / "s1.cmd").read_text() == f"{tool} --seed 2\n"


def test_awd_recipe_trains_each_seed_in_a_row_of_its_own(tmp_path):
    """awd_ptb.sh: SEED=2 is the row awd_ptb_MODE_seed2 (hidden 512) with common.seed=2 and the
    evaluation's --seed 2; SEED=1 keeps the paper rows' names."""
    calls = tmp_path / "calls.txt"
    env = stand_in_env(tmp_path, {tool: f'echo "$(basename "$0") $*" >> {calls}\n'
                                  for tool in ("fairseq-hydra-train", "davam-evaluate")})  # fmt: skip
    for seed, row in (("2", "awd_ptb_none_seed2"), ("1", "awd_ptb_none")):
        calls.write_text("")
        proc = recipe("awd_ptb.sh", dict(env, SEED=seed), "none")
        assert proc.returncode == 0, proc.stderr
        train, evaluate = calls.read_text().splitlines()
        run = tmp_path / "runs" / row
        assert f" common.seed={seed} checkpoint.save_dir={run}/train " in train
        assert f" --path {run}/train/checkpoint_best.pt " in evaluate and f" --seed {seed} " in evaluate
        assert (run / "train.done").is_file() and (run / "eval.done").is_file()


def test_status_says_which_rows_stopped_and_how_to_resume_them(tmp_path):
    """status.sh: each row's stages (done / stopped, last validation epoch) and, for rows whose
    recipe recorded its command, finished or stopped with the command that resumes it; a row
    from before that record gets its stages only."""
    runs = tmp_path / "runs"
    env = dict(SUBPROCESS_ENV, RUNS=str(runs), RESULTS=str(tmp_path / "results"))
    stopped, finished, legacy = runs / "row_a", runs / "row_b", runs / "row_c"
    for d in (stopped, finished, legacy):
        d.mkdir(parents=True)
    (stopped / "stage1.cmd").write_text("fairseq-train ...\n")
    (stopped / "stage1.log").write_text(
        '| valid | {"epoch": 2, "valid_rec": "95.5", "valid_num_updates": "2630"}\n| train_inner | {"epoch": 3, "update": 2.5}\n'
        '| valid | {"epoch": 3, "valid_loss": "91.0", "valid_rec": "90.1", "valid_num_updates": "3945"}\nnot json {\n')
    (stopped / "recipe_command.txt").write_text("cd /repo && RUNS=/r examples/reproduce/davam_ptb.sh davam_ptb_k512\n")
    for name in ("stage1.cmd", "stage1.done", "recipe_command.txt", "recipe.done"):
        (finished / name).write_text("x\n")
    for name in ("train.cmd", "train.done"):
        (legacy / name).write_text("x\n")
    proc = recipe("status.sh", env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "row_a: stage1=stopped (last valid: epoch 3, 3,945 updates, rec 90.10)\n"
        "  stopped; resume: cd /repo && RUNS=/r examples/reproduce/davam_ptb.sh davam_ptb_k512\n"
        "row_b: stage1=done\n  finished\n"
        "row_c: train=done\n"
    )
    # a row run by one tool (davam-sweep, davam-augment): no stages, its newest log's last line
    tool = runs / "row_t"
    tool.mkdir()
    (tool / "augment.log").write_text("[size 1000]\n  the LM of size 1000, ratio 2: fairseq-train -> lm.log\n\n")
    (tool / "recipe_command.txt").write_text("cd /repo && examples/reproduce/snli_augment.sh\n")
    proc = recipe("status.sh", env)
    assert proc.stdout.splitlines()[-2:] == [
        "row_t: augment.log: the LM of size 1000, ratio 2: fairseq-train -> lm.log",
        "  stopped; resume: cd /repo && examples/reproduce/snli_augment.sh",
    ]
    shutil.rmtree(tool)
    # a row stopped on purpose (results.py --stopped) says why instead of how to resume it
    (stopped / "stopped.txt").write_text("attention uniform after the warm-up\n")
    proc = recipe("status.sh", env)
    assert proc.stdout.splitlines()[1] == "  stopped on purpose: attention uniform after the warm-up"
    # held before a stage (hold_before, reached: held): which stage, why, and how to go on
    (stopped / "stopped.txt").unlink()
    (stopped / "hold_before").write_text("stage2 the AWD rows first\n")
    proc = recipe("status.sh", env)
    assert proc.stdout.splitlines()[1].startswith("  stopped; resume: ")  # not reached yet
    (stopped / "held").write_text("stage2 2026-12-05T15:00:00Z\n")
    proc = recipe("status.sh", env)
    assert proc.stdout.splitlines()[1] == (
        f"  held before stage2 by {stopped}/hold_before (stage2 the AWD rows first); to continue: remove that "
        "file, then rerun all.sh (or: cd /repo && RUNS=/r examples/reproduce/davam_ptb.sh davam_ptb_k512)")
    (stopped / "hold_before").write_text("eval\n")  # moved on to a later stage: the row goes on, as all.sh sees it
    proc = recipe("status.sh", env)
    assert proc.stdout.splitlines()[1].startswith("  stopped; resume: ")
    (stopped / "hold_before").unlink()
    (stopped / "held").unlink()
    # the fast recipe: stage one counts its updates from the end of the warm-up
    (stopped / "warmup.cmd").write_text("fairseq-train ...\n")
    (stopped / "warmup.done").write_text("x\n")
    (stopped / "warmup.log").write_text("")
    proc = recipe("status.sh", env)
    assert proc.stdout.splitlines()[0] == "row_a: stage1=stopped (last valid: epoch 3, 3,945 updates after the warm-up, rec 90.10) warmup=done"
    # a mid-epoch save after the last validation (--save-last-interval-updates) is where a rerun
    # goes on; an end-of-epoch save (with a score) or one before the validation says nothing more
    save = "| INFO | fairseq.checkpoint_utils | Saved checkpoint /r/row_a/stage1/checkpoint_last.pt (epoch {} @ {} updates, score {})"
    with open(stopped / "stage1.log", "a") as log:
        log.write(save.format(3, 3500, "None") + "\n" + save.format(3, 3945, "90.1") + "\n")
    proc = recipe("status.sh", env)
    assert proc.stdout.splitlines()[0] == "row_a: stage1=stopped (last valid: epoch 3, 3,945 updates after the warm-up, rec 90.10) warmup=done"
    with open(stopped / "stage1.log", "a") as log:
        log.write(save.format(4, 4000, "None") + "\n" + save.format(4, 4500, "None") + "\n")
    proc = recipe("status.sh", env)
    assert proc.stdout.splitlines()[0] == (
        "row_a: stage1=stopped (last valid: epoch 3, 3,945 updates after the warm-up, rec 90.10; "
        "saved mid-epoch 4 at 4,500 updates) warmup=done")
    # a row directory prepared but with no stage started yet (davam_ptb_authors_code's clone)
    (runs / "row_d" / "src").mkdir(parents=True)
    proc = recipe("status.sh", env)
    assert proc.stdout.splitlines()[-1] == "row_d: no stage started"
    # committed results of rows whose run directory is gone, with the status they record; a
    # row with a run directory, a JSON of another kind (a figure's) or a broken one says nothing
    results = tmp_path / "results"
    results.mkdir()
    (results / "row_e.json").write_text('{"row": "row_e", "status": "finished"}')
    (results / "row_f.json").write_text('{"row": "row_f", "status": "lost in train: the machine change"}')
    (results / "row_a.json").write_text('{"row": "row_a", "status": "finished"}')
    (results / "figure.json").write_text('{"rows": {}}')
    (results / "broken.json").write_text("{")
    proc = recipe("status.sh", env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.splitlines()[-2:] == [
        f"row_e: no run directory here; committed {results}/row_e.json: finished",
        f"row_f: no run directory here; committed {results}/row_f.json: lost in train: the machine change"]
    assert "row_a: no run directory" not in proc.stdout
    # no runs at all yet: it says so, and still lists the committed results
    proc = recipe("status.sh", dict(env, RUNS=str(tmp_path / "none")))
    assert proc.stdout.splitlines()[0] == f"no runs yet: {tmp_path}/none does not exist" and len(proc.stdout.splitlines()) == 4


def test_status_says_how_long_a_running_stage_may_take(tmp_path):
    """status.sh, for a running stage (a process has the row directory in its command line):
    the epochs done of the config's max_epoch and the median time between two consecutive
    epoch ends within one process (the gap across a restart does not count); the same for the
    training a tool row (davam-sweep) is in; a stopped stage gets none of it. Under davam_plateau,
    running or not: how many of its halvings have happened, the last one's epoch and the rate."""
    runs = tmp_path / "runs"
    env = dict(SUBPROCESS_ENV, RUNS=str(runs), RESULTS=str(tmp_path / "results"))
    row, tool = runs / "row_r", runs / "row_t"
    (tool / "warmup" / "k_8").mkdir(parents=True)
    row.mkdir()
    (row / "train.cmd").write_text("x\n")
    start = "[2026-12-06 09:00:00,000][fairseq_cli.train][INFO] - {'optimization': {'max_epoch': 10, 'lr': [1.0]}}\n"
    end = '[2026-12-06 {}:00,123][train][INFO] - {{"epoch": {}, "train_loss": "1.0"}}\n'
    valid = '[2026-12-06 13:31:00,000][valid][INFO] - {"epoch": 5, "valid_rec": "80.0", "valid_num_updates": "500"}\n'
    log = (start + end.format("10:00", 1) + end.format("10:20", 2) + end.format("10:40", 3)
           + start + end.format("13:00", 4) + end.format("13:30", 5) + valid
           + "2026-12-06 13:31:00 | INFO | davam_plugin.optim.davam_plateau | davam_plateau: epoch 5: decay 2/5, lr 0.25\n")  # fmt: skip
    (row / "train.log").write_text(log)
    # the tool row's training: fairseq-train's own JSON log format
    sub = tool / "warmup" / "k_8" / "train.log"
    sub.write_text("2026-12-06 08:00:00 | INFO | fairseq_cli.train | {'optimization': {'max_epoch': 4}}\n"
                   + "".join(f'2026-12-06 08:{10 * e:02d}:00 | INFO | train | {{"epoch": {e}}}\n' for e in (1, 2, 3))
                   + '2026-12-06 08:31:00 | INFO | valid | {"epoch": 3, "valid_rec": "99.0", "valid_num_updates": "30"}\n')  # fmt: skip
    (tool / "sweep.log").write_text(f"[k 8] fairseq-train -> {sub}\n")
    proc = recipe("status.sh", env)
    assert proc.stdout.splitlines() == [
        "row_r: train=stopped (last valid: epoch 5, 500 updates, rec 80.00; lr halved 2 of 5 times, last after "
        "epoch 5 (lr 0.25; the stage stops at 5))",
        f"row_t: sweep.log: [k 8] fairseq-train -> {sub}",
    ]
    holders = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"{d}/"]) for d in (row, tool)]
    try:
        proc = recipe("status.sh", env)
    finally:
        for h in holders:
            h.kill()
            h.wait()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "row_r: train=running (last valid: epoch 5, 500 updates, rec 80.00; lr halved 2 of 5 times, last after "
        "epoch 5 (lr 0.25; the stage stops at 5); 5 of 10 epochs done, about 20 min per epoch: at most 1.7 h to go)",
        "  running",
        f"row_t: sweep.log: [k 8] fairseq-train -> {sub} (last valid: epoch 3, 30 updates, rec 99.00; 3 of 4 epochs "
        "done, about 10 min per epoch: at most 0.2 h to go)",
        "  running",
    ]


def test_branch_probe_commands_and_errors(tmp_path):
    """davam_ptb_probe.sh's branch variants continue FROM past beta's warm-up (sgd_decay_from with
    fairseq's fixed schedule in place of davam_plateau's flags, which it would refuse): the first start
    restores FROM with the optimizer and schedule reset and beta held at 5, up to FROM's epoch +
    EPOCHS; a rerun resumes its own checkpoint (no reset, which would throw away Adam's state).
    A FROM that is missing, unreadable or inside the warm-up is a one-line error."""
    calls = tmp_path / "calls.txt"
    env = stand_in_env(tmp_path, {"fairseq-train": f'echo "$*" >> {calls}\n',
                                  "python": f'exec {sys.executable} "$@"\n'}, EPOCHS="2")  # fmt: skip
    start = tmp_path / "start.pt"
    torch.save({"extra_state": {"train_iterator": {"epoch": 22, "iterations_in_epoch": 0}},  # saved after epoch 21
                "optimizer_history": [{"num_updates": 27615}]}, start)  # fmt: skip
    proc = recipe("davam_ptb_probe.sh", dict(env, FROM=str(start), ROW_SUFFIX="_e21"), "adam_from")
    assert proc.returncode == 0, proc.stderr
    first = calls.read_text().split()
    run = tmp_path / "runs" / "davam_probe_adam_from_e21"
    assert first[first.index("--save-dir") + 1] == f"{run}/stage1"
    tail = " ".join(first[first.index("--num-workers") + 2:])
    assert tail == (f"--optimizer adam --lr 0.0005 --max-epoch 23 --beta-start 5.0 --beta-max 5.0 --beta-warmup-updates 0 "
                    f"--restore-file {start} --reset-optimizer --reset-lr-scheduler --reset-meters")  # fmt: skip
    (run / "stage1.done").unlink()
    (run / "stage1" / "checkpoint_last.pt").parent.mkdir(parents=True, exist_ok=True)
    (run / "stage1" / "checkpoint_last.pt").write_text("")
    calls.write_text("")
    assert recipe("davam_ptb_probe.sh", dict(env, FROM=str(start), ROW_SUFFIX="_e21"), "adam_from").returncode == 0
    again = calls.read_text().split()
    assert " ".join(again[again.index("--num-workers") + 2:]) == tail.split(" --restore-file")[0]
    calls.write_text("")
    # adam_dead_from: adam_from's flags and the dead-code restart, in its own directory
    assert recipe("davam_ptb_probe.sh", dict(env, FROM=str(start), ROW_SUFFIX="_e21"), "adam_dead_from").returncode == 0
    dead = calls.read_text().split()
    assert dead[dead.index("--save-dir") + 1] == f"{tmp_path}/runs/davam_probe_adam_dead_from_e21/stage1"
    assert " ".join(dead[dead.index("--num-workers") + 2:]) == tail.replace(
        "--lr 0.0005 ", "--lr 0.0005 --codebook-dead-code-threshold 0.02 ")
    calls.write_text("")
    decay = dict(env, FROM=str(start), SHRINK="0.7")
    assert recipe("davam_ptb_probe.sh", decay, "sgd_decay_from").returncode == 0
    decayed = calls.read_text()
    assert " --lr-scheduler fixed --force-anneal 22 --lr-shrink 0.7 --stop-min-lr 0 " in decayed
    assert "davam_plateau" not in decayed and "--lr-patience" not in decayed and " --lr 1.0 " in decayed
    proc = recipe("davam_ptb_probe.sh", dict(decay, SHRINK="2"), "sgd_decay_from")
    assert proc.returncode == 2 and proc.stderr == "error: SHRINK must be a number between 0 and 1, such as 0.5, got '2'\n"
    early = tmp_path / "early.pt"
    torch.save({"extra_state": {"train_iterator": {"epoch": 3}}, "optimizer_history": [{"num_updates": 3945}]}, early)
    bad = tmp_path / "bad.pt"
    bad.write_text("x")
    for from_, error in [(None, "error: sgd_low_from continues a checkpoint: set FROM to a stage-one checkpoint file (FROM='')"),
                         (bad, f"error: FROM={bad} is not a readable fairseq checkpoint"),
                         (early, f"error: FROM={early} is at update 3945, inside beta's warm-up (13,150 updates): branch after it")]:  # fmt: skip
        proc = recipe("davam_ptb_probe.sh", dict(env, **({"FROM": str(from_)} if from_ else {})), "sgd_low_from")
        assert proc.returncode == 2 and proc.stderr == error + "\n", proc.stderr
