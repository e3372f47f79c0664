"""Reading recommendations as a client would, for the demo's live view and the benchmarks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition

from rtrank.streams.settings import Settings


class RecommendationReader:
    """Consumes the recommendations topic from its current end (records after ``__enter__``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer: KafkaConsumer | None = None

    def __enter__(self) -> RecommendationReader:
        self.consumer = KafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="latest",
        )
        topic = self.settings.recommendations_topic
        parts = self.consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        self.consumer.seek_to_end(*tps)
        for tp in tps:
            self.consumer.position(tp)  # resolve "end" now, before anything is produced
        return self

    def __exit__(self, *exc: object) -> None:
        if self.consumer is not None:
            self.consumer.close()

    def poll(self, timeout_ms: int = 200) -> list[tuple[dict, float]]:
        """New recommendations with their receive time (epoch ms)."""
        out = []
        for messages in self.consumer.poll(timeout_ms=timeout_ms, max_records=5000).values():
            now = time.time() * 1000
            out.extend((json.loads(m.value), now) for m in messages)
        return out

    def collect_while(
        self,
        busy: Callable[[], bool],
        idle_s: float = 2.0,
        on_record: Callable[[dict, float], None] | None = None,
    ) -> list[float]:
        """Event -> recommendation milliseconds (receive time minus the answered event's ts).

        Polls while ``busy()`` (e.g. a producer thread is alive) and then until no record
        arrived for ``idle_s``.
        """
        latencies: list[float] = []
        last_seen = time.monotonic()
        while busy() or time.monotonic() - last_seen < idle_s:
            for rec, received in self.poll():
                latencies.append(received - rec["based_on"]["ts"])
                last_seen = time.monotonic()
                if on_record is not None:
                    on_record(rec, received)
        return latencies
