"""``--save-last-interval-updates N``: write ``checkpoint_last.pt`` every N updates, without validating.

A killed ``fairseq-train`` (SIGKILL, a pre-empted job, the end of a working session) resumes
from ``checkpoint_last.pt``; fairseq (v0.12) writes it at the end of each epoch, so a kill
loses up to one epoch: 10 minutes of a DAVAM stage-one epoch on PTB on one core, 30 of a
prior epoch. fairseq's own ``--save-interval-updates N`` saves mid-epoch too, but it
*validates* at every such save (``fairseq_cli/train.py``: ``do_validate`` is true for every
mid-epoch save), and the validation loss it passes on

* may replace ``checkpoint_best.pt`` with a mid-epoch state, which ``--lr-scheduler
  davam_plateau`` reloads at its next decay (the authors reload the best *end-of-epoch* weights);
* adds mid-epoch ``valid`` lines to the log, which the curves and ``davam-plot`` read as epochs;
* costs a pass over the validation set per save.

With this option fairseq's loop is unchanged, and after each update whose number is a multiple
of N (not an epoch's last update, not a stopping one: fairseq saves those itself, and not an
update at which ``--save-interval-updates`` already saved) the plugin calls fairseq's
``checkpoint_utils.save_checkpoint`` with no validation loss. With no loss and mid-epoch,
fairseq's conditions write ``checkpoint_last.pt`` only: no ``checkpoint_best.pt``, no
``checkpointN.pt`` (end-of-epoch only), no ``checkpoint_E_U.pt`` (only at multiples of
``--save-interval-updates``). The checkpoint holds the data iterator's position in the epoch,
so rerunning the command continues with the next batch (fairseq seeds each update with
``--seed`` + its number, so the run goes on as it would have); every rank decides from the
update number alone, so all ranks save at the same update.

The option is a field of the plugin's tasks (``sentence_vae``, ``davam_prior``) because fairseq
has no place for a plugin's checkpoint option; setting it makes the task call
:func:`install_periodic_checkpoint`, which wraps ``validate_and_save`` in the training module
(``fairseq_cli.train``, or ``__main__`` when run as ``python -m fairseq_cli.train``). Outside
``fairseq-train`` (no such module loaded) there is nothing to wrap and nothing is done.
"""

import logging
import sys
from typing import List

from fairseq import checkpoint_utils

logger = logging.getLogger(__name__)

SAVE_LAST_INTERVAL_HELP = (
    "also write checkpoint_last.pt every N updates in the middle of an epoch, without validating "
    "(fairseq's --save-interval-updates validates at each save, which can change checkpoint_best.pt and "
    "adds mid-epoch valid lines); rerunning a killed run continues from the next batch. 0: only fairseq's saves"
)

_WRAPPED = "_davam_periodic_checkpoint"


def check_interval(value) -> None:
    if value is None or int(value) < 0:
        raise SystemExit(f"error: --save-last-interval-updates must be >= 0, got {value}")


def is_due(cfg, num_updates: int, interval: int, end_of_epoch: bool, should_stop: bool) -> bool:
    """Whether the plugin saves after update ``num_updates`` (module docstring): a multiple of
    ``interval``, mid-epoch, not stopping, and no save of fairseq's own at that update."""
    if interval <= 0 or num_updates <= 0 or num_updates % interval != 0:
        return False
    if end_of_epoch or should_stop:
        return False
    ckpt = cfg.checkpoint
    if ckpt.no_save or ckpt.no_last_checkpoints:
        return False
    every = ckpt.save_interval_updates
    fairseq_saves = every > 0 and num_updates % every == 0 and num_updates >= cfg.dataset.validate_after_updates
    return not fairseq_saves


def _training_modules() -> List[object]:
    modules = []
    train = sys.modules.get("fairseq_cli.train")
    if train is not None:
        modules.append(train)
    main = sys.modules.get("__main__")
    if main is not None and main is not train and getattr(getattr(main, "__spec__", None), "name", None) == "fairseq_cli.train":
        modules.append(main)
    return [m for m in modules if callable(getattr(m, "validate_and_save", None))]


def _wrap(validate_and_save):
    def validate_and_save_with_periodic_last(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch):
        valid_losses, should_stop = validate_and_save(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch)
        interval = int(getattr(getattr(task, "cfg", None), "save_last_interval_updates", 0) or 0)
        num_updates = trainer.get_num_updates()
        if is_due(cfg, num_updates, interval, end_of_epoch, should_stop):
            checkpoint_utils.save_checkpoint(cfg.checkpoint, trainer, epoch_itr, None)
        return valid_losses, should_stop

    setattr(validate_and_save_with_periodic_last, _WRAPPED, validate_and_save)
    return validate_and_save_with_periodic_last


def install_periodic_checkpoint(interval: int) -> int:
    """Wrap ``validate_and_save`` of each loaded training module once (``interval``: for the log
    line; the wrapper reads the task's option at every update); the number wrapped now."""
    modules = _training_modules()
    if not modules:
        logger.warning(f"--save-last-interval-updates {interval}: no fairseq training loop (fairseq_cli.train) "
                       "in this process, so nothing is saved by it")
        return 0
    wrapped = 0
    for module in modules:
        current = module.validate_and_save
        if getattr(current, _WRAPPED, None) is not None:
            continue
        module.validate_and_save = _wrap(current)
        wrapped += 1
    logger.info(f"--save-last-interval-updates {interval}: checkpoint_last.pt also every {interval} updates "
                "in the middle of an epoch, without validation")
    return wrapped
