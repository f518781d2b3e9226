"""End-to-end tests through the real fairseq command-line tools on the tiny corpus.

Every tool runs as a subprocess of this venv (``run_cli``) with ``--user-dir davam_plugin``:
fairseq-validate, fairseq-generate (beam, greedy, sampling), fairseq-interactive,
fairseq-hydra-train with ``examples/hydra/davam_tiny.yaml``, the beta schedule across a
resumed run, a data directory without ``dict.txt`` and over-long lines.
"""

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

import davam_plugin  # noqa: F401  (allow-lists fairseq's checkpoint types for torch.load)

from conftest import PLUGIN, REPO, TRAIN_TINY, fork_server, run_cli

CRITERION_METRICS = ("rec", "nll_per_token", "code_usage", "code_ppl")


# ----------------------------------------------------------------------------- helpers
def raw_lines(path):
    """The lines of a raw corpus file exactly as fairseq-preprocess reads them."""
    return Path(path).read_text().split("\n")[:-1]


def valid_summary(output, subset="valid"):
    """The ``key value | key value`` metrics of fairseq-validate's summary line."""
    marker = f"valid on '{subset}' subset"
    lines = [line for line in output.splitlines() if marker in line]
    assert len(lines) == 1, f"expected one summary line for {subset!r}:\n{output[-3000:]}"
    metrics = {}
    for part in lines[0].split(marker, 1)[1].split(" | ")[1:]:
        key, value = part.strip().rsplit(" ", 1)
        metrics[key] = float(value)
    return metrics


def check_validate_metrics(output, n_sentences, n_tokens=None):
    m = valid_summary(output)
    for key in CRITERION_METRICS:
        assert key in m, f"{key} missing from fairseq-validate output: {sorted(m)}"
        assert math.isfinite(m[key]), f"{key} = {m[key]}"
    assert m["rec"] > 0 and m["nll_per_token"] > 0
    assert m["code_usage"] == int(m["code_usage"]) and m["code_usage"] >= 1
    assert 1.0 <= m["code_ppl"] <= m["code_usage"] + 1e-6
    assert m["bsz"] == n_sentences, "fairseq-validate must see every sentence of the split once"
    if n_tokens is not None:
        assert m["wpb"] == n_tokens, "tokens are words + EOS, every sentence counted"
    return m


def json_log(output, tag):
    """The JSON records of fairseq's ``--log-format json`` lines tagged ``tag`` (e.g. train_inner)."""
    records = []
    for line in output.splitlines():
        if f"| {tag} |" in line and "{" in line:
            records.append(json.loads(line[line.index("{") :]))
    return records


def hypotheses(output):
    """{id: (score, text)} of the ``H-`` lines; fails on a repeated id."""
    hyps = {}
    for line in output.splitlines():
        if line.startswith("H-"):
            head, score, text = line.split("\t", 2)
            i = int(head[2:])
            assert i not in hyps, f"id {i} generated twice"
            hyps[i] = (float(score), text)
    return hyps


def sources(output):
    return {int(line.split("\t", 1)[0][2:]): line.split("\t", 1)[1] for line in output.splitlines() if line.startswith("S-")}


def start_cli(tool, *args):
    """Start ``tool args`` forked from the fork server (stdout + stderr into one log); finish() it."""
    return fork_server().start(tool, *args)


def finish(run, what, timeout=300):
    pid, log = run
    try:
        rc = fork_server().wait(pid, timeout)
    except TimeoutError:
        pytest.fail(f"{what} timed out:\n{log.read_text(errors='replace')[-3000:]}")
    out = log.read_text(errors="replace")
    if rc != 0:
        pytest.fail(f"{what} exited {rc}:\n{out[-4000:]}")
    return out


def davam_tiny_config():
    """Every DavamConfig field as the --arch davam_tiny architecture sets it."""
    from davam_plugin.models.davam import davam_tiny

    ns = argparse.Namespace()
    davam_tiny(ns)
    return vars(ns)


# ----------------------------------------------------------------------------- validate
def test_validate_reports_criterion_metrics_for_every_sentence(tiny_raw, tiny_data, tiny_checkpoint):
    valid = raw_lines(tiny_raw / "valid.txt")
    proc = run_cli(
        "fairseq-validate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae",
        "--path", tiny_checkpoint, "--valid-subset", "valid", "--cpu", "--batch-size", "16",
    )  # fmt: skip
    check_validate_metrics(proc.stdout + proc.stderr, len(valid), sum(len(s.split()) + 1 for s in valid))


# ----------------------------------------------------------------------------- generate
def generate(tiny_data, tiny_checkpoint, *flags):
    proc = run_cli(
        "fairseq-generate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae",
        "--path", tiny_checkpoint, "--gen-subset", "test", "--cpu", "--batch-size", "16", *flags,
    )  # fmt: skip
    return proc.stdout


def check_one_output_per_line(output, test_lines):
    hyps = hypotheses(output)
    n_h = sum(line.startswith("H-") for line in output.splitlines())
    assert n_h == len(test_lines) == 203
    assert sorted(hyps) == list(range(203))
    assert all(math.isfinite(score) for score, _ in hyps.values())
    src = sources(output)
    assert src == dict(enumerate(test_lines)), "S- lines must echo the test split, the empty line included"
    return hyps


@pytest.mark.parametrize("flags", [["--beam", "3"], ["--beam", "1"]], ids=["beam3", "greedy"])
def test_generate_one_hypothesis_per_test_line(tiny_raw, tiny_data, tiny_checkpoint, flags):
    test_lines = raw_lines(tiny_raw / "test.txt")
    assert "" in test_lines
    check_one_output_per_line(generate(tiny_data, tiny_checkpoint, *flags), test_lines)


def test_generate_sampling_is_complete_and_seeded(tiny_raw, tiny_data, tiny_checkpoint):
    test_lines = raw_lines(tiny_raw / "test.txt")
    flags = ["--sampling", "--beam", "1", "--seed", "3"]
    first = check_one_output_per_line(generate(tiny_data, tiny_checkpoint, *flags), test_lines)
    second = check_one_output_per_line(generate(tiny_data, tiny_checkpoint, *flags), test_lines)
    assert first == second, "the same --seed must reproduce the same samples"


# ----------------------------------------------------------------------------- interactive
def test_interactive_two_sentences(tiny_raw, tiny_data, tiny_checkpoint):
    typed = raw_lines(tiny_raw / "valid.txt")[:2]
    proc = run_cli(
        "fairseq-interactive", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae",
        "--path", tiny_checkpoint, "--cpu", "--input", "-", "--buffer-size", "2", "--beam", "2",
        input="\n".join(typed) + "\n",
    )  # fmt: skip
    out = proc.stdout
    hyps = hypotheses(out)
    assert sum(line.startswith("H-") for line in out.splitlines()) == 2
    assert sorted(hyps) == [0, 1]
    assert sources(out) == {0: typed[0], 1: typed[1]}


# ----------------------------------------------------------------------------- hydra
def test_hydra_config_mirrors_davam_tiny():
    cfg = yaml.safe_load((REPO / "examples" / "hydra" / "davam_tiny.yaml").read_text())
    assert cfg["task"]["_name"] == "sentence_vae"
    assert cfg["model"]["_name"] == "davam"
    assert cfg["criterion"]["_name"] == "davam"
    assert cfg["optimizer"]["_name"] == "sgd"
    assert cfg["common"]["cpu"] is True and cfg["common"]["user_dir"]
    assert cfg["optimization"]["max_update"] > 0 and cfg["optimization"]["lr"]
    tiny = davam_tiny_config()
    model = {k: v for k, v in cfg["model"].items() if k != "_name"}
    assert set(model) <= set(tiny), f"unknown model fields: {set(model) - set(tiny)}"
    assert model == {k: tiny[k] for k in model}
    from davam_plugin.models.davam import DavamConfig

    # every size that davam_tiny changes from the DavamConfig defaults is written out
    changed = {k for k, v in tiny.items() if getattr(DavamConfig, k) != v}
    assert changed and changed <= set(model), f"missing from the yaml: {changed - set(model)}"


def test_hydra_train_writes_a_loadable_checkpoint(tiny_raw, tiny_data, tmp_path):
    save = tmp_path / "checkpoints"
    proc = run_cli(
        "fairseq-hydra-train", "--config-dir", "examples/hydra", "--config-name", "davam_tiny",
        f"task.data={tiny_data}", f"common.user_dir={PLUGIN}", f"checkpoint.save_dir={save}",
        f"hydra.run.dir={tmp_path / 'hydra'}", "optimization.max_update=3",
    )  # fmt: skip
    ckpt = save / "checkpoint_last.pt"
    assert ckpt.is_file(), (proc.stdout + proc.stderr)[-3000:]
    state = torch.load(ckpt, weights_only=True)
    assert state["optimizer_history"][-1]["num_updates"] == 3
    assert state["cfg"]["task"]["_name"] == "sentence_vae"
    tiny = davam_tiny_config()
    assert {k: state["cfg"]["model"][k] for k in tiny} == tiny, "hydra model must be davam_tiny"
    assert tuple(state["model"]["encoder.bottleneck.quantizer.codebook"].shape) == (tiny["num_codes"], tiny["code_dim"])

    valid = raw_lines(tiny_raw / "valid.txt")
    proc = run_cli(
        "fairseq-validate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae",
        "--path", ckpt, "--valid-subset", "valid", "--cpu", "--batch-size", "16",
    )  # fmt: skip
    check_validate_metrics(proc.stdout + proc.stderr, len(valid))


# ----------------------------------------------------------------------------- beta schedule
BETA_START, BETA_MAX, BETA_WARMUP = 0.5, 2.5, 10


def test_beta_schedule_survives_resume(tiny_data, tmp_path):
    flags = [
        tiny_data, *TRAIN_TINY, "--seed", "1", "--log-interval", "1", "--log-format", "json",
        "--beta-warmup-updates", BETA_WARMUP, "--beta-start", BETA_START, "--beta-max", BETA_MAX,
    ]  # fmt: skip
    run_a = start_cli("fairseq-train", *flags, "--max-update", "12", "--save-dir", tmp_path / "a")
    run_b1 = start_cli("fairseq-train", *flags, "--max-update", "6", "--save-dir", tmp_path / "b")
    out_b1 = finish(run_b1, "run B (first half)")
    out_a = finish(run_a, "run A")
    assert (tmp_path / "b" / "checkpoint_last.pt").is_file()
    out_b2 = finish(start_cli("fairseq-train", *flags, "--max-update", "12", "--save-dir", tmp_path / "b"), "run B (resumed)")

    a = {int(r["num_updates"]): r for r in json_log(out_a, "train_inner")}
    b1 = {int(r["num_updates"]): r for r in json_log(out_b1, "train_inner")}
    b2 = {int(r["num_updates"]): r for r in json_log(out_b2, "train_inner")}
    assert sorted(a) == list(range(1, 13))
    assert sorted(b1) == list(range(1, 7))
    assert sorted(b2) == list(range(7, 13)), "the second half must resume at update 7"

    for n in range(1, 13):
        # the step that produced update n ran with model.num_updates = n - 1
        expected = BETA_START + (BETA_MAX - BETA_START) * min(1.0, (n - 1) / BETA_WARMUP)
        assert float(a[n]["beta"]) == pytest.approx(expected, abs=1e-3), f"run A, update {n}"
        b = b1[n] if n <= 6 else b2[n]
        assert float(b["beta"]) == pytest.approx(expected, abs=1e-3), f"run B, update {n}"
        assert b["beta"] == a[n]["beta"]
    # the resumed run continues exactly (same data order, dropout seeds and codebook)
    for n in range(7, 13):
        assert (b2[n]["loss"], b2[n]["rec"]) == (a[n]["loss"], a[n]["rec"]), f"update {n}"


RESTART_WARNING = "epoch 2 begins at update 0: the checkpoint it resumes has no optimizer state"


@pytest.mark.parametrize("optimizer_state", [True, False], ids=["with-optimizer-state", "no-save-optimizer-state"])
def test_resume_warns_when_fairseq_restarts_the_update_count(tiny_data, tmp_path, optimizer_state):
    """fairseq restores the update count only with the optimizer state: resuming a checkpoint
    written with --no-save-optimizer-state runs epoch 2 from update 0 again (and beta's warm-up
    with it). The task says so in one warning; a normal resume continues the count, silently."""
    flags = [tiny_data, *TRAIN_TINY, "--seed", "1", "--save-dir", tmp_path]
    if not optimizer_state:
        flags.append("--no-save-optimizer-state")
    first = run_cli("fairseq-train", *flags, "--max-epoch", "1")
    per_epoch = len(json_log(first.stdout + first.stderr, "train_inner"))
    second = run_cli("fairseq-train", *flags, "--max-epoch", "2")
    output = second.stdout + second.stderr
    updates = [int(r["num_updates"]) for r in json_log(output, "train_inner")]
    if optimizer_state:
        assert updates == list(range(per_epoch + 1, 2 * per_epoch + 1))
        assert RESTART_WARNING not in output
    else:
        assert updates == list(range(1, per_epoch + 1)), "fairseq restarts the count (what the warning is about)"
        assert output.count(RESTART_WARNING) == 1


# ----------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def train_without_dict(tmp_path_factory):
    """fairseq-train on a directory without dict.txt: (process, output lines, save dir)."""
    root = tmp_path_factory.mktemp("no-dict")
    empty = root / "data"
    empty.mkdir()
    proc = run_cli("fairseq-train", empty, *TRAIN_TINY, "--max-update", "1", "--save-dir", root / "ckpt", check=False)
    return proc, (proc.stdout + proc.stderr).strip().splitlines(), root / "ckpt"


def test_missing_dictionary_fails_naming_dict_txt(train_without_dict):
    proc, lines, save = train_without_dict
    assert proc.returncode != 0
    assert any("dict.txt" in line for line in lines[-5:]), "\n".join(lines[-20:])
    assert not (save / "checkpoint_last.pt").exists()


def test_missing_dictionary_fails_with_one_line_error(train_without_dict):
    proc, lines, _ = train_without_dict
    assert proc.returncode != 0
    assert not any("Traceback" in line for line in lines), "\n".join(lines[-40:])
    assert lines[-1].startswith("error: sentence_vae:") and "dict.txt" in lines[-1], lines[-1]


# ----------------------------------------------------------------------------- over-long lines
def test_overlong_lines_are_truncated(tiny_raw, tmp_path):
    train = raw_lines(tiny_raw / "train.txt")[:100]
    valid = raw_lines(tiny_raw / "valid.txt")[:10]
    words = " ".join(train).split()
    long_line = " ".join(words[i % len(words)] for i in range(300))
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "train.txt").write_text("\n".join(train[:50] + [long_line] + train[50:]) + "\n")
    (raw / "valid.txt").write_text("\n".join(valid[:5] + [long_line] + valid[5:]) + "\n")
    data = tmp_path / "data-bin"
    run_cli(
        "fairseq-preprocess", "--only-source", "--trainpref", raw / "train.txt",
        "--validpref", raw / "valid.txt", "--destdir", data, "--workers", "1",
    )  # fmt: skip

    save = tmp_path / "ckpt"
    proc = run_cli(
        "fairseq-train", data, *TRAIN_TINY, "--max-update", "4", "--max-sentence-length", "50", "--save-dir", save
    )
    log = proc.stdout + proc.stderr
    for split, n in (("train", 101), ("valid", 11)):
        assert f"{split}: {n} sentences" in log
        summary = [line for line in log.splitlines() if f"{split}: {n} sentences" in line]
        assert any("1 truncated" in line for line in summary), summary
    assert [int(r["num_updates"]) for r in json_log(log, "train_inner")] == [1, 2, 3, 4]

    proc = run_cli(
        "fairseq-validate", data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", save / "checkpoint_last.pt",
        "--valid-subset", "valid", "--cpu", "--batch-size", "16", "--max-sentence-length", "50",
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert "1 truncated" in log
    valid_lines = valid[:5] + [long_line] + valid[5:]
    # the long line keeps its first 49 tokens and its EOS: 50 tokens
    n_tokens = sum(len(s.split()) + 1 for s in valid) + 50
    check_validate_metrics(log, len(valid_lines), n_tokens)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num-codes", "0"], "error: --num-codes must be >= 1, got 0"),
        (["--codebook-decay", "1.5"], "error: --codebook-decay must be in [0, 1), got 1.5"),
        (["--max-sentence-length", "0"], "error: --max-sentence-length must be >= 1, got 0"),
        (["--valid-subset", "nosuch"], "error: sentence_vae: split 'nosuch' not found in"),
        (["--beta-max", "-1"], "error: --beta-max must be >= 0, got -1.0"),
        # model/criterion pairs (TRAIN_TINY has --arch davam_tiny --criterion davam; later flags win)
        (["--arch", "awd_tiny"], "error: --arch awd_tiny trains with --criterion awd_elbo"),
        (["--arch", "lstm"], "error: --criterion davam needs a davam*, gavam*, davam_q* or vae_attn* arch, got --arch lstm"),
        (["--arch", "davam_prior_tiny"], "error: --arch davam_prior_tiny is the stage-two prior: train it with --task davam_prior"),
    ],
)
def test_bad_settings_fail_with_one_line_error(tiny_data, tmp_path, flags, message):
    proc = run_cli(
        "fairseq-train", tiny_data, *TRAIN_TINY, "--max-update", "1", "--save-dir", tmp_path / "ckpt", *flags,
        check=False,
    )  # fmt: skip
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode != 0
    assert not any("Traceback" in line for line in lines), "\n".join(lines[-30:])
    assert lines[-1].startswith(message), lines[-1]
    assert not (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--criterion", "awd_elbo"], "error: --arch davam_tiny trains with --criterion davam"),
        (["--criterion", "davam_prior"], "error: --criterion davam_prior fits the stage-two prior: use it with --task davam_prior"),
    ],
)
def test_wrong_criterion_fails_with_one_line_error(tiny_data, tmp_path, flags, message):
    i = TRAIN_TINY.index("--beta-warmup-updates")  # a flag of --criterion davam only
    base = TRAIN_TINY[:i] + TRAIN_TINY[i + 2 :]
    proc = run_cli(
        "fairseq-train", tiny_data, *base, "--max-update", "1", "--save-dir", tmp_path / "ckpt", *flags, check=False
    )  # fmt: skip
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode != 0
    assert not any("Traceback" in line for line in lines), "\n".join(lines[-30:])
    assert lines[-1] == message, lines[-1]
    assert not (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


def test_generate_on_the_training_split_keeps_every_line(tiny_raw, tiny_data, tiny_checkpoint, tmp_path):
    """--gen-subset train must not drop a partial batch either (203 lines, batch 16)."""
    data = tmp_path / "data-bin"
    run_cli(
        "fairseq-preprocess", "--only-source", "--trainpref", tiny_raw / "test.txt", "--destdir", data,
        "--srcdict", tiny_data / "dict.txt", "--workers", "1",
    )  # fmt: skip
    proc = run_cli(
        "fairseq-generate", data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", tiny_checkpoint,
        "--gen-subset", "train", "--beam", "1", "--batch-size", "16", "--cpu",
    )  # fmt: skip
    ids = [int(line.split("\t")[0][2:]) for line in proc.stdout.splitlines() if line.startswith("H-")]
    assert sorted(ids) == list(range(203))
