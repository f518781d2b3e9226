"""One-line errors for bad ``sentence_vae`` inputs that fairseq would crash on or accept silently.

Each check raises ``SystemExit`` with one line naming the file or flag to fix (fairseq's tools
print no traceback for ``SystemExit``):

* :func:`check_binary_split`: ``SPLIT.idx`` / ``SPLIT.bin`` that are not what
  ``fairseq-preprocess`` writes (e.g. text files renamed; fairseq fails with ``AssertionError:
  Index file doesn't match expected format``), or a ``.bin`` whose size its index does not
  account for.
* :func:`check_training_data`: a training split without a single word (a corpus of empty
  lines: fairseq trains on end-of-sentence symbols only and reports success), or a
  dictionary without word types.
* :func:`check_beam`: ``--beam`` below 1 (fairseq's beam search fails deep inside).
"""

import os

import numpy as np
from fairseq.data import indexed_dataset

PREPROCESS_HINT = "make it with fairseq-preprocess --only-source (or davam-prepare-corpus)"


def check_binary_split(prefix: str) -> None:
    """``prefix.idx`` + ``prefix.bin`` are a fairseq binary dataset (nothing if both are absent)."""
    idx, bin_ = indexed_dataset.index_file_path(prefix), indexed_dataset.data_file_path(prefix)
    has_idx, has_bin = os.path.isfile(idx), os.path.isfile(bin_)
    if not (has_idx or has_bin):
        return
    if not (has_idx and has_bin):
        missing, present = (bin_, idx) if has_idx else (idx, bin_)
        raise SystemExit(f"error: sentence_vae: {missing} is missing next to {present}: {PREPROCESS_HINT}")
    impl = indexed_dataset.infer_dataset_impl(prefix)
    if impl is None:
        raise SystemExit(
            f"error: sentence_vae: {idx} is not a fairseq binary index (a text file renamed to .idx?): {PREPROCESS_HINT}"
        )
    if impl != "mmap":
        return
    try:
        index = indexed_dataset.MMapIndexedDataset.Index(idx)
        n = len(index)
        expected = int(index._pointers[-1]) + int(index.sizes[-1]) * np.dtype(index.dtype).itemsize if n else 0
        del index
    except Exception as e:  # noqa: BLE001 - a damaged index gets the same one-line answer
        raise SystemExit(
            f"error: sentence_vae: {idx} is a damaged fairseq index ({type(e).__name__}): {PREPROCESS_HINT}"
        ) from None
    size = os.path.getsize(bin_)
    if size != expected:
        raise SystemExit(
            f"error: sentence_vae: {bin_} has {size} bytes but its index {idx} describes {expected} "
            f"(not the .bin written with this .idx): {PREPROCESS_HINT}"
        )


def word_types(dictionary) -> int:
    """Symbols of ``dictionary`` other than fairseq's specials and ``madeupword`` padding."""
    return sum(
        1 for i in range(dictionary.nspecial, len(dictionary)) if not dictionary[i].startswith("madeupword")
    )


def check_training_data(dataset, dictionary, data_path: str, split: str) -> None:
    """The training split has words and the dictionary has word types."""
    if word_types(dictionary) == 0:
        raise SystemExit(
            f"error: sentence_vae: {os.path.join(data_path, 'dict.txt')} has no word types (only fairseq's special and "
            f"padding symbols): the text given to fairseq-preprocess had no words"
        )
    sizes = np.asarray(dataset.sizes)
    if int(sizes.sum()) <= len(sizes):  # every sentence is EOS alone (or there are none)
        raise SystemExit(
            f"error: sentence_vae: training split {os.path.join(data_path, split)}.bin has no words "
            f"({len(sizes)} sentences, all empty lines): nothing to train on; check the --trainpref text"
        )


def check_beam(args) -> None:
    beam = getattr(args, "beam", 5)
    if beam is not None and beam < 1:
        raise SystemExit(f"error: --beam must be >= 1, got {beam}")
