"""The environment decision: numpy < 2, because fairseq's datasets use ``np.compat``."""

import numpy as np
import torch
from fairseq.data import Dictionary, LanguagePairDataset, TokenBlockDataset


def test_numpy_is_pinned_below_2():
    assert int(np.__version__.split(".")[0]) < 2, np.__version__


def test_fairseq_code_paths_using_np_compat_work():
    items = [torch.tensor([4, 5, 6, 2]), torch.tensor([7, 2]), torch.tensor([8, 9, 2])]
    sizes = np.array([len(t) for t in items])
    block = TokenBlockDataset(items, sizes, block_size=4, pad=1, eos=2, break_mode="none")
    assert len(block) > 0
    d = Dictionary()
    # bucketed LanguagePairDataset computes num_tokens with np.compat.long
    pairs = LanguagePairDataset(items, sizes, d, items, sizes, d, num_buckets=2)
    assert len(pairs) == 3
