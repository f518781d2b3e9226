"""Training batches that do not depend on the epoch a run was started or resumed at.

fairseq (0.12) makes a training set's batches once, when its batch iterator is first built,
from the dataset's order under ``numpy_seed(seed + epoch)`` (which sentences of similar length
share a batch), and reuses them in every later epoch, shuffling only their order, with
``seed + epoch``. A run started fresh builds them at epoch 1. A run resumed at epoch E > 1
builds them at epoch E: other batches than the uninterrupted run's from then on, and a run
resumed in the middle of epoch E skips its first k batches from *another* list than the one it
trained on before it stopped, so that epoch shows some sentences twice and others not at all.

:func:`batches_as_built_at_epoch_one` builds the batches as a fresh run does (``seed + 1``)
whatever the starting epoch, and keeps ``seed + epoch`` for the per-epoch shuffle, so a run
resumed at any update trains on exactly the batches of one that never stopped.
"""


def batches_as_built_at_epoch_one(get_batch_iterator, dataset, kwargs):
    """``get_batch_iterator(dataset, **kwargs)`` (fairseq's, with the trainer's keyword
    arguments) with the batches of a fresh run: the seed fairseq adds the epoch to while
    building the batches is offset so that it builds them with ``seed + 1``, and the returned
    iterator gets the real seed back for its per-epoch shuffles. For training sets only; the
    tasks leave ``--rebuild-batches`` (new batches every epoch) to fairseq. With fairseq's
    ``--update-ordered-indices-seed`` the trainer passes ``seed + epoch`` itself, so a resumed
    run's batches still differ from an uninterrupted run's, as in fairseq alone."""
    epoch, seed = kwargs.get("epoch", 1), kwargs.get("seed", 1)
    if epoch == 1 or not getattr(dataset, "for_training", False):
        return get_batch_iterator(dataset, **kwargs)
    itr = get_batch_iterator(dataset, **dict(kwargs, seed=seed + 1 - epoch))
    itr.seed = seed
    return itr


def task_batch_iterator(get_batch_iterator, dataset, args, kwargs, rebuild_batches):
    """The ``get_batch_iterator`` of the plugin's tasks: an evaluation or generation set never
    drops its last partial batch (``required_batch_size_multiple`` 1), and a training set gets
    the batches of a fresh run (:func:`batches_as_built_at_epoch_one`) unless it is called with
    positional arguments or ``--rebuild-batches``."""
    if not getattr(dataset, "for_training", False):
        kwargs["required_batch_size_multiple"] = 1
    if args or rebuild_batches:
        return get_batch_iterator(dataset, *args, **kwargs)
    return batches_as_built_at_epoch_one(get_batch_iterator, dataset, kwargs)
