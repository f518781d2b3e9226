"""davam_plugin/data/resume_batches.py: the batches of a run started or resumed at epoch E are
built as at epoch 1 (fairseq adds the epoch to the seed while building them), and the iterator
keeps the real seed for its per-epoch shuffles."""

from types import SimpleNamespace

from davam_plugin.data.resume_batches import batches_as_built_at_epoch_one


def fake_get_batch_iterator(calls):
    def get(dataset, **kwargs):
        calls.append(kwargs)
        # fairseq builds the batches under numpy_seed(seed + epoch) and keeps seed for the shuffles
        return SimpleNamespace(built_with=kwargs["seed"] + kwargs["epoch"], seed=kwargs["seed"])

    return get


def test_a_training_set_resumed_at_epoch_e_gets_the_batches_of_epoch_one_and_the_real_shuffle_seed():
    train = SimpleNamespace(for_training=True)
    for epoch in (1, 2, 7):
        calls = []
        itr = batches_as_built_at_epoch_one(fake_get_batch_iterator(calls), train, {"seed": 3, "epoch": epoch, "num_workers": 0})
        assert itr.built_with == 3 + 1 and itr.seed == 3, epoch
        assert calls[0]["epoch"] == epoch and calls[0]["num_workers"] == 0  # the rest passes through


def test_validation_and_generation_sets_are_left_as_fairseq_builds_them():
    for dataset in (SimpleNamespace(for_training=False), SimpleNamespace()):
        calls = []
        itr = batches_as_built_at_epoch_one(fake_get_batch_iterator(calls), dataset, {"seed": 3, "epoch": 4})
        assert itr.built_with == 7 and itr.seed == 3 and calls == [{"seed": 3, "epoch": 4}]
