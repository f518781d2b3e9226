"""Two-process CPU data-parallel training: the EMA codebooks of both workers stay identical.

fairseq only synchronises gradients, and only rank 0 writes checkpoints, so each worker runs
``fairseq-train`` through a small driver that wraps ``Trainer.train_step`` (observing, not
changing it) to dump the worker's codebook, EMA cluster sizes, token count and dummy-batch
flag after every update. The driver then runs fairseq's own ``cli_main``.
"""

import socket
import subprocess
import sys
import textwrap

import pytest
import torch

import davam_plugin  # noqa: F401  (allow-lists fairseq's checkpoint types for torch.load)

from conftest import REPO, SUBPROCESS_ENV, TRAIN_TINY

DRIVER = textwrap.dedent(
    '''
    """fairseq-train, recording the quantizer state after every update: driver.py DUMP ARGS..."""
    import sys

    import torch
    from fairseq.trainer import Trainer

    dump = sys.argv.pop(1)
    history = {"initial_codebook": None, "initial_cluster_size": None, "steps": []}
    train_step = Trainer.train_step


    def recording_train_step(self, samples, *args, **kwargs):
        quantizer = self.get_model().encoder.bottleneck.quantizer
        if history["initial_codebook"] is None:
            history["initial_codebook"] = quantizer.codebook.detach().clone()
            history["initial_cluster_size"] = quantizer.cluster_size.detach().clone()
        real = [s for s in samples if s is not None and len(s) > 0]
        out = train_step(self, samples, *args, **kwargs)
        history["steps"].append(
            {
                "num_updates": self.get_num_updates(),
                "dummy": not real,
                "ntokens": sum(int(s["ntokens"]) for s in real),
                "codebook": quantizer.codebook.detach().clone(),
                "cluster_size": quantizer.cluster_size.detach().clone(),
            }
        )
        torch.save(history, dump)
        return out


    Trainer.train_step = recording_train_step

    from fairseq_cli.train import cli_main

    sys.argv[0] = "fairseq-train"
    cli_main()
    '''
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_two_workers(data, tmp_path, *flags, timeout=300, attempts=3):
    """Run two ranks; retry with a new port if the one picked was taken meanwhile."""
    for _attempt in range(attempts):
        codes, tails = _run_two_workers(data, tmp_path, flags, timeout)
        if codes == [0, 0] or "address already in use" not in tails.lower():
            break
    if codes != [0, 0]:
        pytest.fail(f"distributed fairseq-train exit codes {codes}:\n{tails}")
    histories = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    return histories, tails


def _run_two_workers(data, tmp_path, flags, timeout):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    port = free_port()
    env = dict(SUBPROCESS_ENV, OMP_NUM_THREADS="1")
    procs, logs = [], []
    for rank in (0, 1):
        log = open(tmp_path / f"rank{rank}.log", "w")
        logs.append(log)
        args = [
            sys.executable, driver, tmp_path / f"rank{rank}.pt", data, *TRAIN_TINY, *flags,
            "--save-dir", tmp_path / f"ckpt{rank}", "--seed", "1",
            "--distributed-world-size", "2", "--distributed-rank", str(rank),
            "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-no-spawn",
            "--distributed-backend", "gloo", "--ddp-backend", "legacy_ddp",
        ]  # fmt: skip
        procs.append(subprocess.Popen(list(map(str, args)), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO))
    try:
        codes = [p.wait(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    tails = "\n".join(f"--- rank {r}:\n" + (tmp_path / f"rank{r}.log").read_text()[-2500:] for r in (0, 1))
    return codes, tails


def check_codebooks_in_sync(histories, tmp_path, n_steps):
    h0, h1 = histories
    assert len(h0["steps"]) == len(h1["steps"]) == n_steps
    assert torch.equal(h0["initial_codebook"], h1["initial_codebook"])
    decay = torch.load(tmp_path / "ckpt0" / "checkpoint_last.pt", weights_only=True)["cfg"]["model"]["codebook_decay"]
    assert torch.equal(h0["initial_cluster_size"], h1["initial_cluster_size"])
    prev = h0["initial_cluster_size"]
    for k, (s0, s1) in enumerate(zip(h0["steps"], h1["steps"], strict=True), start=1):
        assert s0["num_updates"] == s1["num_updates"] == k
        assert torch.equal(s0["codebook"], s1["codebook"]), f"codebooks differ after update {k}"
        assert torch.equal(s0["cluster_size"], s1["cluster_size"]), f"cluster sizes differ after update {k}"
        # the EMA update of step k saw the tokens of both workers' real batches (summed),
        # and none of a dummy batch: n_k = decay * n_{k-1} + (1 - decay) * counts_k
        counted = float(s0["cluster_size"].double().sum() - decay * prev.double().sum()) / (1 - decay)
        assert counted == pytest.approx(s0["ntokens"] + s1["ntokens"], abs=0.5), f"update {k}"
        prev = s0["cluster_size"]
    final = h0["steps"][-1]["codebook"]
    assert not torch.equal(final, h0["initial_codebook"]), "the codebook never changed: no training happened"
    saved = torch.load(tmp_path / "ckpt0" / "checkpoint_last.pt", weights_only=True)
    assert torch.equal(saved["model"]["encoder.bottleneck.quantizer.codebook"], final)


def test_two_workers_keep_identical_codebooks(tiny_data, tmp_path):
    # 600 sentences in batches of 64: 10 batches, 5 per worker; no worker runs out of data
    histories, tails = train_two_workers(tiny_data, tmp_path, "--batch-size", "64", "--max-update", "4")
    assert not any(s["dummy"] for h in histories for s in h["steps"])
    assert all(s["ntokens"] > 0 for h in histories for s in h["steps"])
    check_codebooks_in_sync(histories, tmp_path, 4)


def test_dummy_batch_keeps_codebooks_identical(tiny_data, tmp_path):
    # 600 sentences in batches of 32: 19 batches; rank 1 gets 9 and a dummy batch for the 10th update
    histories, tails = train_two_workers(tiny_data, tmp_path, "--batch-size", "32", "--max-epoch", "1")
    h0, h1 = histories
    assert [s["dummy"] for s in h0["steps"]] == [False] * 10, tails
    assert [s["dummy"] for s in h1["steps"]] == [False] * 9 + [True], tails
    assert h1["steps"][-1]["ntokens"] == 0
    check_codebooks_in_sync(histories, tmp_path, 10)
