"""Shared fixtures and the ``cli`` marker.

Layout: ``tests/unit/`` mirrors the package (``modules/``, ``models/``, ``criterions/``, the
import layers, option checks, old-checkpoint compatibility) and runs in-process;
``tests/cli/`` holds the end-to-end runs through the command lines, each marked ``cli``
(``pytest -m "not cli"`` is the quick loop).

Fixtures: a tiny generated corpus, its fairseq binaries and a trained davam_tiny.

Everything is built under pytest's tmp dirs with the project's own commands (``davam-*``,
installed by ``pip install -e .``) and the real fairseq command-line tools (no dependency on
../shared). ``run_cli`` forks each tool run from a warm interpreter (tests/forked_cli.py): the
same console-script entry point in a process of its own, without 7-12 s of imports per run
(the suite went from 13.4 to 6.2 minutes). The installed scripts themselves run as real
processes in test_commands.py, the recipe tests and wherever a test passes ``env=``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLUGIN = str(REPO / "davam_plugin")

# One OpenMP thread in this process too, set before anything imports torch, as `make test` sets
# it: davam-sweep's and davam-augment's tests call the command's main() here, which forks each
# fairseq run from this process (davam_plugin/cli/fairseq_runner.py), and a child forked from a
# process whose OpenMP thread team has run (any earlier in-process test on 2 threads) hangs in
# its first parallel region (GNU OpenMP is not fork-safe). A plain `pytest tests/...` hung so.
os.environ["OMP_NUM_THREADS"] = "1"

# keep each fairseq subprocess to one thread: the suite runs on 2-core machines
SUBPROCESS_ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")


_SERVER = None


def fork_server():
    """This test process's fork server (tests/forked_cli.py), started on first use and closed
    at the end of the session: each tool run is forked from one interpreter that has
    imported fairseq and the plugin once, instead of paying those 7-12 s of imports per run."""
    global _SERVER
    if _SERVER is None:
        import tempfile

        from forked_cli import ForkServer

        _SERVER = ForkServer(tempfile.mkdtemp(prefix="davam-forked-cli-"), SUBPROCESS_ENV)
    return _SERVER


def pytest_sessionfinish(session, exitstatus):
    if _SERVER is not None:
        import shutil

        _SERVER.close()
        shutil.rmtree(_SERVER.workdir, ignore_errors=True)


def run_cli(tool, *args, input=None, timeout=600, check=True, env=None):
    """Run a console script of this venv (``fairseq-*``, ``davam-*``) or ``python SCRIPT``; fail
    with its log tail. Returns a CompletedProcess (stdout and stderr apart). Runs with the
    default environment are forked from the fork server (the same entry point in a fresh
    process, see tests/forked_cli.py); ``env=...`` and ``python -c``/``-m`` run as real
    subprocesses."""
    args = [str(a) for a in args]
    forkable = tool.startswith(("fairseq-", "davam-")) or (tool == "python" and args and not args[0].startswith("-"))
    if env is None and forkable:
        rc, out, err = fork_server().run_captured(tool, *args, input=input, timeout=timeout)
        proc = subprocess.CompletedProcess([tool, *args], rc, out, err)
    else:
        exe = sys.executable if tool == "python" else str(BIN / tool)
        proc = subprocess.run(
            [exe, *args], input=input, capture_output=True, text=True, timeout=timeout, env=env or SUBPROCESS_ENV,
            cwd=REPO,
        )  # fmt: skip
    if check and proc.returncode != 0:
        pytest.fail(f"{tool} {' '.join(args)} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}")
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
def fork_cli():
    """fairseq's tools forked from one warm interpreter (tests/forked_cli.py): no import cost per run."""
    return fork_server()


CLI_DIR = Path(__file__).resolve().parent / "cli"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if CLI_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cli)
