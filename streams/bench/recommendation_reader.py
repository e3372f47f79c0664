"""Reading recommendations as a client would, for the demo's live view and the benchmarks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from rtrank.streams.bench.topic_reader import TopicReader
from rtrank.streams.settings import Settings


def answered_event_ts(rec: dict) -> float:
    """When the event a list answers was sent (epoch ms)."""
    return rec["based_on"]["ts"]


class RecommendationReader:
    """Consumes the recommendations topic from its current end (records after ``__enter__``);
    ``sent_ms`` reads a record's send time (by default the answered event's,
    `answered_event_ts`; the Faust pass-through forwards the events themselves)."""

    def __init__(
        self, settings: Settings, sent_ms: Callable[[dict], float] = answered_event_ts
    ) -> None:
        self.settings = settings
        self.sent_ms = sent_ms
        self.reader: TopicReader | None = None

    def __enter__(self) -> RecommendationReader:
        self.reader = TopicReader(self.settings, self.settings.recommendations_topic, from_end=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.reader is not None:
            self.reader.close()

    def poll(self, timeout_ms: int = 200) -> list[tuple[dict, float]]:
        """New recommendations with their receive time (epoch ms)."""
        records = self.reader.poll(timeout_ms)
        now = time.time() * 1000
        return [(json.loads(m.value), now) for m in records]

    def collect_while(
        self,
        busy: Callable[[], bool],
        idle_s: float = 2.0,
        on_record: Callable[[dict, float], None] | None = None,
    ) -> list[float]:
        """Event -> record milliseconds (receive time minus ``sent_ms`` of the record).

        Polls while ``busy()`` (e.g. a producer thread is alive) and then until no record
        arrived for ``idle_s``.
        """
        latencies: list[float] = []
        last_seen = time.monotonic()
        while busy() or time.monotonic() - last_seen < idle_s:
            for rec, received in self.poll():
                latencies.append(received - self.sent_ms(rec))
                last_seen = time.monotonic()
                if on_record is not None:
                    on_record(rec, received)
        return latencies
