"""Every record the worker sends is checked: one that cannot be delivered stops the worker
before its event's offset is committed.

An event is acked once its records (its list, training example or dead letter, its state's
changelog write) were handed to the producer, and Faust commits acked offsets after
flushing the producer (`rtrank.streams.worker.faust_patches.CheckedProducer`). A record the
producer gave up on (a non-retriable error, or still undelivered after
``producer_delivery_timeout_s``) must not let that commit happen: `DeliveryGuard` learns of
it from the record's delivery future (or from the send that raised), counts it in
``rtrank_failed_sends`` by topic, refuses every commit from then on (`may_commit`, read at
the commit), logs one ERROR line and stops the worker (`exit_worker`).

Stopping is a crash on purpose (exit 1, at once): a worker that cannot deliver is in the
state of a killed one, which the group already survives. Its uncommitted events go, with
its partitions, to another worker once its session times out, and that worker answers
them again; its local tables are rebuilt from their changelogs at its next start (the
running mark stays, `rtrank.streams.worker.local_state`). A clean Faust stop would commit
on the way out and wait on a producer that cannot deliver.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from functools import partial

from prometheus_client import Counter

log = logging.getLogger(__name__)

EXIT_UNDELIVERABLE = 1


def exit_worker() -> None:
    """End the worker process now with `EXIT_UNDELIVERABLE`, its log written out: nothing
    after this (no commit, no clean stop) runs."""
    logging.shutdown()
    os._exit(EXIT_UNDELIVERABLE)


class DeliveryGuard:
    """What the worker knows of its records' delivery: nothing wrong yet, or the first
    record it could not deliver (``failure``: its topic and error)."""

    def __init__(self, failed_sends: Counter, stop: Callable[[], None] = exit_worker) -> None:
        self.failed_sends = failed_sends
        self.stop = stop
        self.failure: tuple[str, BaseException] | None = None
        self._callbacks: dict[str, Callable[[asyncio.Future], None]] = {}

    def watch(self, topic: str, delivery: asyncio.Future) -> None:
        """Check the record sent to ``topic`` once ``delivery`` (the producer's future for
        it) resolves; nothing is awaited. One callback per topic, made once: this runs for
        every record the worker sends."""
        callback = self._callbacks.get(topic)
        if callback is None:
            callback = self._callbacks[topic] = partial(self._on_delivery, topic)
        delivery.add_done_callback(callback)

    def _on_delivery(self, topic: str, delivery: asyncio.Future) -> None:
        if delivery.cancelled():
            self.failed(topic, asyncio.CancelledError("the send was cancelled"))
        elif (error := delivery.exception()) is not None:
            self.failed(topic, error)

    def failed(self, topic: str, error: BaseException) -> None:
        """A record for ``topic`` was not delivered: count it; the first one also logs and
        stops the worker."""
        self.failed_sends.labels(topic).inc()
        if self.failure is not None:
            return
        self.failure = (topic, error)
        log.error(
            "a record for topic %s could not be delivered (%r): the worker stops (exit %d) "
            "without committing its events; its partitions move to another worker, which "
            "answers those events again",
            topic,
            error,
            EXIT_UNDELIVERABLE,
        )
        self.stop()

    def may_commit(self) -> bool:
        """Whether offsets may be committed: no record failed so far."""
        return self.failure is None
