"""The plugin's exit hook stops fairseq's background batch producer before shutdown.

Without it, a process that exits while ``BufferedIterator``'s daemon thread is still
collating (training stopped mid-epoch by --max-update) aborts with "terminate called without
an active exception" (exit code 134) on Python 3.11.
"""

import subprocess
import sys
import textwrap
import threading

from fairseq.data import iterators

from davam_plugin import clean_exit

from conftest import REPO, SUBPROCESS_ENV
from helpers import EndlessSource


def test_stop_background_consumers_joins_a_busy_producer():
    itr = iterators.BufferedIterator(4, EndlessSource())
    next(itr)
    consumer = itr._consumer
    assert consumer.is_alive()
    assert clean_exit.stop_background_consumers(timeout=10) == []
    assert not consumer.is_alive()
    assert not any(isinstance(t, iterators.BackgroundConsumer) for t in threading.enumerate())


SCRIPT = textwrap.dedent(
    f"""
    import sys
    sys.path.insert(0, {str(REPO / "tests")!r})
    import davam_plugin  # registers the exit hook, as --user-dir does
    from fairseq.data import iterators
    from helpers import EndlessSource

    itr = iterators.BufferedIterator(20, EndlessSource(64))
    next(itr)  # the producer is now busy filling the buffer; exit right away
    print("done")
    """
)


def test_process_exits_cleanly_while_the_producer_is_busy():
    # without the hook this script aborts (exit 134) in about 19 runs out of 20 here
    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=SUBPROCESS_ENV, cwd=REPO
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == "done"
        assert "terminate called" not in proc.stderr
