"""Run fairseq's command-line tools (and Python functions) from a pipeline command, each in
its own process, without paying fairseq's import time per run.

Starting ``fairseq-train`` costs 8-12 s of imports on a 2-core machine, more than a small
training takes. :func:`run_tool` imports fairseq's CLI modules and the plugin once in the
calling process (:func:`warm_up`) and then forks a child per run, which calls the tool's
console-script entry point (``fairseq_cli.train:cli_main`` for ``fairseq-train``, ...) with
``sys.argv`` set to the command line, stdout and stderr written to a log file. The child is a
separate process exactly as a console-script run would be (its own global state, its own
exit status); it ends with ``os._exit`` after flushing its output, so no interpreter
shutdown runs in it. Where ``os.fork`` does not exist (not POSIX) the tool's console script
is run as a subprocess instead.

Callers must not have run torch computations in the calling process before forking (a
thread pool started there is not usable in the child); the pipeline commands only orchestrate.
"""

import atexit
import importlib
import io
import logging
import os
import signal
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

PLUGIN_DIR = str(Path(__file__).resolve().parents[1])

TOOLS = {
    "fairseq-train": "fairseq_cli.train:cli_main",
    "fairseq-validate": "fairseq_cli.validate:cli_main",
    "fairseq-generate": "fairseq_cli.generate:cli_main",
    "fairseq-preprocess": "fairseq_cli.preprocess:cli_main",
    "fairseq-eval-lm": "fairseq_cli.eval_lm:cli_main",
}

_warm = False


class ToolError(Exception):
    """A tool run that failed: the message is one line naming the run and its log."""


def can_fork():
    return hasattr(os, "fork")


def warm_up():
    """Import fairseq's CLI modules and the plugin (as ``--user-dir davam_plugin`` does) once."""
    global _warm
    if _warm or not can_fork():
        return
    from argparse import Namespace

    for module in {spec.split(":")[0] for spec in TOOLS.values()}:
        importlib.import_module(module)
    try:  # torch.optim imports it on first use (3-4 s): pay it once here
        import torch._dynamo  # noqa: F401
    except ImportError:  # pragma: no cover - older torch
        pass
    from fairseq import utils

    utils.import_user_module(Namespace(user_dir=PLUGIN_DIR))
    # importing fairseq leaves the root logger at DEBUG: keep matplotlib and PIL quiet
    for name in ("matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _warm = True


def _entry(tool):
    module, func = TOOLS[tool].split(":")
    return getattr(importlib.import_module(module), func)


def interpreter_exit_code(target) -> int:
    """Call ``target()`` and return the exit status the interpreter would give it as a script:
    0, the integer it returns (a ``davam-*`` ``main``), the ``SystemExit`` code, or 1 with
    ``SystemExit``'s message / the traceback of any other exception printed on stderr."""
    try:
        status = target()
    except SystemExit as e:  # as the interpreter treats an uncaught SystemExit
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - printed as the interpreter would
        traceback.print_exc()
        return 1
    return status if isinstance(status, int) else 0


def run_in_this_child(target, argv, log, append=False, stdin_path=None, run_atexit=False, err_log=None):
    """In a forked child: stdout + stderr into ``log`` (stderr into ``err_log`` instead where
    given; line-buffered), stdin from ``stdin_path`` (default /dev/null), fairseq's CLI
    logging, ``sys.argv = argv``; run ``target`` and end the process with
    :func:`interpreter_exit_code` (after the ``atexit`` handlers with ``run_atexit``, as an
    interpreter exit would run them). Never returns."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(log, flags, 0o644)
    os.dup2(fd, 1)
    if err_log is not None:
        os.close(fd)
        fd = os.open(err_log, flags, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    fd = os.open(stdin_path or os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    # fresh streams on the new descriptors (the parent's stdin may have read ahead)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", line_buffering=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    logging.basicConfig(  # what every fairseq_cli module sets up on import
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
        level=os.environ.get("LOGLEVEL", "INFO").upper(), stream=sys.stdout,
    )  # fmt: skip
    root.setLevel(os.environ.get("LOGLEVEL", "INFO").upper())
    sys.argv = list(argv)
    code = interpreter_exit_code(target)
    try:
        if run_atexit:
            atexit._run_exitfuncs()
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _fork_run(target, argv, log, append):
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which ends with os._exit
        run_in_this_child(target, argv, log, append)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def last_line(log):
    try:
        lines = [x for x in Path(log).read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def run_tool(tool, args, log, append=False, what=None):
    """Run ``tool args`` with stdout + stderr into ``log``; return the seconds it took.
    ToolError (one line: ``what``, the exit status, the log's last line, the log) on failure."""
    args = [str(a) for a in args]
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    if can_fork():
        warm_up()
        rc = _fork_run(_entry(tool), [tool, *args], str(log), append)
    else:  # pragma: no cover - non-POSIX
        exe = shutil.which(tool) or str(Path(sys.executable).parent / tool)
        with open(log, "a" if append else "w") as f:
            rc = subprocess.call([exe, *args], stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if rc != 0:
        raise ToolError(f"{what or tool} failed (exit status {rc}): {last_line(log)} [log: {log}]")
    return time.monotonic() - start


def run_function(func, log, what, *args):
    """Run ``func(*args)`` in a child process (output into ``log``); ToolError on failure."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    if can_fork():
        warm_up()
        rc = _fork_run(lambda: func(*args), [sys.argv[0]], str(log), False)
    else:  # pragma: no cover - non-POSIX
        with open(log, "w") as f:
            old = sys.stdout, sys.stderr
            sys.stdout = sys.stderr = f
            try:
                func(*args)
                rc = 0
            except Exception:  # noqa: BLE001
                traceback.print_exc()
                rc = 1
            finally:
                sys.stdout, sys.stderr = old
    if rc != 0:
        raise ToolError(f"{what} failed (exit status {rc}): {last_line(log)} [log: {log}]")
    return time.monotonic() - start
