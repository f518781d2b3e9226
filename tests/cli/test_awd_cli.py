"""AWD end to end through the fairseq CLI on the tiny corpus: training in each word-dropout
mode, validation, generation (reconstruction and from the prior), the KL schedule across a
resumed run, Polyak (EMA) weights, davam-evaluate, davam-latent and davam-adversary-view."""

import io
import json
import math
import sys

import pytest
import torch

import davam_plugin  # noqa: F401

from conftest import PLUGIN, run_cli
from test_cli import json_log, raw_lines

TRAIN_AWD = [
    "--user-dir", PLUGIN, "--task", "sentence_vae", "--arch", "awd_tiny", "--criterion", "awd_elbo",
    "--optimizer", "adam", "--lr", "0.003", "--clip-norm", "5", "--batch-size", "32", "--cpu",
    "--log-format", "json", "--log-interval", "1", "--no-epoch-checkpoints", "--num-workers", "0",
    "--kl-warmup-updates", "20", "--seed", "1",
]  # fmt: skip
AWD_METRICS = ("rec", "kl", "neg_elbo", "elbo_ppl", "kl_weight", "drop_frac")


def valid_record(output):
    records = json_log(output, "valid")
    assert records, output[-3000:]
    return {k[len("valid_") :]: float(v) for k, v in records[-1].items() if k.startswith("valid_")}


@pytest.fixture(scope="module")
def awd_runs(tiny_data, tmp_path_factory):
    """One short run per mode: {mode: (checkpoint dir, train output)}."""
    runs = {}
    for mode in ("adversarial", "uniform", "none"):
        save = tmp_path_factory.mktemp(f"awd-{mode}")
        extra = ["--store-ema", "--ema-decay", "0.9", "--validate-with-ema"] if mode == "adversarial" else []
        proc = run_cli(
            "fairseq-train", tiny_data, *TRAIN_AWD, "--word-dropout-mode", mode, "--word-dropout-rate", "0.3",
            "--max-update", "25", "--save-dir", save, *extra,
        )  # fmt: skip
        runs[mode] = (save, proc.stdout + proc.stderr)
    return runs


@pytest.mark.parametrize("mode", ["adversarial", "uniform", "none"])
def test_each_mode_trains_and_logs_the_elbo(awd_runs, mode):
    save, out = awd_runs[mode]
    train = {int(r["num_updates"]): r for r in json_log(out, "train_inner")}
    assert sorted(train) == list(range(1, 26))
    for r in train.values():
        for key in AWD_METRICS:
            assert math.isfinite(float(r[key])), key
        assert float(r["neg_elbo"]) == pytest.approx(float(r["rec"]) + float(r["kl"]), abs=2e-3)
    drop = [float(r["drop_frac"]) for r in train.values()]
    if mode == "none":
        assert max(drop) == 0.0 and "score_kl" not in train[1] and "adversary_grad_norm" not in train[1]
    elif mode == "uniform":
        assert 0.2 < sum(drop) / len(drop) < 0.4 and "score_kl" not in train[1] and "adversary_grad_norm" not in train[1]
    else:  # K = round(0.3 T) per sentence (exactness: test_awd_model): near 0.3 on average
        assert all(0.15 < d < 0.5 for d in drop) and 0.27 < sum(drop) / len(drop) < 0.34, str(drop)
        assert "score_std" in train[1]
        norms = [float(r["adversary_grad_norm"]) for r in train.values()]
        assert all(math.isfinite(g) and g >= 0 for g in norms) and sum(g > 0 for g in norms) > len(norms) // 2, norms
    v = valid_record(out)
    assert "adversary_grad_norm" not in v, "a training-only statistic"
    assert v["drop_frac"] == 0.0, "no word dropout at validation"
    assert v["kl_weight"] == pytest.approx(min(1.0, 0.1 + 0.9 * 25 / 20), abs=1e-3), "the schedule in force"


def test_validate_generate_and_sample_from_the_prior(awd_runs, tiny_data, tiny_raw):
    save, _ = awd_runs["adversarial"]
    ckpt = save / "checkpoint_last.pt"
    proc = run_cli(
        "fairseq-validate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", ckpt,
        "--valid-subset", "test", "--batch-size", "16", "--cpu", "--log-format", "json",
    )  # fmt: skip
    line = [x for x in (proc.stdout + proc.stderr).splitlines() if '"valid_loss"' in x or '"test_loss"' in x][-1]
    rec = json.loads(line[line.index("{") :])
    assert float(rec["test_bsz"]) == 203 and float(rec["test_drop_frac"]) == 0.0
    for flags in (["--beam", "5"], ["--beam", "1", "--sampling"]):
        proc = run_cli(
            "fairseq-generate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", ckpt,
            "--gen-subset", "test", "--batch-size", "16", "--cpu", *flags,
        )  # fmt: skip
        assert sorted(int(x.split("\t")[0][2:]) for x in proc.stdout.splitlines() if x.startswith("H-")) == list(range(203))
    proc = run_cli(
        "fairseq-generate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", ckpt,
        "--sample-from-prior", "7", "--beam", "1", "--sampling", "--cpu",
    )  # fmt: skip
    assert sorted(int(x.split("\t")[0][2:]) for x in proc.stdout.splitlines() if x.startswith("H-")) == list(range(7))


def test_kl_schedule_survives_resume(tiny_data, tmp_path):
    from test_cli import finish, start_cli

    flags = [tiny_data, *TRAIN_AWD, "--kl-weight-start", "0.2", "--kl-warmup-updates", "10"]
    run_a = start_cli("fairseq-train", *flags, "--max-update", "12", "--save-dir", tmp_path / "a")
    out_b1 = finish(start_cli("fairseq-train", *flags, "--max-update", "6", "--save-dir", tmp_path / "b"), "B1")
    out_a = finish(run_a, "A")
    out_b2 = finish(start_cli("fairseq-train", *flags, "--max-update", "12", "--save-dir", tmp_path / "b"), "B2")
    a = {int(r["num_updates"]): r for r in json_log(out_a, "train_inner")}
    b = {int(r["num_updates"]): r for r in json_log(out_b1, "train_inner") + json_log(out_b2, "train_inner")}
    assert sorted(a) == sorted(b) == list(range(1, 13))
    for n in range(1, 13):
        expected = 0.2 + 0.8 * min(1.0, (n - 1) / 10)
        assert float(a[n]["kl_weight"]) == pytest.approx(expected, abs=1e-3)
        assert b[n]["kl_weight"] == a[n]["kl_weight"]
    for n in range(7, 13):
        assert (b[n]["loss"], b[n]["rec"], b[n]["kl"]) == (a[n]["loss"], a[n]["rec"], a[n]["kl"]), n


def test_ema_weights_are_stored_and_used_by_evaluate(awd_runs, tiny_data, tiny_raw, tmp_path):
    save, _ = awd_runs["adversarial"]
    state = torch.load(save / "checkpoint_last.pt", map_location="cpu")
    ema = state["extra_state"]["ema"]
    name = "decoder.output_projection.weight"
    assert not torch.equal(ema[name], state["model"][name]), "the averaged weights differ from the trained ones"
    outs = {}
    for use_ema in (False, True):
        out = tmp_path / f"eval_{use_ema}.json"
        run_cli(
            "davam-evaluate", tiny_data, "--path", save / "checkpoint_last.pt", "--split", "valid",
            "--iw-samples", "6", "--iw-chunk", "4", "--json", out, "--cpu", *(["--use-ema"] if use_ema else []),
        )  # fmt: skip
        outs[use_ema] = json.loads(out.read_text())
    for r in outs.values():
        assert r["sentences"] == 40 and r["iw_samples"] == 6
        assert r["neg_elbo"] == pytest.approx(r["rec"] + r["kl"])
        assert 0 <= r["active_units"] <= r["latent_dim"] == 8
        assert r["mi_minibatch"] <= math.log(r["mi_minibatch_size"]) + 1e-6
        assert r["ppl_iw"] == pytest.approx(math.exp(r["iw_nll"] * r["sentences"] / r["tokens"]), rel=1e-6)
    assert outs[True]["rec"] != outs[False]["rec"]
    out = tmp_path / "eval_subset.json"
    base = ["davam-evaluate", tiny_data, "--path", save / "checkpoint_last.pt", "--split", "valid",
            "--iw-samples", "6", "--iw-chunk", "4", "--cpu"]  # fmt: skip
    printed = run_cli(*base, "--iw-max-sentences", "5", "--json", out).stdout
    sub = json.loads(out.read_text())
    assert sub["iw_sentences"] == 5 and outs[False]["iw_sentences"] == 40 and "(first 5 sentences" in printed
    assert sub["neg_elbo"] == pytest.approx(outs[False]["neg_elbo"], rel=1e-6)
    proc = run_cli(*base, "--iw-max-sentences", "0", check=False)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines()[-1] == "error: --iw-max-sentences must be >= 1, got 0"
    # --max-sentences: every metric over the first N sentences only (the same sentences and draws
    # as the -ELBO of --iw-max-sentences N, which still reads the whole split)
    first = tmp_path / "eval_first.json"
    printed = run_cli(*base, "--max-sentences", "5", "--json", first).stdout
    head = json.loads(first.read_text())
    valid = raw_lines(tiny_raw / "valid.txt")[:5]
    assert head["sentences"] == 5 and head["max_sentences"] == 5 and head["iw_sentences"] == 5
    assert head["tokens"] == sum(len(s.split()) + 1 for s in valid)
    assert head["neg_elbo"] == pytest.approx(sub["neg_elbo_iw_subset"], rel=1e-5)
    assert head["iw_nll"] == pytest.approx(sub["iw_nll"], rel=1e-5)
    assert "valid: 5 sentences" in printed and "the first 5 of 40 (--max-sentences)" in printed
    proc = run_cli(*base, "--max-sentences", "0", check=False)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines()[-1] == "error: --max-sentences must be >= 1, got 0"


class Terminal(io.StringIO):
    """A stderr that says it is a terminal (tqdm shows its bars only on one)."""

    def isatty(self):
        return True


def test_evaluate_iw_progress_counts_every_decoded_sentence(awd_runs, tiny_data, monkeypatch):
    from davam_plugin.cli.evaluate import decoded_sentences_progress
    from davam_plugin.evaluation import evaluate_gaussian_split
    from davam_plugin.loading import load_sentence_model

    task, model = load_sentence_model(str(awd_runs["none"][0] / "checkpoint_last.pt"), str(tiny_data))
    sentences = task.load_sentences("valid")
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    with decoded_sentences_progress(model, 40 + 5 * 6):  # one ELBO decode each + 6 IW samples x 5 sentences
        with_bar = evaluate_gaussian_split(model, sentences, iw_samples=6, iw_chunk=4, batch_size=16, iw_max_sentences=5)
    shown = err.getvalue()
    assert "IW sampling: 100%" in shown and "70/70" in shown and "<00:00" in shown, shown[-500:]
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: no bar
    with decoded_sentences_progress(model, 70) as silent:
        without = evaluate_gaussian_split(model, sentences, iw_samples=6, iw_chunk=4, batch_size=16, iw_max_sentences=5)
    assert silent.bar.disable and not model.decoder._forward_hooks, "the hook is removed afterwards"
    assert with_bar == without


def test_evaluate_resumes_from_its_resume_file(awd_runs, tiny_data, tmp_path, monkeypatch):
    """An evaluation stopped after two batches and rerun with the same command continues from
    --resume-file and writes exactly the JSON of an uninterrupted run; the file is deleted at
    the end. A file from another evaluation, or not an evaluation state, gets a one-line error."""
    from davam_plugin.cli import evaluate

    ckpt = awd_runs["adversarial"][0] / "checkpoint_last.pt"
    base = ["davam-evaluate", tiny_data, "--path", ckpt, "--split", "valid", "--iw-samples", "6",
            "--iw-chunk", "4", "--batch-size", "8", "--cpu", "--use-ema"]  # fmt: skip
    whole = tmp_path / "whole.json"
    run_cli(*base, "--json", whole)
    state = tmp_path / "state" / "eval.partial.pt"

    def interrupt_after_two_batches():
        saves = []
        real_save = evaluate.ResumeFile.save

        def save(self, s):
            real_save(self, s)
            saves.append(s["next_sentence"])
            if len(saves) == 2:
                raise KeyboardInterrupt

        monkeypatch.setattr(evaluate.ResumeFile, "save", save)
        with pytest.raises(KeyboardInterrupt):
            evaluate.run(evaluate.parse_args([str(a) for a in base[1:]] + ["--resume-file", str(state), "--json",
                                                                            str(tmp_path / "never.json")]))  # fmt: skip
        monkeypatch.setattr(evaluate.ResumeFile, "save", real_save)
        assert saves == [8, 16] and state.exists() and not (tmp_path / "never.json").exists()

    interrupt_after_two_batches()
    resumed = tmp_path / "resumed.json"
    proc = run_cli(*base, "--resume-file", state, "--json", resumed)
    assert f"resuming from --resume-file {state}: 16 sentences done" in proc.stderr
    assert json.loads(resumed.read_text()) == json.loads(whole.read_text())
    assert not state.exists(), "a finished evaluation removes its state"
    # the same file read by an evaluation with another seed, or a file that is no state
    interrupt_after_two_batches()
    proc = run_cli(*base, "--resume-file", state, "--seed", "2", check=False)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines()[-1] == (
        f"error: --resume-file {state} belongs to another evaluation (seed: 1 there, 2 now); "
        "delete it or name another file"
    )
    state.write_text("not a state\n")
    proc = run_cli(*base, "--resume-file", state, check=False)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines()[-1] == (
        f"error: --resume-file {state} is not a PyTorch checkpoint (12 bytes, unknown format); "
        "delete it to start the evaluation again"
    )


def test_bench_evaluate_times_each_grouping_with_the_same_numbers(awd_runs, tiny_data, tmp_path):
    ckpt = awd_runs["none"][0] / "checkpoint_last.pt"
    out = tmp_path / "bench.json"
    run_cli("python", "scripts/bench_evaluate.py", tiny_data, "--path", ckpt, "--split", "valid", "--first", "3",
            "--num", "12", "--iw-samples", "3", "--batch-size", "8", "--groups", "8,2", "--json", out)  # fmt: skip
    rows = json.loads(out.read_text())
    assert [r["group"] for r in rows] == [8, 2] and all(r["seconds"] >= 0 for r in rows)
    assert rows[0]["iw_nll"] == pytest.approx(rows[1]["iw_nll"], rel=1e-6)
    proc = run_cli("python", "scripts/bench_evaluate.py", tiny_data, "--path", ckpt, "--split", "valid",
                   "--first", "39", "--num", "5", check=False)  # fmt: skip
    assert proc.returncode != 0 and "must lie inside the split's 40 sentences" in proc.stderr.splitlines()[-1]


def test_latent_tools_and_adversary_view(awd_runs, tiny_data, tiny_raw, tmp_path):
    save, _ = awd_runs["adversarial"]
    ckpt = save / "checkpoint_last.pt"
    train = (tiny_raw / "train.txt").read_text().splitlines()
    base = ["davam-latent", tiny_data, "--path", ckpt, "--cpu", "--beam", "2"]
    out = run_cli(*base, "interpolate", "--sentence-a", train[0], "--sentence-b", train[1], "--steps", "4").stdout
    assert [line.split("\t")[0] for line in out.splitlines()] == ["t=0.00", "t=0.33", "t=0.67", "t=1.00"]
    out = run_cli(*base, "sample", "--num", "3").stdout
    assert len(out.splitlines()) == 3
    out = run_cli(*base, "neighbours", "--sentence", train[2], "--num", "2").stdout
    assert len(out.splitlines()) == 2
    html, js = tmp_path / "adv.html", tmp_path / "adv.json"
    run_cli(
        "davam-adversary-view", tiny_data, "--path", ckpt, "--sentence", train[3],
        "--sentence", train[4], "--out", html, "--json", js, "--num-samples", "200", "--cpu",
    )  # fmt: skip
    rows = json.loads(js.read_text())
    assert len(rows) == 2 and "<span" in html.read_text()
    for row in rows:
        n = len(row["words"])
        assert row["k"] == math.floor(0.3 * n + 0.5) and sum(row["dropped"]) == row["k"]
        assert sum(row["p_drop"]) == pytest.approx(row["k"], abs=1e-9)
    proc = run_cli(
        "davam-adversary-view", tiny_data, "--path", awd_runs["none"][0] / "checkpoint_last.pt",
        "--sentence", train[0], "--out", html, "--cpu", check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "it has no adversary" in proc.stderr.strip().splitlines()[-1]


def test_adversary_view_takes_sentences_and_a_file_and_shows_a_legend(awd_runs, tiny_data, tiny_raw, tmp_path):
    ckpt = awd_runs["adversarial"][0] / "checkpoint_last.pt"
    train = (tiny_raw / "train.txt").read_text().splitlines()
    listing = tmp_path / "sentences.txt"
    listing.write_text(f"{train[6]}\n\n  {train[7]}  \nThe zebra .\n")  # an empty line: skipped
    html, js = tmp_path / "out" / "adv.html", tmp_path / "out" / "adv.json"
    proc = run_cli(
        "davam-adversary-view", tiny_data, train[5], "--path", ckpt, "--input", listing, train[8],
        "--out", html, "--json", js, "--num-samples", "50", "--cpu",
    )  # fmt: skip
    assert proc.stdout.strip().splitlines()[-1] == f"wrote {html} (5 sentences)"
    rows = json.loads(js.read_text())
    # arguments (wherever they stand among the options) first, then the file's lines
    expected = [train[5], train[8], train[6], train[7], "The zebra ."]
    assert [" ".join(w for w in row["words"] if w != "<s>") for row in rows] == expected
    # tiny_data was made by plain fairseq-preprocess: no stored preparation, words as given
    assert "has no preprocessing.json" in proc.stderr
    warnings = [line.split(" | ")[-1] for line in proc.stderr.splitlines() if "read as <unk>" in line]
    assert warnings == ["sentence 5: 2 word(s) not in the dictionary, read as <unk>: 'The', 'zebra'"]
    page = html.read_text()
    legend = page[page.index("<div class='legend'>") : page.index("</div>")]
    assert "P(drop), from 50 score draws" in legend and "struck through, bold" in legend
    for p in (0, 0.25, 0.5, 0.75, 1):
        assert f"<span class='w' style='background:rgba(220,30,30,{p:.3f})'>{p:g}</span>" in legend
    assert page.count("<p><span") == 5
    proc = run_cli("davam-adversary-view", tiny_data, "--path", ckpt, "--out", html, "--cpu", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == "error: give sentences (arguments, --sentence or --input FILE)"


def test_composite_optimizer_gives_the_adversary_its_own_adam(tiny_data, tmp_path):
    from conftest import REPO

    proc = run_cli(
        "fairseq-hydra-train", "--config-dir", REPO / "examples" / "hydra", "--config-name", "awd_tiny_composite",
        f"task.data={tiny_data}", f"common.user_dir={PLUGIN}", f"checkpoint.save_dir={tmp_path / 'ckpt'}",
        f"hydra.run.dir={tmp_path / 'run'}", "optimization.max_update=3",
    )  # fmt: skip
    records = [json.loads(x[x.index("{") :]) for x in (proc.stdout + proc.stderr).splitlines() if "[train_inner]" in x]
    assert [int(r["num_updates"]) for r in records] == [1, 2, 3]
    assert all(float(r["lr_default"]) == 1.0 and float(r["lr_adversary"]) == 0.001 for r in records)
    state = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", map_location="cpu")
    opt_state = state["last_optimizer_state"]
    assert set(opt_state) == {"default", "adversary"}
    adam_state = opt_state["adversary"]["state"]
    assert adam_state and all("exp_avg" in s for s in adam_state.values()), "Adam moments for the adversary"


@pytest.mark.parametrize("mode,precision", [("adversarial", "bf16"), ("uniform", "fp32")])
def test_reproduction_recipe_smoke_run(mode, precision, tiny_data, tmp_path):
    """examples/reproduce/awd_ptb.sh end to end at hidden 16 for 2 updates (training through
    its hydra config, then davam-evaluate), and a rerun of the finished recipe skips both
    stages. The adversarial config is the composite-optimizer one (VAE SGD, adversary Adam).
    PRECISION=bf16 reaches the task's --bf16-autocast through the hydra config."""
    import os
    import subprocess

    from conftest import BIN, REPO, SUBPROCESS_ENV

    env = dict(SUBPROCESS_ENV, DATA=str(tiny_data), RUNS=str(tmp_path), HIDDEN="16", MAX_UPDATE="2",
               PRECISION=precision, VENV_BIN=str(BIN), PTB=str(tmp_path / "unused"))  # fmt: skip
    cmd = ["bash", str(REPO / "examples" / "reproduce" / "awd_ptb.sh"), mode]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    run = tmp_path / f"awd_ptb_{mode}_h16"
    log = (run / "train.log").read_text()
    state = torch.load(run / "train" / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == 2, log[-2000:]
    model_cfg = state["cfg"]["model"]
    assert model_cfg["encoder_hidden_dim"] == 16 and model_cfg["word_dropout_mode"] == mode
    assert not model_cfg["decoder_no_bos_step"] and not model_cfg["separate_decoder_embeddings"]  # the authors'
    assert state["cfg"]["task"]["bf16_autocast"] == (precision == "bf16")
    assert state["cfg"]["checkpoint"]["save_interval_updates"] == 300  # mid-epoch saves for hours-long epochs
    if mode == "adversarial":
        assert '"train_lr_adversary": "0.001"' in log and '"train_lr_default": "1"' in log
    else:
        assert model_cfg["word_dropout_rate"] == 0.4 and model_cfg["uniform_dropout_unit"] == "timestep"
    result = json.loads((run / "eval.json").read_text())
    assert math.isfinite(result["neg_elbo"]) and os.path.isfile(run / "eval.done")
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("done already") == 2, again.stdout[-2000:]
