"""Shared fixtures and the ``cli`` marker.

Layout: ``tests/unit/`` mirrors the package (``modules/``, ``models/``, ``criterions/``, the
import layers, option checks, old-checkpoint compatibility) and runs in-process;
``tests/cli/`` holds the end-to-end runs through the command lines, each marked ``cli``
(``pytest -m "not cli"`` is the quick loop).

Fixtures: a tiny generated corpus, its fairseq binaries and a trained davam_tiny.

Everything is built under pytest's tmp dirs with the project's own commands (``davam-*``,
installed by ``pip install -e .``) and the real fairseq command-line tools (no dependency on
../shared).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLUGIN = str(REPO / "davam_plugin")

# keep each fairseq subprocess to one thread: the suite runs on 2-core machines
SUBPROCESS_ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def run_cli(tool, *args, input=None, timeout=600, check=True, env=None):
    """Run a console script of this venv (``fairseq-*``, ``davam-*``) or ``python``; fail with its log tail."""
    exe = sys.executable if tool == "python" else str(BIN / tool)
    proc = subprocess.run(
        [exe, *map(str, args)],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or SUBPROCESS_ENV,
        cwd=REPO,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"{tool} {' '.join(map(str, args))} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return proc


TRAIN_TINY = [
    "--user-dir", PLUGIN, "--task", "sentence_vae", "--arch", "davam_tiny", "--criterion", "davam",
    "--optimizer", "sgd", "--lr", "1.0", "--clip-norm", "5", "--batch-size", "32", "--cpu",
    "--log-format", "json", "--log-interval", "1", "--no-epoch-checkpoints",
    "--beta-warmup-updates", "10", "--num-workers", "0",
]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory):
    """Raw text: 600 train, 40 valid, 203 test sentences (with one empty line in test)."""
    from davam_plugin.cli.demo_corpus import generate_corpus

    corpus = generate_corpus(seed=7, n_train=600, n_valid=40, n_test=202)
    root = tmp_path_factory.mktemp("raw")
    corpus["test"] = corpus["test"][:100] + [""] + corpus["test"][100:]
    for split, lines in corpus.items():
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_data(tiny_raw, tmp_path_factory):
    dest = tmp_path_factory.mktemp("data-bin")
    run_cli(
        "fairseq-preprocess", "--only-source", "--trainpref", tiny_raw / "train.txt",
        "--validpref", tiny_raw / "valid.txt", "--testpref", tiny_raw / "test.txt",
        "--destdir", dest, "--workers", "1",
    )  # fmt: skip
    return dest


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_data, tmp_path_factory):
    save = tmp_path_factory.mktemp("ckpt")
    run_cli("fairseq-train", tiny_data, *TRAIN_TINY, "--max-update", "20", "--save-dir", save)
    return save / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def fork_cli(tmp_path_factory):
    """fairseq's tools forked from one warm interpreter (tests/forked_cli.py): no import cost per run."""
    from forked_cli import ForkServer

    server = ForkServer(tmp_path_factory.mktemp("forked-cli"), SUBPROCESS_ENV)
    yield server
    server.close()


CLI_DIR = Path(__file__).resolve().parent / "cli"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if CLI_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cli)
