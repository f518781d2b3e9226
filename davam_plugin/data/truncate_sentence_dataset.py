"""Truncate over-long sentences while keeping their final EOS."""

import numpy as np
import torch
from fairseq.data import BaseWrapperDataset


class TruncateSentenceDataset(BaseWrapperDataset):
    """Items longer than ``max_length`` tokens keep their first ``max_length - 1`` tokens
    followed by the item's last token (EOS), so every item still ends with EOS."""

    def __init__(self, dataset, max_length: int):
        super().__init__(dataset)
        if max_length < 1:
            raise ValueError(f"--max-sentence-length must be >= 1, got {max_length}")
        self.max_length = max_length
        sizes = np.asarray(dataset.sizes)
        self.num_truncated = int((sizes > max_length).sum())
        self._sizes = np.minimum(sizes, max_length)

    def __getitem__(self, index):
        item = self.dataset[index]
        if item.numel() > self.max_length:
            item = torch.cat([item[: self.max_length - 1], item[-1:]])
        return item

    @property
    def sizes(self):
        return self._sizes

    def size(self, index):
        return self._sizes[index]

    def num_tokens(self, index):
        return self._sizes[index]
