"""Stop fairseq's background batch producers before the interpreter shuts down.

fairseq wraps every epoch iterator in ``fairseq.data.iterators.BufferedIterator``, whose
``BackgroundConsumer`` is a *daemon* thread that collates up to ``--data-buffer-size``
batches ahead of the trainer. When training stops in the middle of an epoch
(``--max-update``, ``--stop-time-hours``) that thread may still be collating when Python
exits. On Python 3.11 a daemon thread that asks for the GIL after finalization has begun is
ended with ``pthread_exit``; when that happens inside a PyTorch C++ destructor (freeing a
tensor view) the forced unwind meets a ``noexcept`` frame and the whole process aborts with
"terminate called without an active exception" (exit code 134), after training has finished
and the checkpoints are written. Scripts and Makefiles then see a failed run.

:func:`stop_background_consumers` runs at exit (``atexit`` handlers run after non-daemon
threads are joined and *before* finalization): it tells every live consumer to stop after
the batch it is producing, empties its queue so it never waits on a full buffer, and joins
it. ``--user-dir davam_plugin`` registers it when the plugin is imported.
"""

import atexit
import logging
import queue
import threading
import time

from fairseq.data import iterators

logger = logging.getLogger(__name__)


def _drain(q):
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def stop_background_consumers(timeout=30.0):
    """Stop and join every live ``BackgroundConsumer``; return those still alive after ``timeout`` s."""
    consumers = [
        t for t in threading.enumerate() if isinstance(t, iterators.BackgroundConsumer) and t.is_alive()
    ]
    deadline = time.monotonic() + timeout
    for consumer in consumers:
        # the consumer checks ``count >= _max_len`` after each put: 0 makes it stop after the
        # batch in hand and put its end sentinel (which the drain below makes room for)
        consumer._max_len = 0
        while consumer.is_alive() and time.monotonic() < deadline:
            _drain(consumer._queue)
            consumer.join(0.01)
    alive = [t for t in consumers if t.is_alive()]
    if alive:
        logger.warning(
            "%d fairseq data-loading thread(s) did not stop within %.0f s at exit; "
            "the process may abort during shutdown (use --data-buffer-size 0 to avoid the thread)",
            len(alive),
            timeout,
        )
    return alive


def register():
    """Register :func:`stop_background_consumers` with ``atexit`` (once per process)."""
    atexit.unregister(stop_background_consumers)
    atexit.register(stop_background_consumers)
