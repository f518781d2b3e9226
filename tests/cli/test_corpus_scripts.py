"""Tests for davam-demo-corpus and davam-prepare-corpus (davam_plugin/cli/demo_corpus.py,
prepare_corpus.py) and the corpus preparation stored with the data
(davam_plugin/data/preprocessing.py).

The commands are run as subprocesses (the installed console scripts); the demo corpus
generator is also imported. Nothing here needs data outside of pytest's ``tmp_path``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from davam_plugin.cli import demo_corpus as gen
from davam_plugin.data.preprocessing import load_preprocessing, raw_text_encoder

BIN = Path(sys.executable).parent
MAKE_DEMO = BIN / "davam-demo-corpus"
PREPARE = BIN / "davam-prepare-corpus"

#: A raw line that needs Moses tokenization and lower-casing.
RAW_MIXED = 'Hello, World! The DOG said: "I can\'t see the ball."'


def run_script(command: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(command), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def default_corpus():
    return gen.generate_corpus(1, 4000, 300, 203)


# ---------------------------------------------------------------------------
# davam-demo-corpus
# ---------------------------------------------------------------------------


def test_generator_is_deterministic():
    a = gen.generate_corpus(1, 300, 40, 40)
    b = gen.generate_corpus(1, 300, 40, 40)
    c = gen.generate_corpus(2, 300, 40, 40)
    assert a == b
    assert a["train"] != c["train"]
    assert a["test"] != c["test"]


def test_split_sizes_and_disjointness(default_corpus):
    corpus = default_corpus
    assert {k: len(v) for k, v in corpus.items()} == {
        "train": 4000, "valid": 300, "test": 203}
    train = set(corpus["train"])
    assert not train & set(corpus["valid"])
    assert not train & set(corpus["test"])
    assert not set(corpus["valid"]) & set(corpus["test"])


def test_vocabulary_and_lengths(default_corpus):
    sents = [s for split in default_corpus.values() for s in split]
    vocab_size, mean_len = gen.corpus_stats(default_corpus)
    assert 150 <= vocab_size <= 300
    lengths = [len(s.split()) for s in sents]
    assert min(lengths) >= 4 and max(lengths) <= 35
    assert 6 <= mean_len <= 15
    assert sum(n <= 25 for n in lengths) / len(lengths) > 0.95
    # Lower-cased, whitespace-tokenized, ends with separate punctuation.
    for s in sents:
        assert s == s.lower()
        assert s.split()[-1] in {".", "?"}
        assert s == " ".join(s.split())
    # The grammar produces questions and agreement variants.
    assert any(s.endswith(" ?") for s in sents)
    words = set(" ".join(sents).split())
    assert {"sees", "see", "dog", "dogs", "does", "do", "who"} <= words


class _AlwaysContains(set):
    """A set that claims to contain everything."""

    def __contains__(self, item):
        return True


def test_heldout_impossible_errors():
    with pytest.raises(RuntimeError):
        # Far more unseen sentences than the grammar can supply quickly.
        gen._sample_heldout(gen.SentenceGenerator(gen.random.Random(0)), 5,
                            _AlwaysContains(), "test")


def test_make_demo_corpus_cli(tmp_path):
    out = tmp_path / "demo"
    res = run_script(MAKE_DEMO, "--out-dir", out, "--seed", 3,
                     "--train", 50, "--valid", 7, "--test", 5)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 1, res.stdout
    assert "vocab=" in res.stdout
    expected = gen.generate_corpus(3, 50, 7, 5)
    for split, n in (("train", 50), ("valid", 7), ("test", 5)):
        lines = (out / f"{split}.txt").read_text(encoding="utf-8").splitlines()
        assert lines == expected[split]
        assert len(lines) == n


# ---------------------------------------------------------------------------
# davam-prepare-corpus
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_corpus(tmp_path_factory):
    """A tiny raw corpus: 200/30/30 lines + one empty and one mixed line."""
    raw = tmp_path_factory.mktemp("raw")
    corpus = gen.generate_corpus(5, 200, 30, 30)
    train = corpus["train"][:100] + [""] + [RAW_MIXED] + corpus["train"][100:]
    (raw / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    for split in ("valid", "test"):
        (raw / f"{split}.txt").write_text("\n".join(corpus[split]) + "\n",
                                          encoding="utf-8")
    return raw


def _load_dict(destdir: Path) -> list[str]:
    lines = (destdir / "dict.txt").read_text(encoding="utf-8").splitlines()
    return [line.rsplit(" ", 1)[0] for line in lines if line.strip()]


def test_prepare_corpus_default(raw_corpus, tmp_path):
    destdir = tmp_path / "data-bin" / "demo"
    res = run_script(PREPARE, "--trainpref", raw_corpus / "train.txt",
                     "--validpref", raw_corpus / "valid.txt",
                     "--testpref", raw_corpus / "test.txt",
                     "--destdir", destdir, "--workers", 2, "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "dict.txt" in res.stdout

    for split in ("train", "valid", "test"):
        assert (destdir / f"{split}.bin").is_file()
        assert (destdir / f"{split}.idx").is_file()
    words = _load_dict(destdir)
    assert words, "dict.txt is empty"
    assert all(w == w.lower() for w in words)
    # Moses split the punctuation off and lower-cased the mixed line.
    assert {"hello", ",", "world", "!", '"', "can", "'t"} <= set(words)

    # Intermediate text goes next to destdir by default; lines are preserved.
    tok = (tmp_path / "data-bin" / "demo.tok" / "train.txt").read_text(
        encoding="utf-8").split("\n")
    assert len(tok) == 202 + 1  # trailing newline
    assert tok[100] == ""
    assert tok[101] == ('hello , world ! the dog said : " i can \'t see '
                        'the ball . "')

    # The binary dataset keeps the empty line (as a lone end-of-sentence).
    indexed = pytest.importorskip("fairseq.data.indexed_dataset")
    ds = indexed.MMapIndexedDataset(str(destdir / "train"))
    assert len(ds) == 202
    assert len(ds[100]) == 1

    # The choices are stored with the data, and applying them to the raw lines gives
    # exactly the lines that were binarized.
    stored = json.loads((destdir / "preprocessing.json").read_text())
    assert stored == {"format": 1, "tokenize": True, "lang": "en", "lowercase": True,
                      "sentencepiece": None, "nwordssrc": None, "thresholdsrc": None,
                      "max_lines": None}
    prep = load_preprocessing(str(destdir))
    raw = (raw_corpus / "train.txt").read_text(encoding="utf-8").split("\n")
    assert [prep(line) for line in raw] == tok
    assert prep("  The DOG,   said ANNA! ") == "the dog , said anna !"
    # fairseq-interactive's hook: the same function (a colon-separated DATA: its first)
    encoder = raw_text_encoder(f"{destdir}:{tmp_path}")
    assert encoder(RAW_MIXED) == tok[101]

    # Running again without --overwrite is a user error.
    res = run_script(PREPARE, "--trainpref", raw_corpus / "train.txt",
                     "--destdir", destdir)
    assert res.returncode == 2
    assert "--overwrite" in res.stderr.strip().splitlines()[-1]


def test_prepare_corpus_sentencepiece(raw_corpus, tmp_path):
    destdir = tmp_path / "spm-bin"
    workdir = tmp_path / "work"
    res = run_script(PREPARE, "--trainpref", raw_corpus / "train.txt",
                     "--testpref", raw_corpus / "test.txt",
                     "--destdir", destdir, "--workdir", workdir,
                     "--sentencepiece-vocab-size", 100, "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (destdir / "spm.model").is_file()
    assert (destdir / "spm.vocab").is_file()
    for split in ("train", "test"):
        assert (destdir / f"{split}.bin").is_file()
        assert (destdir / f"{split}.idx").is_file()
    assert not (destdir / "valid.bin").exists()
    pieces = (workdir / "train.spm.txt").read_text(encoding="utf-8")
    assert "\u2581" in pieces
    assert len(pieces.split("\n")) == 202 + 1
    assert len(_load_dict(destdir)) <= 100 + 8  # pieces + fairseq padding
    assert "warning" not in res.stderr
    stored = json.loads((destdir / "preprocessing.json").read_text())
    assert stored["sentencepiece"] == {"model": "spm.model", "model_type": "unigram",
                                       "vocab_size_requested": 100, "pieces": 100}
    # raw line -> tokenize, lower-case, sentencepiece: exactly the binarized pieces
    prep = load_preprocessing(str(destdir))
    raw = (raw_corpus / "train.txt").read_text(encoding="utf-8").split("\n")
    assert [prep(line) for line in raw] == pieces.split("\n")


def test_prepare_corpus_sentencepiece_fewer_pieces_than_asked(raw_corpus, tmp_path):
    destdir = tmp_path / "spm-big"
    res = run_script(PREPARE, "--trainpref", raw_corpus / "train.txt",
                     "--destdir", destdir, "--sentencepiece-vocab-size", 3000,
                     "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    stored = json.loads((destdir / "preprocessing.json").read_text())
    made = stored["sentencepiece"]["pieces"]
    assert 100 < made < 3000
    warnings = [line for line in res.stderr.splitlines() if "warning" in line]
    assert warnings == [f"davam-prepare-corpus: warning: sentencepiece made {made} pieces, "
                        "fewer than the 3000 of --sentencepiece-vocab-size (the training "
                        "text has too few distinct pieces)"]


def test_preprocessing_file_problems(tmp_path):
    assert load_preprocessing(str(tmp_path)) is None  # plain fairseq-preprocess data
    assert raw_text_encoder(str(tmp_path))("The  DOG") == "The  DOG"  # used as given
    (tmp_path / "preprocessing.json").write_text("{not json")
    with pytest.raises(SystemExit) as e:
        raw_text_encoder(str(tmp_path))
    assert str(e.value).startswith(f"error: {tmp_path / 'preprocessing.json'} cannot be read")
    (tmp_path / "preprocessing.json").write_text(json.dumps(
        {"format": 1, "tokenize": False, "lowercase": True,
         "sentencepiece": {"model": "spm.model"}}))
    with pytest.raises(SystemExit) as e:
        raw_text_encoder(str(tmp_path))
    assert str(e.value) == (f"error: {tmp_path / 'preprocessing.json'}: its sentencepiece "
                            f"model {tmp_path / 'spm.model'} is missing")


def test_prepare_corpus_missing_file(tmp_path):
    missing = tmp_path / "nope" / "train.txt"
    res = run_script(PREPARE, "--trainpref", missing,
                     "--destdir", tmp_path / "bin")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last == (f"davam-prepare-corpus: error: --trainpref: "
                    f"file not found: {missing}")
    assert not (tmp_path / "bin").exists()
