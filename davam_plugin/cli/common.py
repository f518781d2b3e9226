"""What the ``davam-*`` commands share: logging set-up, atomic output files, JSON output,
progress bars and the one-line error of a bad input.

* :func:`setup_logging`: progress goes to stderr in fairseq's log format (results go to
  stdout). Importing the plugin imports fairseq, whose import already configured the root
  logger; the commands replace that configuration (``force``).
* :func:`atomic_write_text` / :func:`write_json`: output files are written through
  :func:`davam_plugin.atomic_checkpoint.atomic_write` (``NAME.tmp``, fsync, ``os.replace``):
  a killed command leaves the previous file or none, never a partial one. A path that is not
  a regular file (``/dev/stdout``) is written directly.
* :func:`progress`: a tqdm bar on stderr with the time left; off when stderr is not a
  terminal (tqdm's ``disable=None``).
"""

import io
import json
import logging
import os
import sys
from typing import Callable, Iterable, Optional, TextIO

LOG_FORMAT = "%(asctime)s | %(levelname)s | %(name)s | %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S"


def setup_logging(level: int = logging.INFO) -> None:
    """fairseq's log format on stderr at ``level``; fairseq's tensorboardX notice silenced."""
    logging.basicConfig(format=LOG_FORMAT, datefmt=LOG_DATEFMT, level=level, stream=sys.stderr, force=True)
    logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)
    for name in ("matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)


def fail(prog: str, message: str, status: int = 2):
    """End the command with ``PROG: error: MESSAGE`` on stderr (one line) and ``status``."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def exit_status(prog: str, body: Callable[[], None], expected: tuple = ()) -> int:
    """Run ``body``; an ``expected`` exception or an ``OSError`` (a file that cannot be read or
    written) becomes one ``PROG: error: ...`` line on stderr and status 2, else status 0."""
    try:
        body()
    except expected as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    return 0


def atomic_write_text(path: str, write: Callable[[TextIO], None], encoding: str = "utf-8") -> None:
    """``write(text file)`` into ``path`` atomically (see the module docstring); ``write`` may
    stream, nothing is kept in memory. Line ends are written as ``\\n``."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isfile(path):  # /dev/stdout, a FIFO
        with open(path, "w", encoding=encoding, newline="\n") as f:
            write(f)
        return
    from davam_plugin.atomic_checkpoint import atomic_write

    def write_binary(binary):
        text = io.TextIOWrapper(binary, encoding=encoding, newline="\n", write_through=False)
        try:
            write(text)
            text.flush()
        finally:
            text.detach()  # atomic_write closes the binary file

    atomic_write(path, write_binary)


def write_lines(path: str, lines: Iterable[str]) -> None:
    """Each of ``lines`` plus ``\\n`` into ``path``, atomically."""
    atomic_write_text(path, lambda f: f.writelines(line + "\n" for line in lines))


def write_json(path: Optional[str], obj) -> None:
    """Write ``obj`` as indented JSON to ``path``, atomically (nothing if ``path`` is None).
    The directory is created when missing."""
    if not path:
        return
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    atomic_write_text(path, lambda f: (json.dump(obj, f, indent=2), f.write("\n")))


def progress(total: int, desc: str, unit: str = "it", initial: int = 0):
    """A tqdm bar on stderr (elapsed < time left), shown only when stderr is a terminal;
    ``initial``: the part already done (a resumed job)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None, dynamic_ncols=True,
                smoothing=0.1, mininterval=1.0, initial=initial)  # fmt: skip


def device_for(cpu: bool):
    """``cuda`` when there is a GPU and ``--cpu`` was not given, else ``cpu``."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")


def sentence_preparer(data: str, disabled: bool = False):
    """The function that gives a raw sentence the corpus preparation stored in
    ``DATA/preprocessing.json`` (:mod:`davam_plugin.data.preprocessing`), logged once; the
    identity with ``disabled`` (``--no-preprocess``) or for data without that file.
    A broken file ends the command with one error line."""
    from davam_plugin.data.preprocessing import PREPROCESSING_FILE, PreprocessingError, load_preprocessing

    log = logging.getLogger("davam_plugin.cli")
    if disabled:
        log.info("--no-preprocess: sentences are used as given (already prepared as the training data)")
        return lambda line: " ".join(line.split())
    try:
        prep = load_preprocessing(data)
    except PreprocessingError as e:
        raise SystemExit(f"error: {e} (or pass --no-preprocess)") from None
    if prep is None:
        log.info(f"{data} has no {PREPROCESSING_FILE} (not made by davam-prepare-corpus): sentences are used as given")
        return lambda line: " ".join(line.split())
    log.info(f"sentences get the preparation of {data} ({PREPROCESSING_FILE}): {prep.describe()}")
    return prep


def unknown_words(dictionary, sentence: str):
    """The words of a prepared sentence that ``dictionary`` maps to ``<unk>``, in order."""
    return [w for w in sentence.split() if dictionary.index(w) == dictionary.unk()]


def warn_unknown_words(dictionary, label: str, sentence: str) -> None:
    """One warning line naming the words of ``sentence`` that become ``<unk>`` (if any)."""
    unknown = unknown_words(dictionary, sentence)
    if unknown:
        shown = ", ".join(repr(w) for w in unknown[:8]) + (", ..." if len(unknown) > 8 else "")
        logging.getLogger("davam_plugin.cli").warning(
            f"{label}: {len(unknown)} word(s) not in the dictionary, read as <unk>: {shown}"
        )
