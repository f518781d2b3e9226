"""Generation metrics: davam-diversity (Ent, Dist-1, Dist-2) and davam-fluency
(mean token NLL under a fairseq language model, per length bucket)."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

import davam_plugin  # noqa: F401
from davam_plugin.generated_text import read_sentences
from davam_plugin.metrics import ngram_diversity

from conftest import PLUGIN, run_cli

GENERATE_OUTPUT = """S-1\t
H-1\t-1.5\tb c
D-1\t-1.5\tb c
P-1\t-1.0 -2.0 -1.5
S-0\t
H-0\t-2.25\ta b a
H-0\t-3.0\ta a a
H-2\t-0.5\t
"""


def test_read_sentences_from_generate_output_and_plain_text(tmp_path):
    gen = tmp_path / "gen.txt"
    gen.write_text(GENERATE_OUTPUT)
    assert read_sentences(str(gen)) == ["a b a", "b c", ""]  # id order, first hypothesis per id
    plain = tmp_path / "plain.txt"
    plain.write_text("x y\n\nz\n")
    assert read_sentences(str(plain)) == ["x y", "", "z"]


def test_diversity_by_hand(tmp_path):
    result = ngram_diversity([["a", "b", "a"], ["b", "c"], []])
    assert result["tokens"] == 5 and result["bigrams"] == 3
    assert result["dist_1"] == pytest.approx(3 / 5)
    assert result["dist_2"] == pytest.approx(3 / 3)
    assert result["ent"] == pytest.approx(-(2 * 0.4 * math.log(0.4) + 0.2 * math.log(0.2)))
    repeated = ngram_diversity([["a", "a", "a", "a"]])
    assert repeated["dist_1"] == 0.25 and repeated["dist_2"] == pytest.approx(1 / 3) and repeated["ent"] == 0.0

    gen = tmp_path / "gen.txt"
    gen.write_text(GENERATE_OUTPUT)
    out = tmp_path / "div.json"
    proc = run_cli("davam-diversity", gen, "--json", out)
    assert "Ent 1.055  Dist-1 0.600  Dist-2 1.000" in proc.stdout
    assert json.loads(out.read_text())["dist_1"] == pytest.approx(0.6)


@pytest.fixture(scope="module")
def tiny_lm(tiny_data, tmp_path_factory):
    save = tmp_path_factory.mktemp("lm")
    # fairseq's own LM; --user-dir only adds the plugin's clean-exit hook (this 20-update run
    # stops right after epoch 2 starts, while fairseq's batch-buffer thread is still busy)
    run_cli(
        "fairseq-train", tiny_data, "--user-dir", PLUGIN, "--task", "language_modeling", "--arch", "lstm_lm",
        "--sample-break-mode", "eos",
        "--tokens-per-sample", "128", "--decoder-embed-dim", "16", "--decoder-hidden-size", "16",
        "--decoder-out-embed-dim", "16", "--optimizer", "adam", "--lr", "0.01", "--batch-size", "32",
        "--max-update", "20", "--save-dir", save, "--no-epoch-checkpoints", "--cpu", "--num-workers", "0",
    )  # fmt: skip
    return save / "checkpoint_last.pt"


def test_fluency_matches_token_by_token_scoring(tiny_lm, tiny_data, tiny_raw, tmp_path):
    train = (tiny_raw / "train.txt").read_text().splitlines()
    long = " ".join(" ".join(train).split()[:23])
    sentences = [train[0], train[1], "zzzunknownword " + train[2], long, train[3]]
    samples = tmp_path / "samples.txt"
    samples.write_text("\n".join(sentences) + "\n")
    out = tmp_path / "fluency.json"
    run_cli("davam-fluency", samples, "--lm-path", tiny_lm, "--lm-data", tiny_data, "--json", out,
            "--cpu", "--batch-size", "2")  # fmt: skip
    got = json.loads(out.read_text())

    from fairseq import checkpoint_utils

    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(tiny_lm)], arg_overrides={"data": str(tiny_data)})
    lm, d = models[0].eval(), task.target_dictionary
    per_sentence = []
    with torch.no_grad():
        for s in sentences:
            tokens = d.encode_line(s, add_if_not_exist=False).long()
            state, prev, total = {}, torch.tensor([[d.eos()]]), 0.0
            for i, tok in enumerate(tokens.tolist()):
                out_i = lm.decoder(torch.cat([prev, tokens[:i].unsqueeze(0)], 1), incremental_state=state)
                total -= F.log_softmax(out_i[0][0, -1].double(), -1)[tok].item()
            per_sentence.append((total, len(tokens), len(s.split())))
    assert got["unk_tokens"] == 1
    overall = got["overall"]
    assert overall["sentences"] == 5 and overall["tokens"] == sum(n for _, n, _ in per_sentence)
    assert overall["mean_token_nll"] == pytest.approx(sum(t / n for t, n, _ in per_sentence) / 5, rel=1e-5)
    assert overall["ppl"] == pytest.approx(math.exp(sum(t for t, _, _ in per_sentence) / overall["tokens"]), rel=1e-5)
    expected_buckets = {}
    for t, n, words in per_sentence:
        name = next(str(e) for e in (10, 20, 30, 40, 50) if words <= e)
        expected_buckets.setdefault(name, []).append(t / n)
    assert set(got["buckets"]) == set(expected_buckets) and "30" in got["buckets"]
    for name, values in expected_buckets.items():
        assert got["buckets"][name]["sentences"] == len(values)
        assert got["buckets"][name]["mean_token_nll"] == pytest.approx(sum(values) / len(values), rel=1e-5)


def test_fluency_progress_on_a_terminal(tiny_lm, tiny_data, tiny_raw, monkeypatch):
    import io
    import sys

    from davam_plugin.cli.fluency import load_lm, score_sentences

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    sentences = (tiny_raw / "train.txt").read_text().splitlines()[:7]
    model, dictionary, add_bos = load_lm(str(tiny_lm), str(tiny_data), "cpu")
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    shown = score_sentences(model, dictionary, sentences, add_bos, batch_size=3, show_progress=True)
    assert "scoring: 100%" in err.getvalue() and "7/7" in err.getvalue() and "<00:00" in err.getvalue()
    assert shown == score_sentences(model, dictionary, sentences, add_bos, batch_size=3)


def test_fluency_bad_lm_path_is_one_line(tmp_path, tiny_data):
    samples = tmp_path / "s.txt"
    samples.write_text("a b\n")
    proc = run_cli("davam-fluency", samples, "--lm-path", tmp_path / "none.pt", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: --lm-path {tmp_path / 'none.pt'}: no such file"
