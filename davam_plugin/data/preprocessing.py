"""The corpus preparation stored with binarized data, applied again to raw text.

``davam-prepare-corpus`` turns raw lines into the tokens of ``dict.txt``: whitespace
normalized, Moses-tokenized (sacremoses, ``--lang``; unless ``--no-tokenize``), lower-cased
(unless ``--no-lowercase``) and optionally sentencepiece-encoded (``DATA/spm.model``). It
writes these choices to ``DATA/preprocessing.json``::

    {"format": 1, "tokenize": true, "lang": "en", "lowercase": true,
     "sentencepiece": {"model": "spm.model", "model_type": "unigram",
                       "vocab_size_requested": 8000, "pieces": 8000} | null,
     "nwordssrc": null, "thresholdsrc": null, "max_lines": null}

(paths relative to DATA). Everything that takes raw sentences for a model trained on DATA
applies the same transformation with :func:`load_preprocessing` - ``davam-latent``,
``davam-adversary-view``, and ``fairseq-interactive`` through the task's
:func:`raw_text_encoder` - so cased raw text gives the tokens the model was trained on instead
of ``<unk>``. Data binarized otherwise (plain ``fairseq-preprocess``) has no such file: the
text is used as given.

:func:`make_line_processor` is the one implementation of steps 1-2 (whitespace, Moses,
lower-casing) used both by ``davam-prepare-corpus`` and here.
"""

import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Callable, Optional

from davam_plugin.atomic_checkpoint import atomic_write

logger = logging.getLogger(__name__)

PREPROCESSING_FILE = "preprocessing.json"
FORMAT = 1
WORD_BOUNDARY = "\u2581"  # sentencepiece's "▁"


def make_line_processor(tokenize: bool, lowercase: bool, lang: str = "en") -> Callable[[str], str]:
    """A function mapping one raw line to one processed line (steps 1-2 of
    ``davam-prepare-corpus``): whitespace normalized to single spaces, then Moses tokenization
    (no XML escaping) if ``tokenize``, then lower-casing if ``lowercase``. The result never
    contains a line break, so line counts are preserved; an empty line stays empty."""
    tokenizer = None
    if tokenize:
        from sacremoses import MosesTokenizer

        tokenizer = MosesTokenizer(lang=lang)

    def process(line: str) -> str:
        line = " ".join(line.split())
        if not line:
            return ""
        if tokenizer is not None:
            line = tokenizer.tokenize(line, escape=False, return_str=True)
            line = " ".join(line.split())
        if lowercase:
            line = line.lower()
        return line

    return process


class PreprocessingError(ValueError):
    """A ``preprocessing.json`` that cannot be used (message names the file)."""


@dataclass
class Preprocessing:
    """The preparation choices of one data directory; call it on a raw line."""

    tokenize: bool = True
    lang: str = "en"
    lowercase: bool = True
    sentencepiece: Optional[dict] = None  # {"model": relative path, "model_type", "vocab_size_requested", "pieces"}
    nwordssrc: Optional[int] = None
    thresholdsrc: Optional[int] = None
    max_lines: Optional[int] = None
    data_dir: Optional[str] = None  # where it was read from (not stored)

    def to_json(self) -> dict:
        doc = {"format": FORMAT, **asdict(self)}
        doc.pop("data_dir")
        return doc

    def save(self, data_dir: str) -> str:
        """Write ``data_dir/preprocessing.json`` (atomically); return its path."""
        path = os.path.join(data_dir, PREPROCESSING_FILE)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        text = json.dumps(self.to_json(), indent=2) + "\n"
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        return path

    @classmethod
    def from_json(cls, doc: dict, data_dir: Optional[str] = None, source: str = PREPROCESSING_FILE):
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PreprocessingError(f"{source}: not a format-{FORMAT} preprocessing file of davam-prepare-corpus")
        fields = {k: doc[k] for k in ("tokenize", "lang", "lowercase", "sentencepiece", "nwordssrc",
                                      "thresholdsrc", "max_lines") if k in doc}  # fmt: skip
        prep = cls(**fields, data_dir=data_dir)
        if prep.sentencepiece is not None:
            if not isinstance(prep.sentencepiece, dict) or not prep.sentencepiece.get("model"):
                raise PreprocessingError(f"{source}: 'sentencepiece' must name its 'model'")
            model = prep.sentencepiece_model_path()
            if not os.path.isfile(model):
                raise PreprocessingError(f"{source}: its sentencepiece model {model} is missing")
        return prep

    def sentencepiece_model_path(self) -> Optional[str]:
        if not self.sentencepiece:
            return None
        return os.path.join(self.data_dir or "", self.sentencepiece["model"])

    def describe(self) -> str:
        """e.g. ``moses tokenizer (en) + lower-case + sentencepiece (DATA/spm.model)``."""
        steps = [f"moses tokenizer ({self.lang})"] if self.tokenize else ["whitespace normalization"]
        if self.lowercase:
            steps.append("lower-case")
        if self.sentencepiece:
            steps.append(f"sentencepiece ({self.sentencepiece_model_path()})")
        return " + ".join(steps)

    def __call__(self, line: str) -> str:
        """The tokens of ``line`` as ``davam-prepare-corpus`` made them for the data."""
        if not hasattr(self, "_process"):
            self._process = make_line_processor(self.tokenize, self.lowercase, self.lang)
            self._spm = None
            if self.sentencepiece:
                import sentencepiece as spm

                self._spm = spm.SentencePieceProcessor(model_file=self.sentencepiece_model_path())
        line = self._process(line)
        if self._spm is not None and line:
            line = " ".join(self._spm.encode(line, out_type=str))
        return line


def first_data_dir(data: str) -> str:
    """The first of fairseq's colon-separated data directories."""
    return data.split(os.pathsep)[0] if data else data


def load_preprocessing(data: str) -> Optional[Preprocessing]:
    """``DATA/preprocessing.json`` (the first directory of a colon-separated DATA) as a
    :class:`Preprocessing`, or None when DATA has none. PreprocessingError when it is there
    but cannot be used."""
    data_dir = first_data_dir(data)
    path = os.path.join(data_dir, PREPROCESSING_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise PreprocessingError(f"{path} cannot be read: {e}") from None
    return Preprocessing.from_json(doc, data_dir, source=path)


def raw_text_encoder(data: str) -> Callable[[str], str]:
    """For the ``sentence_vae`` task (``fairseq-interactive``): the function applying DATA's
    stored preparation to a typed line (logged once), or the identity when DATA has no
    ``preprocessing.json``. A broken file is a one-line ``SystemExit``."""
    try:
        prep = load_preprocessing(data)
    except PreprocessingError as e:
        raise SystemExit(f"error: {e}") from None
    if prep is None:
        return lambda line: line
    logger.info(f"raw input lines get the corpus preparation of {prep.data_dir}: {prep.describe()}")
    return prep
