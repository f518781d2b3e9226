"""``davam-prepare-corpus``: turn a raw text corpus (one sentence per line) into fairseq binary data.

The result can be used directly by the plugin's ``sentence_vae`` task
(``fairseq-train DESTDIR --user-dir davam_plugin --task sentence_vae ...``).

Pipeline, applied to every given split (train, and optionally valid/test):

1. Moses tokenization with sacremoses (``MosesTokenizer(lang)``, no XML
   escaping).  Skipped with ``--no-tokenize`` (then whitespace is only
   normalized), e.g. for corpora that are already tokenized such as the
   Penn Treebank.
2. Lower-casing.  Skipped with ``--no-lowercase``.
3. Optional subword segmentation with sentencepiece, when
   ``--sentencepiece-vocab-size N`` is given: a model is trained on the
   processed training split, saved as ``DESTDIR/spm.model`` and
   ``DESTDIR/spm.vocab``, and every split is encoded to pieces (word
   boundaries are marked by U+2581 "▁"; to detokenize, concatenate the
   pieces and replace "▁" with a space).
   If sentencepiece makes fewer pieces than asked (a small training text), a one-line
   warning says how many.
4. ``fairseq-preprocess --only-source`` builds ``DESTDIR/dict.txt`` and the
   binary datasets ``DESTDIR/{train,valid,test}.{bin,idx}``.
5. The choices of steps 1-3 (tokenizer and its language, lower-casing, the sentencepiece
   model, the vocabulary options) are written to ``DESTDIR/preprocessing.json``
   (:mod:`davam_plugin.data.preprocessing`): ``davam-latent``, ``davam-adversary-view`` and
   ``fairseq-interactive --task sentence_vae`` apply them to the raw sentences they are given.

Empty input lines are kept as empty lines (each split keeps its line count).
Input that is not UTF-8 (reported with its line), a training text without a single word and
a dictionary without word types are refused with a one-line error.
Intermediate text files go to ``--workdir`` (default: a directory next to
DESTDIR named after it with a ``.tok`` suffix, e.g. ``data-bin/ptb.tok`` for
``data-bin/ptb``).

Example::

    davam-prepare-corpus --trainpref raw/train.txt \\
        --validpref raw/valid.txt --testpref raw/test.txt \\
        --destdir data-bin/mycorpus --workers 4
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.pool
import os
import subprocess
import sys
import time
from typing import Callable, Iterable, Iterator, Sequence

from davam_plugin.cli.common import atomic_write_text
from davam_plugin.data.preprocessing import PREPROCESSING_FILE, Preprocessing, make_line_processor

PROG = "davam-prepare-corpus"

SPLITS = ("train", "valid", "test")
#: Files written by fairseq-preprocess (besides the per-split binaries).
DICT_FILE = "dict.txt"
#: Number of special symbols fairseq's Dictionary adds (<s>, <pad>, </s>, <unk>).
N_FAIRSEQ_SPECIALS = 4
MADEUP_PREFIX = "madeupword"


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Tokenize (sacremoses), lower-case and optionally "
            "sentencepiece-encode a raw text corpus with one sentence per "
            "line, then binarize it with fairseq-preprocess --only-source "
            "for the sentence_vae task."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    io = parser.add_argument_group("input / output")
    io.add_argument("--trainpref", required=True, metavar="FILE",
                    help="raw training text, one sentence per line")
    io.add_argument("--validpref", metavar="FILE",
                    help="raw validation text (optional)")
    io.add_argument("--testpref", metavar="FILE",
                    help="raw test text (optional)")
    io.add_argument("--destdir", required=True, metavar="DIR",
                    help="output directory for dict.txt and the binary "
                         "datasets (and spm.model/spm.vocab)")
    io.add_argument("--workdir", metavar="DIR",
                    help="directory for the intermediate processed text "
                         "files (default: DESTDIR with a '.tok' suffix, "
                         "i.e. a sibling of DESTDIR)")
    io.add_argument("--overwrite", action="store_true",
                    help="replace existing data in DESTDIR (otherwise an "
                         "existing DESTDIR/dict.txt is an error)")
    io.add_argument("--max-lines", type=positive_int, metavar="N",
                    help="use only the first N lines of every split "
                         "(for quick experiments)")

    text = parser.add_argument_group("text processing")
    text.add_argument("--no-tokenize", action="store_true",
                      help="do not run the Moses tokenizer (input is already "
                           "tokenized; whitespace is still normalized)")
    text.add_argument("--no-lowercase", action="store_true",
                      help="keep the original casing")
    text.add_argument("--lang", default="en",
                      help="language code for the Moses tokenizer")

    spm = parser.add_argument_group("sentencepiece (optional)")
    spm.add_argument("--sentencepiece-vocab-size", type=positive_int,
                     metavar="N",
                     help="train a sentencepiece model with (at most) N "
                          "pieces on the processed training split and "
                          "encode all splits with it")
    spm.add_argument("--sentencepiece-model-type", default="unigram",
                     choices=["unigram", "bpe"],
                     help="sentencepiece model type")

    fs = parser.add_argument_group("fairseq-preprocess")
    fs.add_argument("--nwordssrc", type=int, metavar="N",
                    help="keep only the N most frequent words in dict.txt "
                         "(passed to fairseq-preprocess)")
    fs.add_argument("--thresholdsrc", type=int, metavar="N",
                    help="map words occurring <= N times to <unk> "
                         "(passed to fairseq-preprocess)")
    fs.add_argument("--workers", type=positive_int, default=1,
                    help="number of parallel processes for tokenization, "
                         "sentencepiece training and fairseq-preprocess")
    fs.add_argument("--quiet", action="store_true",
                    help="hide the logs of fairseq-preprocess (unless it fails) "
                         "and of sentencepiece training")
    return parser


def validate_args(parser: argparse.ArgumentParser,
                  args: argparse.Namespace) -> dict[str, str]:
    """Check user input; return ``{split: input path}``.

    Problems are reported with ``parser.error`` (one line, exit status 2).
    """
    inputs: dict[str, str] = {}
    for split in SPLITS:
        path = getattr(args, f"{split}pref")
        if path is None:
            continue
        if not os.path.isfile(path):
            parser.error(f"--{split}pref: file not found: {path}")
        invalid, n_lines, has_words = scan_text(path, args.max_lines)
        if invalid is not None:
            line, column, reason = invalid
            parser.error(f"--{split}pref: {path} is not valid UTF-8: line {line}, "
                         f"byte {column} ({reason})")
        if split == "train" and not has_words:
            first = f"the first {n_lines} lines" if args.max_lines else f"all {n_lines} lines"
            parser.error(f"--trainpref: {path} has no words ({first} are "
                         "empty): nothing to train on")
        inputs[split] = path

    if os.path.exists(args.destdir) and not os.path.isdir(args.destdir):
        parser.error(f"--destdir: not a directory: {args.destdir}")
    dict_path = os.path.join(args.destdir, DICT_FILE)
    if os.path.exists(dict_path) and not args.overwrite:
        parser.error(f"--destdir: {dict_path} already exists "
                     "(pass --overwrite to replace it)")

    workdir = default_workdir(args)
    for split, path in inputs.items():
        for out in intermediate_paths(workdir, split,
                                      args.sentencepiece_vocab_size):
            if os.path.realpath(out) == os.path.realpath(path):
                parser.error(f"--{split}pref: {path} would be overwritten "
                             "by an intermediate file; choose another "
                             "--workdir")
    for opt in ("nwordssrc", "thresholdsrc"):
        value = getattr(args, opt)
        if value is not None and value < 0:
            parser.error(f"--{opt} must be >= 0")
    return inputs


def scan_text(path: str, max_lines: int | None,
              ) -> tuple[tuple[int, int, str] | None, int, bool]:
    """(first invalid UTF-8 as (line, byte in line, reason) or None, lines read,
    whether any line has a word); lines and bytes count from 1."""
    n_lines, has_words = 0, False
    with open(path, "rb") as f:
        for n_lines, raw in enumerate(f, start=1):
            if max_lines is not None and n_lines > max_lines:
                n_lines -= 1
                break
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return (n_lines, exc.start + 1, exc.reason), n_lines, has_words
            has_words = has_words or bool(line.split())
    return None, n_lines, has_words


def default_workdir(args: argparse.Namespace) -> str:
    """``--workdir`` or, by default, ``DESTDIR.tok`` next to DESTDIR."""
    if args.workdir:
        return args.workdir
    return os.path.normpath(os.path.abspath(args.destdir)) + ".tok"


def intermediate_paths(workdir: str, split: str,
                       spm_vocab_size: int | None) -> list[str]:
    """Text files written for ``split``; the last one is fed to fairseq."""
    paths = [os.path.join(workdir, f"{split}.txt")]
    if spm_vocab_size:
        paths.append(os.path.join(workdir, f"{split}.spm.txt"))
    return paths


# ---------------------------------------------------------------------------
# Text processing
# ---------------------------------------------------------------------------

# Per-process state for the worker pool (a tokenizer is built once per process).
_PROCESSOR: Callable[[str], str] | None = None


def make_processor(tokenize: bool, lowercase: bool,
                   lang: str) -> Callable[[str], str]:
    """One raw line -> one processed line (whitespace, Moses, lower-casing): the shared
    :func:`davam_plugin.data.preprocessing.make_line_processor`."""
    return make_line_processor(tokenize, lowercase, lang)


def _init_worker(tokenize: bool, lowercase: bool, lang: str) -> None:
    global _PROCESSOR
    _PROCESSOR = make_processor(tokenize, lowercase, lang)


def _process_line(line: str) -> str:
    assert _PROCESSOR is not None
    return _PROCESSOR(line)


def read_lines(path: str, max_lines: int | None) -> Iterator[str]:
    """Lines of ``path`` without their line terminators."""
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if max_lines is not None and i >= max_lines:
                break
            yield line.rstrip("\n")


def write_lines(path: str, lines: Iterable[str]) -> tuple[int, int, int]:
    """Write lines (atomically); return (number of lines, tokens, empty lines)."""
    counts = [0, 0, 0]

    def write(f):
        for line in lines:
            f.write(line + "\n")
            counts[0] += 1
            n_toks = len(line.split())
            counts[1] += n_toks
            counts[2] += n_toks == 0

    atomic_write_text(path, write)
    return counts[0], counts[1], counts[2]


def process_file(src: str, dst: str, args: argparse.Namespace,
                 pool: multiprocessing.pool.Pool | None,
                 ) -> tuple[int, int, int]:
    """Tokenize / lower-case ``src`` into ``dst``; return its statistics."""
    lines = read_lines(src, args.max_lines)
    if pool is not None:
        processed: Iterable[str] = pool.imap(_process_line, lines,
                                             chunksize=512)
    else:
        process = make_processor(not args.no_tokenize,
                                 not args.no_lowercase, args.lang)
        processed = map(process, lines)
    return write_lines(dst, processed)


def train_sentencepiece(train_text: str, destdir: str,
                        args: argparse.Namespace) -> str:
    """Train a sentencepiece model on ``train_text``; return the model path."""
    import sentencepiece as spm

    prefix = os.path.join(destdir, "spm")
    spm.SentencePieceTrainer.train(
        input=train_text,
        model_prefix=prefix,
        vocab_size=args.sentencepiece_vocab_size,
        model_type=args.sentencepiece_model_type,
        character_coverage=1.0,
        # Allow fewer pieces than requested on small corpora instead of failing.
        hard_vocab_limit=False,
        # fairseq adds its own <s>, </s> and <pad>; keep only <unk>.
        bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0,
        num_threads=args.workers,
        minloglevel=2 if args.quiet else 0,
    )
    return prefix + ".model"


def sentencepiece_pieces(model: str) -> int:
    """Number of pieces of a sentencepiece model (``<unk>`` included)."""
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=model).get_piece_size()


def encode_sentencepiece(model: str, src: str, dst: str,
                         ) -> tuple[int, int, int]:
    """Encode every line of ``src`` into space-separated pieces in ``dst``."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model)

    def encode(lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            yield " ".join(sp.encode(line, out_type=str)) if line else ""

    return write_lines(dst, encode(read_lines(src, None)))


# ---------------------------------------------------------------------------
# fairseq-preprocess
# ---------------------------------------------------------------------------


def remove_previous_outputs(destdir: str) -> None:
    """Delete files of an earlier run that fairseq-preprocess would refuse
    to overwrite (dict.txt) or that could be left stale (split binaries)."""
    names = [DICT_FILE, "spm.model", "spm.vocab", PREPROCESSING_FILE]
    names += [f"{split}.{ext}" for split in SPLITS for ext in ("bin", "idx")]
    for name in names:
        path = os.path.join(destdir, name)
        if os.path.isfile(path):
            os.remove(path)


def run_fairseq_preprocess(prefs: dict[str, str], args: argparse.Namespace,
                           ) -> None:
    """Run ``fairseq-preprocess --only-source`` with this interpreter."""
    cmd = [sys.executable, "-m", "fairseq_cli.preprocess", "--only-source",
           "--destdir", args.destdir, "--workers", str(args.workers)]
    for split, path in prefs.items():
        cmd += [f"--{split}pref", path]
    if args.nwordssrc is not None:
        cmd += ["--nwordssrc", str(args.nwordssrc)]
    if args.thresholdsrc is not None:
        cmd += ["--thresholdsrc", str(args.thresholdsrc)]
    print("running: " + " ".join(cmd), flush=True)
    if not args.quiet:
        subprocess.run(cmd, check=True)
        return
    # Quiet: capture fairseq's log and only show it when something failed.
    proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout)
        raise subprocess.CalledProcessError(proc.returncode, cmd)


def dictionary_size(destdir: str) -> tuple[int, int]:
    """(entries in dict.txt, of which fairseq padding ``madeupword`` entries)."""
    n_entries = n_madeup = 0
    with open(os.path.join(destdir, DICT_FILE), encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            n_entries += 1
            n_madeup += line.startswith(MADEUP_PREFIX)
    return n_entries, n_madeup


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    inputs = validate_args(parser, args)
    start = time.time()

    workdir = default_workdir(args)
    os.makedirs(workdir, exist_ok=True)
    os.makedirs(args.destdir, exist_ok=True)
    if args.overwrite:
        remove_previous_outputs(args.destdir)

    steps = []
    if not args.no_tokenize:
        steps.append(f"moses-tokenize({args.lang})")
    if not args.no_lowercase:
        steps.append("lowercase")
    print(f"step 1-2: {' + '.join(steps) or 'whitespace normalization'} "
          f"-> {workdir}", flush=True)

    stats: dict[str, tuple[int, int, int]] = {}
    prefs: dict[str, str] = {}
    pool = None
    if args.workers > 1 and not args.no_tokenize:
        pool = multiprocessing.Pool(
            args.workers, initializer=_init_worker,
            initargs=(True, not args.no_lowercase, args.lang))
    try:
        for split, src in inputs.items():
            dst = intermediate_paths(workdir, split, None)[0]
            try:
                stats[split] = process_file(src, dst, args, pool)
            except UnicodeDecodeError as exc:
                parser.error(f"--{split}pref: {src} is not valid UTF-8 "
                             f"({exc.reason} at byte {exc.start})")
            prefs[split] = dst
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    if args.sentencepiece_vocab_size:
        print(f"step 3: training sentencepiece "
              f"({args.sentencepiece_model_type}, "
              f"vocab size {args.sentencepiece_vocab_size})", flush=True)
        model = train_sentencepiece(prefs["train"], args.destdir, args)
        for split in list(prefs):
            dst = intermediate_paths(workdir, split,
                                     args.sentencepiece_vocab_size)[-1]
            stats[split] = encode_sentencepiece(model, prefs[split], dst)
            prefs[split] = dst
        print(f"  sentencepiece model: {model}", flush=True)
        n_pieces = sentencepiece_pieces(model)
        if n_pieces < args.sentencepiece_vocab_size:
            print(f"{PROG}: warning: sentencepiece made {n_pieces} pieces, fewer than the "
                  f"{args.sentencepiece_vocab_size} of --sentencepiece-vocab-size (the training "
                  "text has too few distinct pieces)", file=sys.stderr, flush=True)

    print("step 4: fairseq-preprocess --only-source", flush=True)
    try:
        run_fairseq_preprocess(prefs, args)
    except subprocess.CalledProcessError as exc:
        print(f"{parser.prog}: error: fairseq-preprocess failed with exit "
              f"status {exc.returncode}", file=sys.stderr)
        return 1

    n_entries, n_madeup = dictionary_size(args.destdir)
    if n_entries == n_madeup:
        print(f"{parser.prog}: error: {os.path.join(args.destdir, DICT_FILE)} "
              "has no word types (--nwordssrc/--thresholdsrc left none): "
              "nothing to train on", file=sys.stderr)
        return 1
    spm_info = None
    if args.sentencepiece_vocab_size:
        spm_info = {"model": os.path.basename(model),
                    "model_type": args.sentencepiece_model_type,
                    "vocab_size_requested": args.sentencepiece_vocab_size,
                    "pieces": n_pieces}
    stored = Preprocessing(tokenize=not args.no_tokenize, lang=args.lang,
                           lowercase=not args.no_lowercase, sentencepiece=spm_info,
                           nwordssrc=args.nwordssrc, thresholdsrc=args.thresholdsrc,
                           max_lines=args.max_lines).save(args.destdir)
    print(f"done in {time.time() - start:.1f}s: {args.destdir}")
    for split, (n_lines, n_tokens, n_empty) in stats.items():
        print(f"  {split}: {n_lines} lines ({n_empty} empty), "
              f"{n_tokens} tokens -> {prefs[split]}")
    print(f"  dict.txt: {n_entries} entries "
          f"({n_entries - n_madeup} word types + {n_madeup} padding "
          f"'{MADEUP_PREFIX}' entries); "
          f"vocabulary size with the {N_FAIRSEQ_SPECIALS} fairseq specials: "
          f"{n_entries + N_FAIRSEQ_SPECIALS}")
    print(f"  {PREPROCESSING_FILE}: {stored} (applied to raw input by davam-latent, "
          "davam-adversary-view and fairseq-interactive)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
