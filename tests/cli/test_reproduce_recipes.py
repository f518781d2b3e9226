"""The DAVAM reproduction recipe (examples/reproduce/davam_ptb.sh) and the LM baseline it scores
its samples with (lstm_lm_ptb.sh), end to end on the tiny corpus for a few updates per stage
(MAX_UPDATE): the recipes' own commands, not copies of them. The AWD recipe has its smoke
run in test_awd_cli.py."""

import json
import math
import subprocess

import torch

import davam_plugin  # noqa: F401  (allow-lists fairseq's checkpoint types for torch.load)

from conftest import BIN, REPO, SUBPROCESS_ENV

RECIPES = REPO / "examples" / "reproduce"
DAVAM_STAGES = ("stage1", "stage2", "eval", "samples", "diversity", "fluency")


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

    again = recipe("davam_ptb.sh", env, "davam_ptb_k512")  # finished: every stage is skipped
    assert again.returncode == 0 and again.stdout.count("done already") == len(DAVAM_STAGES), again.stdout[-2000:]


def test_davam_recipe_rejects_a_bad_prior_precision(tmp_path):
    env = dict(SUBPROCESS_ENV, RUNS=str(tmp_path), PRIOR_PRECISION="fp16", VENV_BIN=str(BIN))
    proc = recipe("davam_ptb.sh", env, "davam_ptb_k512")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: PRIOR_PRECISION must be fp32 or bf16, got 'fp16'"
    unknown = recipe("davam_ptb.sh", env, "davam_ptb_k64")
    assert unknown.returncode == 2 and "unknown row 'davam_ptb_k64'" in unknown.stderr


def test_davam_rows_commands(tmp_path):
    """The commands each DAVAM row runs, through stand-in tools that only record their
    arguments: the fast row is the authors' stage one plus its two flags, the rest is equal."""
    tools = tmp_path / "bin"
    tools.mkdir()
    calls = tmp_path / "calls.txt"
    for tool in ("fairseq-train", "davam-evaluate", "fairseq-generate", "davam-diversity", "davam-fluency"):
        (tools / tool).write_text(f'#!/usr/bin/env bash\necho "$(basename "$0") $*" >> {calls}\n')
        (tools / tool).chmod(0o755)
    data = tmp_path / "data"
    data.mkdir()
    for name in ("dict.txt", "train.bin"):  # prepare_ptb: already binarized
        (data / name).write_text("")
    (tmp_path / "lm.pt").write_text("")
    env = dict(SUBPROCESS_ENV, DATA=str(data), RUNS=str(tmp_path / "runs"), VENV_BIN=str(tools),
               LM_PATH=str(tmp_path / "lm.pt"))  # fmt: skip
    commands = {}
    for row in ("davam_ptb_k512", "davam_ptb_k512_fast"):
        calls.write_text("")
        proc = recipe("davam_ptb.sh", env, row)
        assert proc.returncode == 0, proc.stderr
        lines = calls.read_text().replace(str(tmp_path / "runs" / row), "RUN").splitlines()
        assert [line.split()[0] for line in lines] == [
            "fairseq-train", "fairseq-train", "davam-evaluate", "fairseq-generate", "davam-diversity", "davam-fluency"]
        commands[row] = lines
    authors, fast = commands["davam_ptb_k512"], commands["davam_ptb_k512_fast"]
    assert fast[0] == authors[0] + " --codebook-dead-code-threshold 0.02 --lr-decay-start-epoch 8"
    assert fast[1:] == authors[1:]
    stage1 = authors[0].split()
    assert stage1[stage1.index("--lr-decay-start-epoch") + 1] == "16" and "--codebook-dead-code-threshold" not in stage1
    assert "--bf16-autocast" in authors[1] and "--bf16-autocast" not in authors[0] + authors[2]
    assert " --sample-from-prior 100 " in authors[3] and "--max-update" not in " ".join(authors)
