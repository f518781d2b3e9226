"""Remember which dict.txt a model was trained with, and refuse another one at load time.

The model keeps the CRC-32 of its dictionary's symbols (in order) as an integer buffer named
``dictionary_version``. fairseq's ``--store-ema`` averages every state entry except those
whose name contains "version", so the name also keeps this integer out of the weight EMA.
Checkpoints written before the buffer existed load as if it matched.
"""

import zlib

import torch


def dictionary_checksum(dictionary) -> int:
    """CRC-32 of the dictionary's symbols in order."""
    return zlib.crc32("\n".join(dictionary.symbols).encode("utf-8"))


class DictionaryVersionMixin:
    """For fairseq models with ``encoder.embed_tokens``; call ``_register_dictionary_version``
    in ``__init__`` and let :meth:`load_state_dict` check incoming checkpoints."""

    KEY = "dictionary_version"
    MODEL_NAME = "this"

    def _register_dictionary_version(self, dictionary) -> None:
        self.register_buffer(self.KEY, torch.tensor(dictionary_checksum(dictionary)))

    def _check_dictionary(self, state_dict):
        if "dictionary_checksum" in state_dict:  # the buffer's first name (development versions)
            state_dict = dict(state_dict)
            state_dict[self.KEY] = state_dict.pop("dictionary_checksum")
        rows = state_dict.get("encoder.embed_tokens.weight")
        n = self.encoder.embed_tokens.num_embeddings
        if (self.KEY in state_dict and int(state_dict[self.KEY]) != int(getattr(self, self.KEY))) or (
            rows is not None and rows.size(0) != n
        ):
            raise SystemExit(
                f"error: the dictionary of DATA ({n} types, dict.txt) differs from the one {self.MODEL_NAME} "
                "checkpoint was trained with: pass the data directory used for training"
            )
        if self.KEY not in state_dict:  # checkpoints written before the buffer existed
            state_dict = dict(state_dict)
            state_dict[self.KEY] = getattr(self, self.KEY)
        return state_dict

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        state_dict = self._check_dictionary(state_dict)
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)
