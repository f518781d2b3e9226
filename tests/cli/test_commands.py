"""The installed ``davam-*`` commands: each answers ``--help`` from a directory outside the
repository (installed console scripts, no ``sys.path`` set-up), and the corpus preparation
stored by ``davam-prepare-corpus`` is applied to the raw sentences ``davam-latent`` is given
(cased raw text reads as the lower-cased training text, without extra ``<unk>``)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PLUGIN, SUBPROCESS_ENV
from davam_plugin.cli.demo_corpus import NAMES, generate_corpus

BIN = Path(sys.executable).parent
COMMANDS = [
    "davam-prepare-corpus", "davam-demo-corpus", "davam-evaluate", "davam-diversity", "davam-fluency",
    "davam-latent", "davam-adversary-view", "davam-plot", "davam-sweep", "davam-augment",
]  # fmt: skip


def test_every_command_is_installed_and_runs_from_anywhere(tmp_path):
    env = {k: v for k, v in SUBPROCESS_ENV.items() if k != "PYTHONPATH"}
    procs = {
        cmd: subprocess.Popen([str(BIN / cmd), "--help"], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        for cmd in COMMANDS
    }
    for cmd, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (cmd, err[-2000:])
        assert out.startswith(f"usage: {cmd} "), (cmd, out[:200])
        assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [], "--help writes nothing into the current directory"


def cased(sentence):
    """A raw, cased version of a demo sentence: capital first letter and names, punctuation
    attached to the word before it (Moses splits it off again)."""
    words = [w.capitalize() if w in NAMES else w for w in sentence.split()]
    text = " ".join(words)
    text = re.sub(r" ([.,?])", r"\1", text)
    return text[0].upper() + text[1:]


@pytest.fixture(scope="module")
def cased_run(tmp_path_factory, fork_cli):
    """A cased raw corpus prepared with davam-prepare-corpus (tokenized, lower-cased) and an
    AWD trained on it for 2 updates: (data, checkpoint, raw train lines, prepared lines)."""
    root = tmp_path_factory.mktemp("cased")
    corpus = generate_corpus(seed=3, n_train=300, n_valid=20, n_test=0)
    for split in ("train", "valid"):
        (root / f"{split}.txt").write_text("\n".join(cased(s) for s in corpus[split]) + "\n", encoding="utf-8")
    data = root / "data-bin"
    result = fork_cli.run(
        "davam-prepare-corpus", "--trainpref", root / "train.txt", "--validpref", root / "valid.txt",
        "--destdir", data, "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.output[-3000:]
    assert (data / "preprocessing.json").is_file()
    save = root / "ckpt"
    result = fork_cli.run(
        "fairseq-train", data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--arch", "awd_tiny",
        "--criterion", "awd_elbo", "--optimizer", "adam", "--lr", "0.003", "--batch-size", "32", "--cpu",
        "--max-update", "2", "--save-dir", save, "--no-epoch-checkpoints", "--num-workers", "0", "--seed", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.output[-3000:]
    raw = (root / "train.txt").read_text(encoding="utf-8").splitlines()
    prepared = (root / "data-bin.tok" / "train.txt").read_text(encoding="utf-8").splitlines()
    return data, save / "checkpoint_last.pt", raw, prepared


def latent_reconstruct(fork_cli, data, ckpt, sentence, *flags):
    result = fork_cli.run("davam-latent", data, "--path", ckpt, "--cpu", "--beam", "2", *flags,
                          "reconstruct", "--sentence", sentence)  # fmt: skip
    assert result.returncode == 0, result.output[-3000:]
    lines = result.output.splitlines()
    decoded = [line for line in lines if line.startswith("mean-0\t")]
    inputs = [line.split(" | ")[-1] for line in lines if " | INFO | davam_plugin.cli.latent | input mean-0: " in line]
    unknown = [line.split(" | ")[-1] for line in lines if "read as <unk>" in line]
    return decoded, inputs, unknown


def test_latent_applies_the_stored_preparation_to_raw_text(cased_run, fork_cli):
    data, ckpt, raw, prepared = cased_run
    i = next(k for k, s in enumerate(raw) if any(c.isupper() for c in s[1:]) and ("," in s or "." in s))
    assert raw[i] != prepared[i] and raw[i].lower() != prepared[i]  # needs both lower-casing and Moses
    decoded_raw, inputs_raw, unknown_raw = latent_reconstruct(fork_cli, data, ckpt, raw[i])
    decoded_ready, inputs_ready, unknown_ready = latent_reconstruct(fork_cli, data, ckpt, prepared[i], "--no-preprocess")
    assert inputs_raw == inputs_ready == [f"input mean-0: {prepared[i]}"]
    assert unknown_raw == unknown_ready == []
    assert len(decoded_raw) == 1 and decoded_raw == decoded_ready, "the same latent code, the same decoding"
    # without the preparation the cased raw words are <unk>
    _, inputs_off, unknown_off = latent_reconstruct(fork_cli, data, ckpt, raw[i], "--no-preprocess")
    assert inputs_off == [f"input mean-0: {' '.join(raw[i].split())}"]
    first = raw[i].split()[0]
    assert len(unknown_off) == 1 and f"'{first}'" in unknown_off[0], unknown_off
    # a word the corpus never had stays <unk> either way (and is named)
    _, inputs_new, unknown_new = latent_reconstruct(fork_cli, data, ckpt, "The Zebra sees Anna.")
    assert inputs_new == ["input mean-0: the zebra sees anna ."]
    assert unknown_new == ["input mean-0: 1 word(s) not in the dictionary, read as <unk>: 'zebra'"]



def test_interactive_applies_the_stored_preparation(cased_run, fork_cli):
    """fairseq-interactive gets the same preparation (the task's hook): a cased raw line reads
    as the prepared line; --no-stored-preprocessing passes typed lines through unchanged."""
    data, ckpt, raw, prepared = cased_run
    i = next(k for k, s in enumerate(raw) if any(c.isupper() for c in s[1:]) and ("," in s or "." in s))
    args = [data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", ckpt, "--cpu", "--beam", "1"]
    on = fork_cli.run("fairseq-interactive", *args, input=raw[i] + "\n")
    off = fork_cli.run("fairseq-interactive", *args, "--no-stored-preprocessing", input=raw[i] + "\n")
    assert on.returncode == 0 and off.returncode == 0, (on.output + off.output)[-3000:]
    src = lambda out: [line.split("\t", 1)[1] for line in out.splitlines() if line.startswith("S-0\t")]  # noqa: E731
    assert src(on.output) == [prepared[i]]
    assert src(off.output) and src(off.output) != [prepared[i]] and "<unk>" in src(off.output)[0]
