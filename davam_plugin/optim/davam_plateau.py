"""LR scheduler ``davam_plateau``: the DAVAM authors' plateau schedule.

After every epoch e (fairseq's numbering, from 1) with validation loss L_e (the
``--best-checkpoint-metric``; the authors watch validation Rec + commitment, logged by the
``davam`` criterion as ``rec_plus_commitment``):

    if L_e > ref:   bad += 1
                    if bad >= --lr-patience and e >= --lr-decay-start-epoch:
                        lr <- lr * --lr-shrink;  ref <- L_e;  bad <- 0;  decays += 1
                        reload the weights of checkpoint_best (--reload-best-on-decay)
    else:           bad <- 0;  ref <- L_e

with ref = +inf at the start. ``ref`` is the last epoch's loss that was not worse than its
predecessor (not the best so far), as in the authors' code. After ``--max-lr-decays`` decays
training stops: the rate is set to 0, and ``--stop-min-lr 0`` (required) ends fairseq's loop.
The authors' values are the defaults: patience 2, shrink 0.5, decays only from their
0-based epoch 15 (= fairseq epoch 16), stop after 5 decays.

Differences from fairseq's ``reduce_lr_on_plateau``: that one compares with the best loss
so far, waits for patience + 1 bad epochs (torch's semantics), decays from the first epoch,
never reloads weights and never stops.

Reloading is done by the task at the start of the next epoch (``reload_best_if_pending``,
called from the ``sentence_vae`` and ``davam_prior`` tasks' ``begin_epoch``): the whole model
state of checkpoint_best is loaded, the EMA codebook included. The authors also rebuild their
SGD optimizers; fairseq's SGD without momentum has no state, so nothing else changes. A
stateful optimizer (Adam, as in the fast PTB recipe) keeps its moment estimates across the
reload: they were accumulated at the abandoned weights and fade within about 1 / (1 - beta)
updates (10 for the first moment, 1,000 for the second at fairseq's defaults).

Resuming: fairseq saves a checkpoint after validation but *before* it steps the scheduler,
so a run killed before its next save would lose that epoch's decision. On resume the
scheduler therefore reads the validation loss stored in the restored checkpoint and replays
the decision it has not seen yet (its state records the last epoch it stepped).
"""

import logging
import math
import os
from dataclasses import dataclass, field
from typing import List, Optional

import torch
from omegaconf import II

from fairseq.dataclass import FairseqDataclass
from fairseq.optim.lr_scheduler import FairseqLRScheduler, register_lr_scheduler

logger = logging.getLogger(__name__)

# path of a checkpoint whose weights the task must load at the start of the next epoch
_pending_reload: List[str] = []


@dataclass
class DavamPlateauConfig(FairseqDataclass):
    lr_shrink: float = field(default=0.5, metadata={"help": "factor of each decay (authors: 0.5)"})
    lr_patience: int = field(
        default=2, metadata={"help": "decay after this many epochs without improvement (authors: 2)"}
    )
    lr_decay_start_epoch: int = field(
        default=16, metadata={"help": "no decay before this epoch (fairseq numbering; authors: 0-based 15 = 16)"}
    )
    max_lr_decays: int = field(default=5, metadata={"help": "stop training after this many decays (authors: 5)"})
    reload_best_on_decay: bool = field(
        default=True, metadata={"help": "load checkpoint_best's weights after each decay (authors: yes)"}
    )
    lr: List[float] = II("optimization.lr")
    stop_min_lr: float = II("optimization.stop_min_lr")
    save_dir: str = II("checkpoint.save_dir")
    restore_file: str = II("checkpoint.restore_file")
    checkpoint_suffix: str = II("checkpoint.checkpoint_suffix")
    maximize_best_checkpoint_metric: bool = II("checkpoint.maximize_best_checkpoint_metric")


def reload_best_if_pending(model) -> Optional[str]:
    """Load the weights the scheduler asked for into ``model`` (returns the path, or None)."""
    if not _pending_reload:
        return None
    path = _pending_reload.pop()
    _pending_reload.clear()
    state = torch.load(path, map_location="cpu", weights_only=True)  # a checkpoint of this same run
    model.load_state_dict(state["model"], strict=True)
    logger.info(f"davam_plateau: reloaded the weights of {path}")
    return path


@register_lr_scheduler("davam_plateau", dataclass=DavamPlateauConfig)
class DavamPlateauSchedule(FairseqLRScheduler):
    def __init__(self, cfg: DavamPlateauConfig, optimizer):
        super().__init__(cfg, optimizer)
        if len(cfg.lr) > 1:
            raise SystemExit("error: --lr-scheduler davam_plateau takes one --lr, not a list")
        if not 0.0 < cfg.lr_shrink < 1.0:
            raise SystemExit(f"error: --lr-shrink must be in (0, 1), got {cfg.lr_shrink}")
        if cfg.lr_patience < 1:
            raise SystemExit(f"error: --lr-patience must be >= 1, got {cfg.lr_patience}")
        if cfg.max_lr_decays < 1:
            raise SystemExit(f"error: --max-lr-decays must be >= 1, got {cfg.max_lr_decays}")
        if cfg.stop_min_lr < 0:
            raise SystemExit(
                "error: --lr-scheduler davam_plateau stops training after --max-lr-decays decays by setting the "
                "rate to 0: add --stop-min-lr 0"
            )
        if cfg.maximize_best_checkpoint_metric:
            raise SystemExit("error: --lr-scheduler davam_plateau watches a loss: drop --maximize-best-checkpoint-metric")
        self.lr = float(cfg.lr[0])
        self.ref = math.inf
        self.bad_epochs = 0
        self.decays = 0
        self.last_epoch = 0  # the last epoch whose validation loss was seen
        self.optimizer.set_lr(self.lr)

    # ---------------------------------------------------------------- state
    def state_dict(self):
        return {
            "best": self.best,
            "lr": self.lr,
            "ref": self.ref,
            "bad_epochs": self.bad_epochs,
            "decays": self.decays,
            "last_epoch": self.last_epoch,
        }

    def load_state_dict(self, state_dict):
        self.best = state_dict.get("best")
        if "ref" not in state_dict:
            raise SystemExit(
                "error: the restored checkpoint was not trained with --lr-scheduler davam_plateau: add "
                "--reset-lr-scheduler to start this schedule from it"
            )
        self.lr = state_dict["lr"]
        self.ref = state_dict["ref"]
        self.bad_epochs = state_dict["bad_epochs"]
        self.decays = state_dict["decays"]
        self.last_epoch = state_dict["last_epoch"]
        self.optimizer.set_lr(self.lr)

    # ---------------------------------------------------------------- schedule
    def _best_path(self) -> str:
        return os.path.join(self.cfg.save_dir, f"checkpoint_best{self.cfg.checkpoint_suffix or ''}.pt")

    def _restored_path(self) -> str:
        if self.cfg.restore_file == "checkpoint_last.pt":
            return os.path.join(self.cfg.save_dir, f"checkpoint_last{self.cfg.checkpoint_suffix or ''}.pt")
        return self.cfg.restore_file

    def observe(self, epoch: int, val_loss: float) -> None:
        """One end-of-epoch decision (module docstring)."""
        self.last_epoch = epoch
        if self.decays >= self.cfg.max_lr_decays:
            return
        if val_loss > self.ref:
            self.bad_epochs += 1
            if self.bad_epochs >= self.cfg.lr_patience and epoch >= self.cfg.lr_decay_start_epoch:
                self.ref = val_loss
                self.bad_epochs = 0
                self.decays += 1
                self.lr *= self.cfg.lr_shrink
                logger.info(f"davam_plateau: epoch {epoch}: decay {self.decays}/{self.cfg.max_lr_decays}, lr {self.lr:g}")
                if self.cfg.reload_best_on_decay:
                    _pending_reload[:] = [self._best_path()]
                if self.decays >= self.cfg.max_lr_decays:
                    logger.info(f"davam_plateau: {self.decays} decays reached: stopping (lr 0)")
                    self.lr = 0.0
        else:
            self.bad_epochs = 0
            self.ref = val_loss

    def _replay_restored_epoch(self) -> None:
        """On resume: the decision for the epoch the restored checkpoint ended, if not seen."""
        path = self._restored_path()
        if not os.path.isfile(path):
            return
        state = torch.load(path, map_location="cpu", weights_only=True)
        extra = state.get("extra_state") or {}
        itr = extra.get("train_iterator") or {}
        val_loss = extra.get("val_loss")
        if val_loss is None or itr.get("iterations_in_epoch", 1) != 0:
            return  # not an end-of-epoch checkpoint with a validation loss
        finished_epoch = int(itr["epoch"]) - 1
        if finished_epoch == self.last_epoch + 1:
            logger.info(f"davam_plateau: replaying the decision of epoch {finished_epoch} (val {val_loss:.3f})")
            self.observe(finished_epoch, float(val_loss))

    def step(self, epoch, val_loss=None):
        super().step(epoch, val_loss)
        if val_loss is not None:
            self.observe(int(epoch), float(val_loss))
        elif epoch > self.last_epoch + 1:
            self._replay_restored_epoch()
        self.optimizer.set_lr(self.lr)
        return self.lr

    def step_update(self, num_updates):
        return self.optimizer.get_lr()
