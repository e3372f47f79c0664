"""A worker or trainer told to stop ends within a bound, even when its stop cannot finish.

Faust's stop waits on the broker: with the broker gone, the consumer thread's stop waits
out mode's 60 s service shutdown timeout, and the process then lingers on clients and
threads still retrying the broker; the trainer's Kafka clients can wait on it too. A
process that an operator (or Kubernetes) stops must stop, so from the moment it begins to
stop (the worker: `RtrankApp.on_stop`; the trainer: its SIGTERM or SIGINT), a
`StopDeadline` of ``RTRANK_SHUTDOWN_TIMEOUT_S`` runs; a process still alive past it logs
one line and exits with code 1 at once.

So nothing acknowledged is lost. The worker leaves its local-state mark in place
(`rtrank.streams.worker.local_state`), so its next start discards the local tables and
recovers them from their changelogs, as after a crash; an event's offset is committed only
after its writes were delivered. The trainer resumes from the last version it published.

The deadline covers the whole exit, not only the stop: after it, the interpreter still
joins threads and child processes that can hang as well.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

EXIT_CODE = 1


class StopDeadline:
    """Ends the process with `EXIT_CODE` if it still runs ``timeout_s`` after `start`.

    ``process`` names it in the log line (``the worker``), and ``then`` says what its next
    start does about the stop it did not finish. ``exit`` is how it ends the process:
    ``os._exit`` (default) ends it from any thread, whatever the event loop or the
    interpreter's exit is waiting on; no cleanup runs.
    """

    def __init__(
        self,
        timeout_s: float,
        process: str,
        then: str,
        exit: Callable[[int], object] = os._exit,  # noqa: A002
    ) -> None:
        self.timeout_s = timeout_s
        self.process = process
        self.then = then
        self._exit = exit
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start counting (once: later calls change nothing). The count runs in a daemon
        thread, so a process that ends in time ends with its own exit code."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._expire, name="rtrank-stop-deadline", daemon=True
            )
            self._thread.start()

    def _expire(self) -> None:
        time.sleep(self.timeout_s)
        log.critical(
            "%s did not stop within %g s (RTRANK_SHUTDOWN_TIMEOUT_S); exiting with code %d: %s",
            self.process,
            self.timeout_s,
            EXIT_CODE,
            self.then,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        self._exit(EXIT_CODE)
