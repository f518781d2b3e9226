"""--save-last-interval-updates: checkpoint_last.pt mid-epoch without validating, and a killed
run resumes from it as if it had never stopped (davam_plugin/periodic_checkpoint.py).

The tiny corpus has 19 updates per epoch at --batch-size 32. A run is "killed" right after the
plugin's first mid-epoch save by a driver script that wraps fairseq's save_checkpoint and
ends the process with os._exit(137) (no cleanup, as SIGKILL) once a save without a validation
loss has returned; rerunning the plain command must continue from that update and end with
exactly the weights of an uninterrupted run.
"""

import json
from types import SimpleNamespace

import pytest
import torch

from conftest import TRAIN_TINY
from davam_plugin import periodic_checkpoint

KILL_AFTER_PLAIN_SAVE = """
import os, sys
from fairseq import checkpoint_utils
import fairseq_cli.train

_save = checkpoint_utils.save_checkpoint

def save_then_die(cfg, trainer, epoch_itr, val_loss):
    out = _save(cfg, trainer, epoch_itr, val_loss)
    if val_loss is None:  # the plugin's mid-epoch save (fairseq's own always pass a loss here)
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(137)
    return out

checkpoint_utils.save_checkpoint = save_then_die
sys.argv = ["fairseq-train", *sys.argv[1:]]
fairseq_cli.train.cli_main()
"""


def state(path):
    return torch.load(path, weights_only=True)


def updates_of(path):
    return state(path)["optimizer_history"][-1]["num_updates"]


def log_lines(output, kind):
    return [json.loads(line.split(f"| {kind} | ", 1)[1]) for line in output.splitlines() if f"| {kind} | " in line]


@pytest.fixture(scope="module")
def killed_then_resumed(tiny_data, fork_cli, tmp_path_factory):
    root = tmp_path_factory.mktemp("periodic")
    driver = root / "kill_after_plain_save.py"
    driver.write_text(KILL_AFTER_PLAIN_SAVE)
    save = root / "resumed"
    args = [tiny_data, *TRAIN_TINY, "--max-update", "8", "--save-last-interval-updates", "3", "--save-dir", save]
    killed = fork_cli.run("python", driver, *args)
    after_kill = {name: (save / name).exists() for name in ("checkpoint_last.pt", "checkpoint_best.pt")}
    last_after_kill = state(save / "checkpoint_last.pt") if after_kill["checkpoint_last.pt"] else None
    resumed = fork_cli.run("fairseq-train", *args)
    straight = fork_cli.run("fairseq-train", tiny_data, *TRAIN_TINY, "--max-update", "8", "--save-dir", root / "straight")
    return SimpleNamespace(
        save=save, killed=killed, after_kill=after_kill, last_after_kill=last_after_kill, resumed=resumed,
        straight=straight, straight_dir=root / "straight",
    )  # fmt: skip


def test_the_save_is_checkpoint_last_only_mid_epoch_and_without_validation(killed_then_resumed):
    r = killed_then_resumed
    assert r.killed.returncode == 137, r.killed.output[-3000:]
    assert "--save-last-interval-updates 3: checkpoint_last.pt also every 3 updates" in r.killed.output
    assert r.after_kill == {"checkpoint_last.pt": True, "checkpoint_best.pt": False}, r.after_kill
    assert log_lines(r.killed.output, "valid") == []  # no validation pass before the save
    extra = r.last_after_kill["extra_state"]
    assert r.last_after_kill["optimizer_history"][-1]["num_updates"] == 3
    assert extra["val_loss"] is None
    assert extra["train_iterator"]["epoch"] == 1 and extra["train_iterator"]["iterations_in_epoch"] == 3
    assert sorted(p.name for p in r.save.iterdir()) == ["checkpoint_best.pt", "checkpoint_last.pt"]  # after the rerun


def test_the_rerun_continues_with_the_next_batch(killed_then_resumed):
    r = killed_then_resumed
    out = r.resumed.output
    assert r.resumed.returncode == 0, out[-3000:]
    assert f"Loaded checkpoint {r.save / 'checkpoint_last.pt'} (epoch 1 @ 3 updates)" in out
    assert [line["num_updates"] for line in log_lines(out, "train_inner")] == [str(u) for u in range(4, 9)]
    # its own save at update 6 (mid-epoch, no validation); fairseq's at update 8 (the stop) validates once
    assert len(log_lines(out, "valid")) == 1


def test_killed_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(killed_then_resumed):
    r = killed_then_resumed
    assert r.straight.returncode == 0, r.straight.output[-3000:]
    a, b = state(r.save / "checkpoint_last.pt"), state(r.straight_dir / "checkpoint_last.pt")
    assert updates_of(r.save / "checkpoint_last.pt") == updates_of(r.straight_dir / "checkpoint_last.pt") == 8
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name


def test_best_and_the_curve_come_from_end_of_epoch_validations_only(tiny_data, fork_cli, tmp_path):
    """Across an epoch boundary (19 updates per epoch) with a save every 4 updates: one valid
    line per epoch end, and checkpoint_best.pt holds the state of that epoch's end."""
    save = tmp_path / "ckpt"
    run = fork_cli.run(
        "fairseq-train", tiny_data, *TRAIN_TINY, "--max-epoch", "2", "--save-last-interval-updates", "4", "--save-dir", save,
    )  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    valid = log_lines(run.output, "valid")
    assert [(v["epoch"], v["valid_num_updates"]) for v in valid] == [(1, "19"), (2, "38")]
    saves = [line for line in run.output.splitlines() if "Saved checkpoint" in line]
    # mid-epoch saves at 4, 8, 12, 16 and 20, 24, 28, 32, 36; fairseq's at 19 and 38
    assert len(saves) == 11, saves
    assert updates_of(save / "checkpoint_best.pt") in (19, 38)
    assert state(save / "checkpoint_best.pt")["extra_state"]["val_loss"] is not None


def test_the_prior_task_saves_mid_epoch_too(tiny_data, tiny_checkpoint, fork_cli, tmp_path):
    """--task davam_prior (stage two) has the option as well: killed after its first mid-epoch save."""
    from test_prior_cli import TRAIN_PRIOR

    driver = tmp_path / "kill_after_plain_save.py"
    driver.write_text(KILL_AFTER_PLAIN_SAVE)
    save = tmp_path / "prior"
    run = fork_cli.run(
        "python", driver, tiny_data, *TRAIN_PRIOR, "--davam-path", tiny_checkpoint, "--max-update", "6",
        "--save-last-interval-updates", "2", "--save-dir", save,
    )  # fmt: skip
    assert run.returncode == 137, run.output[-3000:]
    assert sorted(p.name for p in save.iterdir()) == ["checkpoint_last.pt"]
    last = state(save / "checkpoint_last.pt")
    assert last["optimizer_history"][-1]["num_updates"] == 2 and last["extra_state"]["val_loss"] is None
    assert last["extra_state"]["train_iterator"]["iterations_in_epoch"] == 2


def test_a_negative_interval_is_one_line(tiny_data, fork_cli, tmp_path):
    run = fork_cli.run(
        "fairseq-train", tiny_data, *TRAIN_TINY, "--max-update", "1", "--save-last-interval-updates", "-2",
        "--save-dir", tmp_path,
    )  # fmt: skip
    assert run.returncode != 0
    assert "error: --save-last-interval-updates must be >= 0, got -2" in run.output
    assert "Traceback" not in run.output


def cfg(save_interval_updates=0, no_save=False, no_last=False, validate_after=0):
    return SimpleNamespace(
        checkpoint=SimpleNamespace(save_interval_updates=save_interval_updates, no_save=no_save, no_last_checkpoints=no_last),
        dataset=SimpleNamespace(validate_after_updates=validate_after),
    )  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, num_updates, interval, end_of_epoch, should_stop, due",
    [
        ({}, 6, 3, False, False, True),
        ({}, 7, 3, False, False, False),  # not a multiple
        ({}, 6, 0, False, False, False),  # option off
        ({}, 0, 3, False, False, False),
        ({}, 6, 3, True, False, False),  # fairseq saves at the end of an epoch
        ({}, 6, 3, False, True, False),  # and when it stops
        ({"save_interval_updates": 2}, 6, 3, False, False, False),  # fairseq's --save-interval-updates saves here
        ({"save_interval_updates": 2, "validate_after": 10}, 6, 3, False, False, True),  # ... but not yet
        ({"save_interval_updates": 4}, 6, 3, False, False, True),
        ({"no_save": True}, 6, 3, False, False, False),
        ({"no_last": True}, 6, 3, False, False, False),
    ],
)
def test_when_the_plugin_saves(kwargs, num_updates, interval, end_of_epoch, should_stop, due):
    assert periodic_checkpoint.is_due(cfg(**kwargs), num_updates, interval, end_of_epoch, should_stop) is due


def test_install_wraps_once(monkeypatch):
    import fairseq_cli.train as train

    original = train.validate_and_save
    monkeypatch.setattr(train, "validate_and_save", original)
    assert periodic_checkpoint.install_periodic_checkpoint(5) == 1
    wrapped = train.validate_and_save
    assert wrapped is not original and getattr(wrapped, periodic_checkpoint._WRAPPED) is original
    assert periodic_checkpoint.install_periodic_checkpoint(5) == 0 and train.validate_and_save is wrapped


def test_without_a_training_loop_it_says_so(monkeypatch, caplog):
    monkeypatch.setattr(periodic_checkpoint, "_training_modules", lambda: [])
    assert periodic_checkpoint.install_periodic_checkpoint(5) == 0
    assert "--save-last-interval-updates 5: no fairseq training loop" in caplog.text


def test_a_finished_warm_up_copied_and_continued_elsewhere_equals_one_straight_run(tiny_data, fork_cli, tmp_path):
    """What davam_ptb.sh relies on when davam_ptb_k512 starts from davam_ptb_k512_fast's warm-up:
    the same command run to epoch 1 in one directory, its checkpoint_last.pt and checkpoint_best.pt
    copied into another and continued there to epoch 3 (with the authors' plateau schedule, which
    saves its own state), ends with the weights and the validation records of one run to epoch 3."""
    flags = [*TRAIN_TINY, "--lr-scheduler", "davam_plateau", "--stop-min-lr", "0",
             "--best-checkpoint-metric", "rec_plus_commitment", "--seed", "3"]  # fmt: skip
    warm, shared, straight = tmp_path / "warm", tmp_path / "shared", tmp_path / "straight"
    first = fork_cli.run("fairseq-train", tiny_data, *flags, "--max-epoch", "1", "--save-dir", warm)
    assert first.returncode == 0, first.output[-3000:]
    shared.mkdir()
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        (shared / name).write_bytes((warm / name).read_bytes())
    rest = fork_cli.run("fairseq-train", tiny_data, *flags, "--max-epoch", "3", "--save-dir", shared)
    whole = fork_cli.run("fairseq-train", tiny_data, *flags, "--max-epoch", "3", "--save-dir", straight)
    assert rest.returncode == 0 and whole.returncode == 0, (rest.output + whole.output)[-3000:]
    assert f"Loaded checkpoint {shared / 'checkpoint_last.pt'} (epoch 2 @ 19 updates)" in rest.output
    valid_joined = log_lines(first.output, "valid") + log_lines(rest.output, "valid")
    valid_whole = log_lines(whole.output, "valid")
    assert [v["epoch"] for v in valid_whole] == [1, 2, 3]
    for joined, one in zip(valid_joined, valid_whole, strict=True):
        assert {k: v for k, v in joined.items() if "wps" not in k} == {k: v for k, v in one.items() if "wps" not in k}
    a, b = state(shared / "checkpoint_last.pt"), state(straight / "checkpoint_last.pt")
    assert updates_of(shared / "checkpoint_last.pt") == updates_of(straight / "checkpoint_last.pt") == 57
    for name in b["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name


def test_a_run_killed_in_the_middle_of_epoch_two_resumes_on_the_batches_it_was_training_on(tiny_data, fork_cli, tmp_path):
    """fairseq builds the training batches when the iterator is first made, from numpy_seed(seed +
    epoch): resumed in epoch 2 it used to build other batches than the uninterrupted run's and to
    skip the first ones of that other list (davam_plugin/data/resume_batches.py). Killed after a
    mid-epoch save at update 25 (epoch 2 has 19 updates from 20 on), the rerun must end at update
    30 with the weights of an uninterrupted run."""
    driver = tmp_path / "kill_after_plain_save.py"
    driver.write_text(KILL_AFTER_PLAIN_SAVE)
    save, straight = tmp_path / "resumed", tmp_path / "straight"
    args = [tiny_data, *TRAIN_TINY, "--max-update", "30", "--save-last-interval-updates", "25", "--seed", "5"]
    killed = fork_cli.run("python", driver, *args, "--save-dir", save)
    assert killed.returncode == 137 and updates_of(save / "checkpoint_last.pt") == 25, killed.output[-3000:]
    resumed = fork_cli.run("fairseq-train", *args, "--save-dir", save)
    whole = fork_cli.run("fairseq-train", *args, "--save-dir", straight)
    assert resumed.returncode == 0 and whole.returncode == 0, (resumed.output + whole.output)[-3000:]
    assert f"Loaded checkpoint {save / 'checkpoint_last.pt'} (epoch 2 @ 25 updates)" in resumed.output
    a, b = state(save / "checkpoint_last.pt"), state(straight / "checkpoint_last.pt")
    assert updates_of(save / "checkpoint_last.pt") == updates_of(straight / "checkpoint_last.pt") == 30
    for name in b["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
