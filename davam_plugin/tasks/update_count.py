"""A warning when a resumed run restarts fairseq's update count.

fairseq keeps the number of updates in the optimizer's history and restores it only with the
optimizer state (``Trainer.load_checkpoint``). Resuming from a checkpoint written with
``--no-save-optimizer-state``, or with ``--reset-optimizer``, therefore continues the epoch
it was in with the count at 0: every schedule that follows the count (DAVAM's beta warm-up,
AWD's KL weight, ``--max-update``) starts again, and so do ``davam_plateau``'s halvings, whose
state is in the same history. fairseq says nothing. :class:`UpdateCountCheckMixin` logs one
warning when the first update of a process is update 0 of an epoch after the first.
"""

import logging

logger = logging.getLogger(__name__)


def update_count_restarted(epoch: int, update_num: int) -> bool:
    """Whether a process that began in ``epoch`` and makes update ``update_num`` first
    restarted the count (a run's first epoch begins at 0, any later one after some updates)."""
    return epoch > 1 and update_num == 0


class UpdateCountCheckMixin:
    """For a FairseqTask: warn once, at a process's first training update, if the count restarted."""

    _first_epoch = None  # the epoch this process began in
    _count_checked = False

    def begin_epoch(self, epoch, model):
        super().begin_epoch(epoch, model)
        if self._first_epoch is None:
            self._first_epoch = epoch

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, **kwargs):
        if not self._count_checked:
            self._count_checked = True
            if update_count_restarted(self._first_epoch or 1, update_num):
                logger.warning(
                    f"epoch {self._first_epoch} begins at update 0: the checkpoint it resumes has no optimizer "
                    "state (--no-save-optimizer-state) or --reset-optimizer was given, so fairseq restarted the "
                    "update count, and what follows it starts again from 0 (beta's warm-up, the KL weight, "
                    "--max-update, davam_plateau's halvings)"
                )
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad, **kwargs)
