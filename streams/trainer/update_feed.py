"""A worker's reader of the model-updates topic: a daemon thread that assembles and
verifies updates (`rtrank.streams.trainer.model_updates`) and queues whole ones for the
model process to apply between batches.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from rtrank.model.update_error import UpdateError
from rtrank.model.updates import Update
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import (
    Assembler,
    is_control,
    latest_snapshot_offset,
    parse_chunk,
    updates_consumer,
)
from rtrank.streams.trainer.update_signing import UpdateKeys

log = logging.getLogger(__name__)


class UpdateFeed:
    """A worker's background reader of model updates (a daemon thread).

    It decodes and verifies in its own thread and queues whole updates; the model process
    applies them between batches (`drain`). ``caught_up`` is set once everything that was
    on the topic at start has been read. Should the trainer delete the records under its
    position, it goes on from the topic's new beginning, a snapshot (`updates_consumer`).
    """

    def __init__(self, settings: Settings, on_reject: Callable[[str, str], None]) -> None:
        """Raises: KeyFileError: ``RTRANK_UPDATE_VERIFY_KEY_FILE`` holds no public key."""
        self.settings = settings
        self.keys = UpdateKeys.from_settings(settings)
        self.on_reject = on_reject
        self.caught_up = threading.Event()
        self._queue: queue.Queue[Update] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtrank-updates", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def drain(self) -> list[Update]:
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:  # noqa: BLE001 - the feed must outlive broker hiccups
                log.exception("model update feed failed; retrying in 5s")
                self._stop.wait(5.0)

    def _follow(self) -> None:
        consumer, tp = updates_consumer(self.settings)
        try:
            start = latest_snapshot_offset(consumer, tp, self.keys)
            target = consumer.end_offsets([tp])[tp]
            consumer.seek(tp, start)
            log.info("model updates: reading %s from offset %d", tp.topic, start)
            assembler = Assembler(self.keys, self.settings.update_assembly_max_bytes)
            while not self._stop.is_set():
                if consumer.position(tp) >= target:
                    self.caught_up.set()
                for record in consumer.poll(timeout_ms=500).get(tp, []):
                    self._handle(assembler, record.value)
        finally:
            consumer.close()

    def _handle(self, assembler: Assembler, value: bytes | None) -> None:
        if is_control(value):
            return
        try:
            update = assembler.add(parse_chunk(value))
        except UpdateError as e:
            self.on_reject(e.reason, str(e))
            return
        if update is not None:
            self._queue.put(update)
