"""A killed fairseq-train never loses its last checkpoint (davam_plugin/atomic_checkpoint.py).

Unit checks of the atomic writes and of the detection of cut-short files, then the real
thing: ``fairseq-train`` on the tiny corpus, saving every 2 updates, is SIGKILLed while it
writes ``checkpoint_last.pt`` (at a random moment of its second save), again and again; each
time the same command is rerun and resumes from the update the kill left in
``checkpoint_last.pt``, and the last run trains to the end. With fairseq's plain copies
(plugin patch removed) about 8 of 10 such kills leave ``checkpoint_last.pt`` empty or cut
short. The runs are processes forked from a warm interpreter (tests/forked_cli.py). The
killed runs see a slow disk (``os.fsync`` takes 30 ms in them, :data:`SLOW_DISK_TRAIN`): on a
fast one (tmpfs) the plugin's temporary file lives well under a millisecond, and all four
kills could land after it, leaving the test without a kill inside a write.
"""

import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from fairseq import checkpoint_utils

import davam_plugin  # noqa: F401  (installs the patch; allow-lists fairseq's checkpoint types)
from conftest import TRAIN_TINY
from davam_plugin import atomic_checkpoint

SAVE_EVERY, N_KILLS = 2, 4
# A run is killed in its second save, so each kill advances checkpoint_last.pt by at most two
# saves: the kills never reach the end, and the last rerun always has updates left to train.
MAX_UPDATE = 2 * SAVE_EVERY * N_KILLS + SAVE_EVERY


def num_updates(path):
    return torch.load(path, weights_only=True)["optimizer_history"][-1]["num_updates"]


def train_inner_updates(output):
    """num_updates of the ``train_inner`` JSON log lines."""
    lines = [line for line in output.splitlines() if "train_inner" in line and '"num_updates"' in line]
    return [int(line.split('"num_updates": "')[1].split('"')[0]) for line in lines]


# ----------------------------------------------------------------------------- units
def test_plugin_import_installs_the_patch():
    assert checkpoint_utils.torch_persistent_save is atomic_checkpoint.torch_persistent_save
    assert checkpoint_utils.PathManager is atomic_checkpoint.AtomicCopyPathManager
    assert checkpoint_utils.load_checkpoint is atomic_checkpoint.load_checkpoint
    assert checkpoint_utils.load_checkpoint_to_cpu is atomic_checkpoint.load_checkpoint_to_cpu


@pytest.mark.parametrize("how", ["copy", "save"])
def test_writes_go_through_a_synced_temporary_file(tmp_path, monkeypatch, how):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    opened = lambda fd: os.readlink(f"/proc/self/fd/{fd}")  # noqa: E731
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(("fsync", opened(fd))) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append(("replace", str(a), str(b))) or real_replace(a, b))
    dst = tmp_path / "checkpoint_last.pt"
    dst.write_bytes(b"old")
    state = {"w": torch.arange(10)}
    if how == "copy":
        src = tmp_path / "checkpoint_1_2.pt"
        torch.save(state, src)
        assert checkpoint_utils.PathManager.copy(str(src), str(dst), overwrite=True) is True
    else:
        checkpoint_utils.torch_persistent_save(state, str(dst))
    tmp = f"{dst}.tmp"
    assert calls[0] == ("fsync", tmp) and calls[1] == ("replace", tmp, str(dst)), calls
    assert torch.equal(torch.load(dst)["w"], state["w"])
    assert not os.path.exists(tmp)


def test_a_failing_write_keeps_the_old_file(tmp_path):
    dst = tmp_path / "checkpoint_last.pt"
    dst.write_bytes(b"old contents")

    def dies_halfway(f):
        f.write(b"new con")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_checkpoint.atomic_write(str(dst), dies_halfway)
    assert dst.read_bytes() == b"old contents"
    assert not (tmp_path / "checkpoint_last.pt.tmp").exists()


def test_every_cut_short_copy_is_detected(tiny_checkpoint, tmp_path):
    data = Path(tiny_checkpoint).read_bytes()
    assert atomic_checkpoint.unreadable_reason(str(tiny_checkpoint)) is None
    cut = tmp_path / "cut.pt"
    for n in (0, 1, 4, 100, len(data) // 2, len(data) - 22, len(data) - 1):
        cut.write_bytes(data[:n])
        reason = atomic_checkpoint.unreadable_reason(str(cut))
        assert reason and ("empty" in reason or "truncated" in reason), (n, reason)
    cut.write_text("the cat sat on the mat\n")
    assert "not a PyTorch checkpoint" in atomic_checkpoint.unreadable_reason(str(cut))


def test_newest_readable_checkpoint_skips_cut_short_files(tiny_checkpoint, tmp_path):
    for i, name in enumerate(["checkpoint_1_2.pt", "checkpoint_1_4.pt", "checkpoint_best.pt", "checkpoint_last.pt"]):
        shutil.copy(tiny_checkpoint, tmp_path / name)
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    (tmp_path / "checkpoint_last.pt").write_bytes(b"")
    (tmp_path / "checkpoint_best.pt").write_bytes(Path(tiny_checkpoint).read_bytes()[:5000])
    (tmp_path / "checkpoint_1_6.pt.tmp").write_bytes(b"x")
    last = str(tmp_path / "checkpoint_last.pt")
    assert atomic_checkpoint.newest_readable_checkpoint(str(tmp_path), exclude=[last]) == str(tmp_path / "checkpoint_1_4.pt")
    assert atomic_checkpoint.newest_readable_checkpoint(str(tmp_path / "nosuch")) is None


# ----------------------------------------------------------------------------- kills
def write_signature(last: Path):
    """Changes whenever checkpoint_last.pt or its temporary file is being written."""
    sig = []
    for path in (last, last.with_name(last.name + ".tmp")):
        try:
            st = os.stat(path)
            sig.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            sig.append(None)
    return tuple(sig)


SLOW_DISK_TRAIN = """
import os, sys, time
import fairseq_cli.train

_fsync = os.fsync

def slow_fsync(fd):  # a disk that takes 30 ms to flush
    time.sleep(0.03)
    _fsync(fd)

os.fsync = slow_fsync
sys.argv = ["fairseq-train", *sys.argv[1:]]
fairseq_cli.train.cli_main()
"""


def kill_during_second_save(fork_cli, driver, args, last: Path, rng):
    """Start fairseq-train (through ``driver``: SLOW_DISK_TRAIN); SIGKILL it at a random moment
    (0-3 ms) after it starts writing checkpoint_last.pt in its second save. Returns (exit
    status, log)."""
    pid, log = fork_cli.start("python", driver, *args)
    deadline, armed, polls = time.monotonic() + 240, None, 0
    while time.monotonic() < deadline:
        if armed is None or polls % 40 == 0:
            text = log.read_text() if log.exists() else ""
            if "done training" in text or "Traceback" in text:
                break
            # armed once the first save has finished: the next change of checkpoint_last.pt (or
            # its .tmp) is then the second save. (Arming at the second "Saving checkpoint to"
            # line left only the few ms of writing the update's own checkpoint file before
            # checkpoint_last.pt is written: a poll that came later armed after the second save
            # and killed in the third, and four such kills could reach --max-update.)
            if armed is None and "Saved checkpoint" in text:
                armed = write_signature(last)
        elif write_signature(last) != armed:
            break
        polls += 1
        time.sleep(0.02 if armed is None else 0.0005)
    time.sleep(rng.uniform(0, 0.003))
    os.kill(pid, signal.SIGKILL)
    return fork_cli.wait(pid), log.read_text()


@pytest.fixture(scope="module")
def killed_and_finished(tiny_data, fork_cli, tmp_path_factory):
    """N_KILLS killed runs, each rerun of the same command resuming, then one to the end."""
    save = tmp_path_factory.mktemp("killed") / "ckpt"
    driver = save.parent / "slow_disk_train.py"
    driver.write_text(SLOW_DISK_TRAIN)
    last = save / "checkpoint_last.pt"
    args = [tiny_data, *TRAIN_TINY, "--max-update", MAX_UPDATE, "--save-interval-updates", SAVE_EVERY, "--save-dir", save]
    rng = random.Random(13)
    runs = []
    for _ in range(N_KILLS):
        resumed_from = num_updates(last) if last.exists() else 0
        rc, log = kill_during_second_save(fork_cli, driver, args, last, rng)
        runs.append({
            "rc": rc, "log": log, "from": resumed_from, "mid_write": last.with_name(last.name + ".tmp").exists(),
            "last_ok": last.exists() and atomic_checkpoint.unreadable_reason(str(last)) is None,
        })  # fmt: skip
    resumed_from = num_updates(last)
    final = fork_cli.run("fairseq-train", *args)
    runs.append({"rc": final.returncode, "log": final.output, "from": resumed_from})
    return save, runs


def test_every_kill_leaves_a_readable_checkpoint_last(killed_and_finished):
    _, runs = killed_and_finished
    for i, run in enumerate(runs[:-1]):
        assert run["rc"] == -signal.SIGKILL, (i, run["log"][-2000:])
        assert "Traceback" not in run["log"], run["log"][-3000:]
        assert run["last_ok"], f"kill {i} left checkpoint_last.pt unreadable"
    assert any(run["mid_write"] for run in runs[:-1]), "no kill landed while checkpoint_last.pt was written"


def test_each_rerun_resumes_where_the_kill_left_it(killed_and_finished):
    save, runs = killed_and_finished
    progress = [run["from"] for run in runs]
    assert progress == sorted(progress) and progress[-1] >= 2 * (N_KILLS - 1), progress
    for run in runs:
        if run["from"]:
            assert f"Loaded checkpoint {save / 'checkpoint_last.pt'} (epoch 1 @ {run['from']} updates)" in run["log"]
        updates = train_inner_updates(run["log"])
        assert updates and updates[0] == run["from"] + 1, (run["from"], updates[:3])


def test_the_last_rerun_trains_to_the_end(killed_and_finished):
    save, runs = killed_and_finished
    final = runs[-1]
    assert final["rc"] == 0, final["log"][-3000:]
    assert "done training" in final["log"] and "Traceback" not in final["log"]
    assert train_inner_updates(final["log"])[-1] == MAX_UPDATE
    assert num_updates(save / "checkpoint_last.pt") == MAX_UPDATE


def test_resume_past_a_cut_short_checkpoint_last(killed_and_finished, tiny_data, fork_cli, tmp_path):
    """checkpoint_last.pt cut short (by fairseq without the plugin, a full disk) -> one
    warning naming the newest readable checkpoint, which training resumes from."""
    save = tmp_path / "ckpt"
    shutil.copytree(killed_and_finished[0], save)
    last = save / "checkpoint_last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])
    newest = save / f"checkpoint_1_{MAX_UPDATE}.pt"
    os.utime(newest)  # the copy gave all files one time: make this one the newest
    run = fork_cli.run(
        "fairseq-train", tiny_data, *TRAIN_TINY, "--max-update", MAX_UPDATE + 2, "--save-interval-updates", SAVE_EVERY,
        "--save-dir", save,
    )  # fmt: skip
    out = run.output
    assert run.returncode == 0, out[-3000:]
    warnings = [line for line in out.splitlines() if "is truncated" in line]
    assert len(warnings) == 1 and f"resuming from {newest}" in warnings[0], warnings
    assert f"Loaded checkpoint {newest} (epoch 1 @ {MAX_UPDATE} updates)" in out
    assert train_inner_updates(out) == [MAX_UPDATE + 1, MAX_UPDATE + 2]
    assert num_updates(last) == MAX_UPDATE + 2


def test_rerunning_a_finished_run_trains_nothing(killed_and_finished, tiny_data, fork_cli, tmp_path):
    """fairseq's loop tests --max-update only after a step: without the plugin, rerunning the
    finished command trains update MAX_UPDATE + 1 and overwrites the final checkpoints."""
    save = tmp_path / "ckpt"
    shutil.copytree(killed_and_finished[0], save)
    before = {p.name: p.read_bytes() for p in save.glob("*.pt")}
    args = [tiny_data, *TRAIN_TINY, "--max-update", MAX_UPDATE, "--save-interval-updates", SAVE_EVERY]
    run = fork_cli.run("fairseq-train", *args, "--save-dir", save)
    assert run.returncode == 0, run.output[-3000:]
    assert f"is at {MAX_UPDATE} updates and --max-update is {MAX_UPDATE}: training is already finished" in run.output
    assert train_inner_updates(run.output) == [] and "Traceback" not in run.output
    assert {p.name: p.read_bytes() for p in save.glob("*.pt")} == before
