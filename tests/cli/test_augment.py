"""davam-augment (davam_plugin/cli/augment.py) end to end on tiny data: subsets, DAVAM + prior,
samples from scratch, one LM per cell on one dictionary, test perplexities, resume, bad inputs."""

import json
import math
from collections import Counter

import pytest

from davam_plugin.cli import augment

from davam_plugin.cli.demo_corpus import generate_corpus

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = [
    "--sizes", "20,40", "--ratios", "0.5,1", "--lm-valid-size", "20", "--cpu", "--seed", "3",
    "--davam-args", "--arch davam_tiny --max-update 3 --batch-size 8",
    "--prior-args", "--arch davam_prior_tiny --max-update 3 --batch-size 8",
    "--sample-args", "--prior-max-len 12 --max-len-a 0 --max-len-b 12 --batch-size 50",
    "--lm-args", "--decoder-embed-dim 16 --decoder-hidden-size 16 --decoder-out-embed-dim 16 --max-update 3 --batch-size 8",
]  # fmt: skip


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """A tiny corpus: 90 source sentences (20 validation + a pool of 70), 30 test sentences."""
    corpus = generate_corpus(seed=11, n_train=90, n_valid=1, n_test=30)
    root = tmp_path_factory.mktemp("augment-raw")
    (root / "source.txt").write_text("\n".join(corpus["train"]) + "\n")
    (root / "test.txt").write_text("\n".join(corpus["test"]) + "\n")
    return root


def lines(path):
    return path.read_text().split("\n")[:-1]


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.suffix != ".png" and p.suffix != ".json"}


@pytest.fixture(scope="module")
def pipeline_run(raw, tmp_path_factory):
    work = tmp_path_factory.mktemp("augment")
    argv = ["--source", str(raw / "source.txt"), "--test", str(raw / "test.txt"), "--work-dir", str(work), *TINY]
    assert augment.main(argv) == 0
    return work, argv, json.loads((work / "augment.json").read_text())


def test_every_cell_has_a_test_perplexity_beside_its_baseline(pipeline_run):
    work, _, doc = pipeline_run
    assert (work / "augment.png").read_bytes()[:8] == PNG_MAGIC
    assert doc["sizes"] == [20, 40] and doc["ratios"] == [0.5, 1]
    test_tokens = doc["conventions"]["test_tokens"]
    for n in (20, 40):
        base = doc["baseline"][str(n)]
        assert base["train_sentences"] == n
        for cell in [base, *doc["cells"][str(n)].values()]:
            assert math.isfinite(cell["ppl"]) and cell["ppl"] > 1
            # the conventions: fairseq's base-2 loss per token (words + EOS) in nats, PPL = 2^loss
            assert math.isclose(cell["nll_per_token"], cell["loss_base2"] * math.log(2))
            assert math.isclose(cell["ppl"], 2 ** cell["loss_base2"])
            assert math.isclose(cell["nll_per_sentence"], cell["nll_per_token"] * test_tokens / 30)
            assert cell["lm_updates"] == 3
        for ratio, m in (("0.5", n // 2), ("1", n)):
            cell = doc["cells"][str(n)][ratio]
            assert cell["samples"] == m and cell["train_sentences"] == n + m
            assert math.isclose(cell["ppl_change"], cell["ppl"] / base["ppl"] - 1)
        assert set(doc["seconds"][str(n)]) == {"preprocess", "davam", "prior", "sample", "lms"}


def test_data_splits_samples_and_one_dictionary(pipeline_run, raw):
    work, _, doc = pipeline_run
    source, test = lines(raw / "source.txt"), lines(raw / "test.txt")
    split = doc["split"]
    assert (split["source_sentences"], split["lm_valid_sentences"], split["pool_sentences"], split["test_sentences"]) == (
        90, 20, 70, 30,
    )  # fmt: skip
    valid, pool = lines(work / "raw" / "valid.txt"), lines(work / "raw" / "pool.txt")
    assert lines(work / "raw" / "test.txt") == test, "the test set is held out unchanged"
    assert len(pool) == 40 and Counter(valid + pool) <= Counter(source), "drawn from --source without replacement"
    assert lines(work / "size_20" / "train.txt") == pool[:20] and lines(work / "size_40" / "train.txt") == pool[:40]
    for n in (20, 40):
        samples = lines(work / f"size_{n}" / "samples.txt")
        assert len(samples) == n, "drawn once, for the largest ratio (1x)"
        assert lines(work / f"size_{n}" / "ratio_0.5" / "train.txt") == pool[:n] + samples[: n // 2]
        assert lines(work / f"size_{n}" / "ratio_1" / "train.txt") == pool[:n] + samples
        generated = (work / f"size_{n}" / "generate.log").read_text()
        assert sum(1 for x in generated.splitlines() if x.startswith("H-")) == n
    dictionary = (work / "dict" / "dict.txt").read_text()
    data_dirs = list(work.rglob("data-bin"))
    assert len(data_dirs) == 6  # 2 sizes x (DAVAM / baseline data + 2 ratios)
    for d in data_dirs:
        assert (d / "dict.txt").read_text() == dictionary
        assert (d / "test.bin").read_bytes() == (work / "eval-bin" / "test.bin").read_bytes()


def test_rerun_skips_every_finished_stage(pipeline_run, capsys):
    work, argv, doc = pipeline_run
    before = _mtimes(work)
    capsys.readouterr()
    assert augment.main(argv) == 0
    out = capsys.readouterr().out
    assert "fairseq-train" not in out and "sampling" not in out
    assert _mtimes(work) == before
    again = json.loads((work / "augment.json").read_text())
    assert again["cells"] == doc["cells"] and again["baseline"] == doc["baseline"]
    assert "| 20 | " in out and "| 40 | " in out and "+0.5x samples" in out


@pytest.mark.parametrize(
    "change, message",
    [
        (("--source", "{raw}/nosuch.txt"), "--source {raw}/nosuch.txt: no such file"),
        (("--test", "{raw}/nosuch.txt"), "--test {raw}/nosuch.txt: no such file"),
        (("--sizes", "20,abc"), "--sizes '20,abc': 'abc' is not an integer"),
        (("--ratios", "0.5,0"), "--ratios '0.5,0': '0' must be > 0"),
        (("--sizes", "20,80"), "--sizes 20,80: 80 sentences asked for, but --source has 90 of which 20"),
        (("--lm-args", "--save-dir x"), "--lm-args: do not pass --save-dir, the pipeline sets it"),
        (("--davam-size", "30"), "--davam-size 30: must be at least the largest of --sizes (40)"),
        (("--davam-size", "80"), "--davam-size 80: 80 sentences asked for, but --source has 90 of which 20"),
    ],
)
def test_bad_inputs_give_one_error_line(raw, tmp_path, capsys, change, message):
    argv = ["--source", str(raw / "source.txt"), "--test", str(raw / "test.txt"), "--work-dir", str(tmp_path / "w"), *TINY]
    flag, value = change
    if flag in argv:
        argv[argv.index(flag) + 1] = value.format(raw=raw)
    else:
        argv += [flag, value]
    assert augment.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("davam-augment: error: " + message.format(raw=raw)), err
    assert not list((tmp_path / "w").rglob("*.done"))


def test_one_shared_davam_augments_every_size(pipeline_run, raw, tmp_path, capsys):
    """--davam-size 60: one DAVAM and prior on the first 60 pool sentences (which hold both LM
    subsets); every size's cells take the first round(r * N) of its samples; the LMs still see
    only their N real sentences; the dictionary comes from the DAVAM's corpus."""
    work = tmp_path / "shared"
    argv = ["--source", str(raw / "source.txt"), "--test", str(raw / "test.txt"), "--work-dir", str(work), *TINY,
            "--davam-size", "60"]  # fmt: skip
    assert augment.main(argv) == 0
    doc = json.loads((work / "augment.json").read_text())
    pool = lines(work / "raw" / "pool.txt")
    assert len(pool) == 60 and pool[:40] == lines(pipeline_run[0] / "raw" / "pool.txt"), "the same shuffle, more of it"
    shared = work / "davam_60"
    assert lines(shared / "train.txt") == pool
    samples = lines(shared / "samples.txt")
    assert len(samples) == 40, "drawn once, for the largest size and ratio (40 x 1)"
    for n in (20, 40):
        assert not (work / f"size_{n}" / "davam").exists() and not (work / f"size_{n}" / "samples.txt").exists()
        assert lines(work / f"size_{n}" / "train.txt") == pool[:n]
        assert lines(work / f"size_{n}" / "ratio_0.5" / "train.txt") == pool[:n] + samples[: n // 2]
        assert lines(work / f"size_{n}" / "ratio_1" / "train.txt") == pool[:n] + samples[:n]
        assert doc["cells"][str(n)]["1"]["train_sentences"] == 2 * n
        assert set(doc["seconds"][str(n)]) == {"preprocess", "lms"}
    assert set(doc["seconds"]["davam_60"]) == {"preprocess", "davam", "prior", "sample"}
    assert doc["davam"]["sentences"] == 60 and "60 pool sentences" in doc["dictionary"]["built_from"]
    words = {w for line in pool for w in line.split()}
    dictionary = {line.split()[0] for line in lines(work / "dict" / "dict.txt")}
    padding = {w for w in dictionary if w.startswith("madeupword")}  # fairseq pads to a multiple of 8
    assert words == dictionary - padding, "the dictionary is the DAVAM corpus' words"
    # a work directory made with one --davam-size is not reused with another (or without it)
    capsys.readouterr()
    for other, setting in ((["--davam-size", "50"], "--davam-size 50"), ([], "a DAVAM per size (no --davam-size)")):
        assert augment.main(argv[:-2] + other) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"davam-augment: error: --work-dir {work}: made with --davam-size 60, not {setting}; "
                       "use another --work-dir"], err  # fmt: skip
