"""fairseq's command-line tools in processes forked from one warm interpreter (for fast tests).

Starting a fairseq tool costs 8-12 s of imports on the project's 2-core machine, longer than
most of what the bad-input and kill tests run. :class:`ForkServer` starts this file once as a
server: it imports fairseq's CLI modules and the plugin (exactly as ``--user-dir
davam_plugin`` does) and then, per request, forks a child that runs the tool's console-script
entry point (``fairseq_cli.train:cli_main`` for ``fairseq-train``, ...,
``davam_plugin.cli.evaluate:main`` for ``davam-evaluate``, ...; ``python SCRIPT`` runs the
script as ``__main__``) with ``sys.argv`` set to the command line, fairseq's
logging set up as its CLI modules do, stdin from a file (or /dev/null) and stdout + stderr in
a log file. The child ends as the interpreter would: exit status 0 (or the integer a
``davam-*`` ``main`` returns), the ``SystemExit`` code,
or 1 with ``SystemExit``'s message / the traceback of any other exception on stderr, after
running the ``atexit`` handlers. Children are real processes: the tests SIGKILL them.

Protocol (one JSON object per line): ``{"start": [tool, args...], "log": path, "err":
path|null, "input": path|null}`` -> ``{"pid": N}`` (stderr into "err" where given, else into
"log" with stdout); ``{"wait": N}`` -> ``{"rc": code}`` (``-signal`` if killed). The client
is thread-safe: requests from several threads are answered in turn.
"""

import json
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PLUGIN = str(REPO / "davam_plugin")


class CliResult:
    def __init__(self, returncode, output):
        self.returncode, self.output = returncode, output


class ForkServer:
    """Client side: ``run(tool, *args)`` -> CliResult; ``start``/``wait`` for runs to kill."""

    def __init__(self, workdir, env):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.workdir / "server.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, env=env, cwd=REPO,
        )  # fmt: skip
        self._n = 0
        self._lock = threading.Lock()  # one request and its reply at a time

    def _ask(self, request, timeout=None):
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server died:\n{(self.workdir / 'server.log').read_text()[-3000:]}")
        return json.loads(line)

    def start(self, tool, *args, input=None, log=None, separate_stderr=False):
        """Fork ``tool args``; return (pid, log path). With ``separate_stderr`` its stderr goes to
        the log path with suffix ``.err`` instead of into the log."""
        with self._lock:
            self._n += 1
            n = self._n
        log = Path(log or self.workdir / f"run{n}.log")
        log.unlink(missing_ok=True)
        err = log.with_suffix(".err") if separate_stderr else None
        stdin = None
        if input is not None:
            stdin = self.workdir / f"run{n}.in"
            stdin.write_text(input, encoding="utf-8")
        request = {"start": [tool, *map(str, args)], "log": str(log), "err": err and str(err), "input": stdin and str(stdin)}
        with self._lock:
            reply = self._ask(request, 300)
        if reply is None:
            raise RuntimeError("fork server did not answer (still warming up after 300 s?)")
        return reply["pid"], log

    def wait(self, pid, timeout=300):
        """Exit status of ``pid`` (``-signal`` if killed); SIGKILL it after ``timeout`` s."""
        with self._lock:
            reply = self._ask({"wait": pid}, timeout)
            if reply is None:
                os.kill(pid, signal.SIGKILL)
                reply = json.loads(self.proc.stdout.readline())
                raise TimeoutError(f"pid {pid} ran over {timeout} s and was killed")
        return reply["rc"]

    def run(self, tool, *args, input=None, timeout=300):
        pid, log = self.start(tool, *args, input=input)
        rc = self.wait(pid, timeout)
        return CliResult(rc, log.read_text(errors="replace"))

    def run_captured(self, tool, *args, input=None, timeout=600):
        """``tool args`` with stdout and stderr apart: (exit status, stdout, stderr)."""
        pid, log = self.start(tool, *args, input=input, separate_stderr=True)
        err = log.with_suffix(".err")
        try:
            rc = self.wait(pid, timeout)
            return rc, log.read_text(errors="replace"), err.read_text(errors="replace")
        finally:
            log.unlink(missing_ok=True)
            err.unlink(missing_ok=True)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


# ----------------------------------------------------------------------------- server side
def _entry_points():
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="console_scripts") if ep.name.startswith(("fairseq", "davam-"))}


def _script_entry(argv):
    """``python SCRIPT ARGS...``: run SCRIPT as __main__ with its directory first on sys.path."""
    import runpy

    script = argv[0]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    return lambda: runpy.run_path(script, run_name="__main__")


def _run_child(entry, argv, log, err_log, stdin_path):
    """The child's whole life is the plugin's own (davam_plugin.cli.fairseq_runner), with the
    ``atexit`` handlers run as at an interpreter exit."""
    from davam_plugin.cli.fairseq_runner import run_in_this_child

    if entry is None:  # python SCRIPT ...
        argv = argv[1:]
        main = _script_entry(argv)
    else:
        main = entry.load()
    run_in_this_child(main, argv, log, stdin_path=stdin_path, run_atexit=True, err_log=err_log)


def serve():
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints of the server go to its log, not into the protocol
    from argparse import Namespace

    import fairseq_cli.generate  # noqa: F401  (each configures logging on import)
    import fairseq_cli.interactive  # noqa: F401
    import fairseq_cli.preprocess  # noqa: F401
    import fairseq_cli.train  # noqa: F401
    import fairseq_cli.validate  # noqa: F401
    import torch._dynamo  # noqa: F401  (torch.optim imports it on first use: 3-4 s)
    from fairseq import utils

    utils.import_user_module(Namespace(user_dir=PLUGIN))  # as --user-dir does
    entries = _entry_points()
    for line in proto_in:
        request = json.loads(line)
        if "start" in request:
            tool, *args = request["start"]
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                proto_in.close()
                proto_out.close()
                _run_child(None if tool == "python" else entries[tool], [tool, *args], request["log"], request.get("err"), request.get("input"))
            reply = {"pid": pid}
        else:
            _, status = os.waitpid(request["wait"], 0)
            reply = {"rc": os.waitstatus_to_exitcode(status)}
        proto_out.write((json.dumps(reply) + "\n").encode())
        proto_out.flush()
    os._exit(0)  # the client is gone; skip the slow interpreter teardown


if __name__ == "__main__":
    serve()
