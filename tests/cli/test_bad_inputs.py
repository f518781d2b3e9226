"""Catalogue of bad inputs: each gives one line naming what to fix, never a traceback.

One parametrized table: the inputs of issue 13 (cut-short checkpoints for every tool, text
renamed to .bin/.idx, a training text of empty lines, non-UTF-8 text, ``--beam 0``, empty and
over-long lines typed to fairseq-interactive) and a selection of older one-line errors. Each
case asserts the exit status, that no ``Traceback`` is printed and the key words of the
message (of the last line for errors). The fairseq tools and the ``davam-*`` commands run
forked from a warm interpreter (tests/forked_cli.py).

Plain ``fairseq-preprocess`` (fairseq's own tool, no plugin) still ends non-UTF-8 input with
a traceback (``ValueError: negative seek position -1``); davam-prepare-corpus checks
the text first.
"""

import shutil
from pathlib import Path

import pytest

from conftest import PLUGIN, TRAIN_TINY

INTERACTIVE = ["--user-dir", PLUGIN, "--task", "sentence_vae", "--cpu"]
EVAL = [*INTERACTIVE, "--batch-size", "16"]


class Inputs:
    """The session fixtures plus a scratch directory; builds each case's files."""

    def __init__(self, tiny_raw, tiny_data, tiny_checkpoint, fork_cli, tmp):
        self.raw, self.data, self.ckpt, self.fork_cli, self.tmp = tiny_raw, tiny_data, Path(tiny_checkpoint), fork_cli, tmp

    def cut_checkpoint(self, name="cut.pt", fraction=2):
        path = self.tmp / name
        data = self.ckpt.read_bytes()
        path.write_bytes(data[: len(data) // fraction])
        return path

    def data_copy(self, name):
        dest = self.tmp / name
        shutil.copytree(self.data, dest)
        return dest

    def preprocess(self, name, train_lines, *flags):
        text = self.tmp / f"{name}.txt"
        text.write_text("\n".join(train_lines) + "\n")
        dest = self.tmp / name
        done = self.fork_cli.run(
            "fairseq-preprocess", "--only-source", "--trainpref", text, "--validpref", self.raw / "valid.txt",
            "--destdir", dest, "--workers", "1", *flags,
        )  # fmt: skip
        assert done.returncode == 0, done.output[-2000:]
        return dest


def train(x, data=None, *flags):
    """fairseq-train (davam_tiny, 2 updates) on ``data`` (default: the tiny corpus), saving to {tmp}/ckpt."""
    return "fairseq-train", [data or x.data, *TRAIN_TINY, "--max-update", "2", "--save-dir", x.tmp / "ckpt", *flags], None


def interactive(x, typed, *flags):
    return "fairseq-interactive", [x.data, *INTERACTIVE, "--input", "-", *flags], typed


# ----------------------------------------------------------------------------- the cases
def beam_zero(x):
    return "fairseq-generate", [x.data, *EVAL, "--path", x.ckpt, "--gen-subset", "valid", "--beam", "0"], None


def generate_cut_checkpoint(x):
    return "fairseq-generate", [x.data, *EVAL, "--path", x.cut_checkpoint(), "--gen-subset", "valid"], None


def validate_cut_checkpoint(x):
    return "fairseq-validate", [x.data, *EVAL, "--path", x.cut_checkpoint(), "--valid-subset", "valid"], None


def interactive_cut_checkpoint(x):
    return interactive(x, "a b c\n", "--path", x.cut_checkpoint(fraction=50))


def restore_file_cut(x):
    return train(x, None, "--restore-file", x.cut_checkpoint())


def empty_checkpoint_last_alone(x):
    save = x.tmp / "ckpt"
    save.mkdir()
    (save / "checkpoint_last.pt").write_bytes(b"")
    return train(x)


def evaluate_cut_checkpoint(x):
    return "davam-evaluate", [x.data, "--path", x.cut_checkpoint(), "--split", "valid", "--cpu"], None


def text_renamed_to_bin_idx(x):
    data = x.data_copy("renamed")
    for split in ("train", "valid"):
        for ext in ("bin", "idx"):
            shutil.copy(x.raw / f"{split}.txt", data / f"{split}.{ext}")
    return train(x, data)


def text_renamed_to_bin(x):
    data = x.data_copy("renamed-bin")
    shutil.copy(x.raw / "valid.txt", data / "valid.bin")
    return "fairseq-validate", [data, *EVAL, "--path", x.ckpt, "--valid-subset", "valid"], None


def empty_training_text_preprocessed(x):
    data = x.preprocess("empty-train", [""] * 20)
    return train(x, data)


def empty_training_split_with_a_dictionary(x):
    data = x.preprocess("empty-split", [""] * 20, "--srcdict", x.data / "dict.txt")
    return train(x, data)


def empty_training_text_prepare_corpus(x):
    (x.tmp / "empty.txt").write_text("\n \n\t\n\n")
    return "davam-prepare-corpus", ["--trainpref", x.tmp / "empty.txt", "--destdir", x.tmp / "bin"], None


def non_utf8_prepare_corpus(x):
    (x.tmp / "latin1.txt").write_bytes("the cat\nthe caf\xe9 is open\n".encode("latin-1"))
    return "davam-prepare-corpus", ["--trainpref", x.tmp / "latin1.txt", "--destdir", x.tmp / "bin"], None


def interactive_empty_line(x):
    typed = (x.raw / "valid.txt").read_text().splitlines()[:2]
    return interactive(x, f"{typed[0]}\n\n{typed[1]}\n", "--path", x.ckpt, "--beam", "1")


def interactive_overlong_line(x):
    line = " ".join((x.raw / "valid.txt").read_text().split()[:12])
    return interactive(x, line + "\n", "--path", x.ckpt, "--beam", "1", "--max-sentence-length", "5")


def train_without_dictionary(x):
    (x.tmp / "nodict").mkdir()
    return train(x, x.tmp / "nodict")


def train_num_codes_zero(x):
    return train(x, None, "--num-codes", "0")


def train_wrong_criterion(x):
    return train(x, None, "--arch", "awd_tiny")


def generate_missing_split(x):
    return "fairseq-generate", [x.data, *EVAL, "--path", x.ckpt, "--gen-subset", "nosuch"], None


def prepare_corpus_missing_file(x):
    return "davam-prepare-corpus", ["--trainpref", x.tmp / "nope.txt", "--destdir", x.tmp / "bin"], None


# (case, exit status, key words; "{tmp}" is the case's scratch directory)
CASES = [
    # issue 13
    (beam_zero, 1, ["error: --beam must be >= 1, got 0"]),
    (generate_cut_checkpoint, 1, ["error: checkpoint {tmp}/cut.pt is truncated", "cut short"]),
    (validate_cut_checkpoint, 1, ["error: checkpoint {tmp}/cut.pt is truncated"]),
    (interactive_cut_checkpoint, 1, ["error: checkpoint {tmp}/cut.pt is truncated"]),
    (restore_file_cut, 1, ["error: --restore-file {tmp}/cut.pt is truncated"]),
    (empty_checkpoint_last_alone, 1, ["error: {tmp}/ckpt/checkpoint_last.pt is empty", "no other readable checkpoint"]),
    (evaluate_cut_checkpoint, 1, ["error: --path {tmp}/cut.pt is truncated"]),
    (text_renamed_to_bin_idx, 1, ["{tmp}/renamed/valid.idx is not a fairseq binary index", "fairseq-preprocess"]),
    (text_renamed_to_bin, 1, ["{tmp}/renamed-bin/valid.bin has", "bytes but its index", "fairseq-preprocess"]),
    (empty_training_text_preprocessed, 1, ["{tmp}/empty-train/dict.txt has no word types"]),
    (empty_training_split_with_a_dictionary, 1, ["training split {tmp}/empty-split/train.bin has no words", "20 sentences"]),
    (empty_training_text_prepare_corpus, 2, ["--trainpref: {tmp}/empty.txt has no words (all 4 lines are empty)"]),
    (non_utf8_prepare_corpus, 2, ["--trainpref: {tmp}/latin1.txt is not valid UTF-8: line 2, byte 8"]),
    (interactive_empty_line, 0, ["input 1 is an empty line: skipped"]),
    (interactive_overlong_line, 0, ["input 0: 13 tokens (words + EOS) truncated to --max-sentence-length 5"]),
    # older one-line errors
    (train_without_dictionary, 1, ["error: sentence_vae:", "{tmp}/nodict/dict.txt not found"]),
    (train_num_codes_zero, 1, ["error: --num-codes must be >= 1, got 0"]),
    (train_wrong_criterion, 1, ["error: --arch awd_tiny trains with --criterion awd_elbo"]),
    (generate_missing_split, 1, ["error: sentence_vae: split 'nosuch' not found"]),
    (prepare_corpus_missing_file, 2, ["--trainpref: file not found: {tmp}/nope.txt"]),
]


def run_case(tool, args, stdin, x):
    result = x.fork_cli.run(tool, *args, input=stdin)
    return result.returncode, result.output


def listing(path):
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


@pytest.mark.parametrize("case, status, words", CASES, ids=[c.__name__ for c, _, _ in CASES])
def test_bad_input(case, status, words, tiny_raw, tiny_data, tiny_checkpoint, fork_cli, tmp_path):
    x = Inputs(tiny_raw, tiny_data, tiny_checkpoint, fork_cli, tmp_path)
    tool, args, stdin = case(x)
    save_dir = listing(tmp_path / "ckpt")
    returncode, output = run_case(tool, args, stdin, x)
    lines = output.strip().splitlines()
    assert returncode == status, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    words = [w.format(tmp=tmp_path) for w in words]
    if status:  # an error: the last line says it all, and nothing was written
        assert all(w in lines[-1] for w in words), (words, lines[-1])
        assert listing(tmp_path / "ckpt") == save_dir
    else:
        assert any(all(w in line for w in words) for line in lines), (words, output[-3000:])


def hypothesis_ids(output):
    return [int(line.split("\t")[0][2:]) for line in output.splitlines() if line.startswith("H-")]


def test_interactive_skips_only_the_empty_line(tiny_raw, tiny_data, tiny_checkpoint, fork_cli, tmp_path):
    x = Inputs(tiny_raw, tiny_data, tiny_checkpoint, fork_cli, tmp_path)
    tool, args, stdin = interactive_empty_line(x)
    result = fork_cli.run(tool, *args, "--buffer-size", "2", input=stdin + "\n")  # two buffers, two empty lines
    assert result.returncode == 0, result.output[-3000:]
    assert hypothesis_ids(result.output) == [0, 2], "ids are the input line numbers, the empty lines have none"
    assert "input 3 is an empty line: skipped" in result.output


def test_interactive_truncates_and_still_answers(tiny_raw, tiny_data, tiny_checkpoint, fork_cli, tmp_path):
    x = Inputs(tiny_raw, tiny_data, tiny_checkpoint, fork_cli, tmp_path)
    tool, args, stdin = interactive_overlong_line(x)
    result = fork_cli.run(tool, *args, input=stdin)
    assert result.returncode == 0, result.output[-3000:]
    assert hypothesis_ids(result.output) == [0]
    source = [line.split("\t")[1] for line in result.output.splitlines() if line.startswith("S-")]
    assert len(source) == 1 and len(source[0].split()) == 4, "4 words + EOS = --max-sentence-length 5"
