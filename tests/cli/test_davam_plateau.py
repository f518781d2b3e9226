"""LR scheduler ``davam_plateau`` (the DAVAM authors' schedule): decisions against a
hand-traced loss sequence, the reload of checkpoint_best, stopping, state round trips, the
replay of an epoch's decision on resume, one-line errors, and a real fairseq-train run."""

import math

import pytest
import torch
from fairseq.optim.sgd import SGD

from davam_plugin.optim import davam_plateau as plateau
from davam_plugin.optim.davam_plateau import DavamPlateauConfig, DavamPlateauSchedule
from conftest import TRAIN_TINY, run_cli


@pytest.fixture(autouse=True)
def no_pending_reload():
    """The scheduler hands reloads to the task through a module-level list: no test may see
    another's request (a leftover one made test_reload_loads_the_best_weights load a file of
    the test before it)."""
    plateau._pending_reload.clear()
    yield
    plateau._pending_reload.clear()


class Cfg:
    def __init__(self, **kw):
        base = dict(lr=[1.0], momentum=0.0, weight_decay=0.0)
        base.update(kw)
        self.__dict__.update(base)


def make(save_dir="/nonexistent", restore_file="checkpoint_last.pt", **kw):
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = SGD(Cfg(), params)
    cfg = DavamPlateauConfig(**{**dict(lr=[1.0], stop_min_lr=0.0, save_dir=str(save_dir), restore_file=restore_file,
                                       checkpoint_suffix="", maximize_best_checkpoint_metric=False), **kw})  # fmt: skip
    plateau._pending_reload.clear()
    return DavamPlateauSchedule(cfg, opt), opt


def test_decisions_follow_the_authors_rule():
    """ref is the last not-worse loss; 2 bad epochs decay only from epoch 16; after a decay
    ref is the bad loss itself; 5 decays stop training."""
    sched, opt = make()
    # epochs 1..15 never decay, however bad
    losses = [100, 90, 95, 96, 97, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89]
    for e, loss in enumerate(losses, 1):
        assert sched.step(e, loss) == 1.0
    assert sched.bad_epochs == 9 and sched.ref == 80  # 81..89 each worse than 80
    # epoch 16: bad again and bad_epochs >= 2 -> decay, ref = 90, reload requested
    assert sched.step(16, 90) == 0.5
    assert (sched.decays, sched.ref, sched.bad_epochs) == (1, 90, 0)
    assert plateau._pending_reload == ["/nonexistent/checkpoint_best.pt"]
    # an improvement resets the counter and becomes the reference
    assert sched.step(17, 70) == 0.5 and sched.ref == 70
    assert sched.step(18, 71) == 0.5 and sched.bad_epochs == 1
    # worse than 70 (the reference), although better than 71: the second bad epoch decays
    assert sched.step(19, 70.5) == 0.25 and (sched.decays, sched.ref) == (2, 70.5)
    for e, expect in zip(range(20, 26), [0.25, 0.125, 0.125, 0.0625, 0.0625, 0.0], strict=True):
        assert sched.step(e, 80 + e) == pytest.approx(expect)
    assert sched.decays == 5 and opt.get_lr() == 0.0  # stopped: --stop-min-lr 0 ends the loop


def test_state_round_trip_and_resume_call():
    sched, _ = make()
    for e, loss in enumerate([5, 6, 7], 1):
        sched.step(e, loss)
    state = sched.state_dict()
    other, opt = make()
    other.load_state_dict(state)
    assert other.state_dict() == state and opt.get_lr() == 1.0
    assert other.step(4) == 1.0 and other.state_dict() == state  # resume call: no val loss, no file


def test_resume_replays_the_decision_the_checkpoint_missed(tmp_path):
    """fairseq saves the end-of-epoch checkpoint before stepping the scheduler: a run killed
    before its next save must not lose that epoch's decision."""
    sched, _ = make(save_dir=tmp_path, lr_decay_start_epoch=1)
    sched.step(1, 10.0)
    sched.step(2, 11.0)  # one bad epoch
    saved = sched.state_dict()  # what checkpoint_last of epoch 3 holds (saved before step(3))
    extra = {"train_iterator": {"epoch": 4, "iterations_in_epoch": 0}, "val_loss": 12.0}
    torch.save({"extra_state": extra}, tmp_path / "checkpoint_last.pt")
    resumed, opt = make(save_dir=tmp_path, lr_decay_start_epoch=1)
    resumed.load_state_dict(saved)
    assert resumed.step(4) == 0.5  # fairseq's resume call lr_step(4): epoch 3's decision replayed
    assert resumed.last_epoch == 3 and resumed.decays == 1 and opt.get_lr() == 0.5
    assert plateau._pending_reload == [str(tmp_path / "checkpoint_best.pt")]
    assert resumed.step(4) == 0.5 and resumed.decays == 1  # replayed once only
    mid = {"train_iterator": {"epoch": 4, "iterations_in_epoch": 7}, "val_loss": 99.0}
    torch.save({"extra_state": mid}, tmp_path / "checkpoint_last.pt")
    again, _ = make(save_dir=tmp_path, lr_decay_start_epoch=1)
    again.load_state_dict(saved)
    assert again.step(4) == 1.0  # a mid-epoch checkpoint carries no end-of-epoch decision


def test_a_stopped_run_continues_with_more_decays_allowed(tmp_path):
    """A run stopped by its last allowed decay ends before it saves again, so checkpoint_last
    holds the state before that decision: resumed with a larger --max-lr-decays, the replayed
    decision halves the rate instead of stopping (examples/reproduce/davam_ptb_long.sh)."""
    sched, _ = make(save_dir=tmp_path, lr_decay_start_epoch=1, max_lr_decays=2)
    for e, loss in enumerate([10.0, 11.0, 12.0, 13.0], 1):  # decay 1 after epoch 3
        sched.step(e, loss)
    assert sched.decays == 1 and sched.lr == 0.5
    saved = sched.state_dict()  # checkpoint_last of epoch 5, saved before the scheduler stepped
    extra = {"train_iterator": {"epoch": 6, "iterations_in_epoch": 0}, "val_loss": 14.0}
    torch.save({"extra_state": extra}, tmp_path / "checkpoint_last.pt")
    assert sched.step(5, 14.0) == 0.0  # decay 2 of 2: the run stops here

    for allowed, lr in [(2, 0.0), (4, 0.25)]:
        resumed, opt = make(save_dir=tmp_path, lr_decay_start_epoch=1, max_lr_decays=allowed)
        resumed.load_state_dict(saved)
        assert resumed.step(6) == lr and opt.get_lr() == lr and resumed.decays == 2
        assert plateau._pending_reload == [str(tmp_path / "checkpoint_best.pt")]  # the best weights, as at any decay


def test_reload_loads_the_best_weights(tmp_path):
    model = torch.nn.Linear(2, 2)
    best = torch.nn.Linear(2, 2)
    torch.save({"model": best.state_dict(), "cfg": None}, tmp_path / "checkpoint_best.pt")
    assert plateau.reload_best_if_pending(model) is None
    plateau._pending_reload[:] = [str(tmp_path / "checkpoint_best.pt")]
    assert plateau.reload_best_if_pending(model) == str(tmp_path / "checkpoint_best.pt")
    assert torch.equal(model.weight, best.weight) and plateau._pending_reload == []


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(stop_min_lr=-1.0), "add --stop-min-lr 0"),
        (dict(lr_shrink=1.0), "--lr-shrink must be in (0, 1)"),
        (dict(lr_patience=0), "--lr-patience must be >= 1"),
        (dict(max_lr_decays=0), "--max-lr-decays must be >= 1"),
        (dict(lr=[1.0, 0.5]), "takes one --lr"),
    ],
)
def test_bad_settings_are_refused(kw, message):
    with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(")", r"\)")):
        make(**kw)


def test_fairseq_train_decays_reloads_and_stops(tiny_data, tmp_path):
    out = run_cli(
        "fairseq-train", tiny_data, *TRAIN_TINY, "--max-epoch", "30", "--lr-scheduler", "davam_plateau",
        "--lr-patience", "1", "--lr-decay-start-epoch", "2", "--max-lr-decays", "1", "--stop-min-lr", "0",
        "--best-checkpoint-metric", "rec_plus_commitment", "--save-dir", tmp_path, "--lr", "3.0",
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert "valid_rec_plus_commitment" in text
    assert "davam_plateau: 1 decays reached: stopping" in text
    assert "stopping training because current learning rate (0.0)" in text
    assert not math.isnan(float(torch.load(tmp_path / "checkpoint_best.pt", weights_only=False)["extra_state"]["val_loss"]))
