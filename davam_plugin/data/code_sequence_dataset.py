"""Code sequences z_1..z_T EOC of the frozen stage-one posterior, as a fairseq dataset.

Each item is one sentence's codes (one per encoder position: words + EOS) followed by the
end-of-codes symbol EOC = K; padding is K + 1. The prior reads and predicts the same
sequence (its first layer is strictly causal), so ``net_input["codes"]`` and ``target`` are
the same padded tensor. ``ntokens`` counts prior predictions: T codes + 1 EOC per sentence.
"""

from typing import List

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils


class CodeSequenceDataset(FairseqDataset):
    def __init__(self, codes: List[torch.Tensor], num_codes: int, shuffle: bool = True):
        super().__init__()
        self.eoc = num_codes
        self.pad = num_codes + 1
        self.items = [torch.cat([c.long(), c.new_tensor([self.eoc]).long()]) for c in codes]
        self.sizes = np.array([len(c) for c in self.items], dtype=np.int64)
        self.shuffle = shuffle

    def __getitem__(self, index):
        return {"id": index, "codes": self.items[index]}

    def __len__(self):
        return len(self.items)

    def collater(self, samples):
        if len(samples) == 0:
            return {}
        codes = data_utils.collate_tokens([s["codes"] for s in samples], self.pad, left_pad=False)
        return {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": sum(len(s["codes"]) for s in samples),
            "net_input": {"codes": codes},
            "target": codes,
        }

    def num_tokens(self, index):
        return int(self.sizes[index])

    def size(self, index):
        return int(self.sizes[index])

    def ordered_indices(self):
        order = np.random.permutation(len(self)) if self.shuffle else np.arange(len(self))
        return order[np.argsort(self.sizes[order], kind="mergesort")]
