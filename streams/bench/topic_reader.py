"""Reading a topic from outside the pipeline, as the demo, the benchmarks and the tests do.

    end_offsets(settings, settings.training_topic)    # {partition: next offset}
    read_topic(settings, settings.events_topic)        # every record, up to the end as of now

    with TopicReader(settings, topic, from_end=True) as reader:   # what arrives from now on
        records = reader.poll()

A `TopicReader` is a consumer of every partition of one topic, with no consumer group: it
reads and never commits, so it changes nothing for the pipeline's own consumers.
"""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from rtrank.streams.kafka_security import client_config
from rtrank.streams.settings import Settings


class TopicReader:
    """Every partition of ``topic``, from its beginning (or its end, with ``from_end``);
    ``consumer_config`` goes to the `KafkaConsumer` (e.g. larger fetch sizes)."""

    def __init__(
        self, settings: Settings, topic: str, from_end: bool = False, **consumer_config: Any
    ) -> None:
        self.topic = topic
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            **client_config(settings),
            **consumer_config,
        )
        parts = self.consumer.partitions_for_topic(topic)
        self.partitions = [TopicPartition(topic, p) for p in sorted(parts)]
        self.consumer.assign(self.partitions)
        if from_end:
            self.consumer.seek_to_end(*self.partitions)
        else:
            self.consumer.seek_to_beginning(*self.partitions)
        for tp in self.partitions:
            self.consumer.position(tp)  # resolve "beginning"/"end" now, not at the first poll

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.consumer.close()

    def end_offsets(self) -> dict[int, int]:
        """Partition -> the offset the next record written to the topic will get."""
        ends = self.consumer.end_offsets(self.partitions)
        return {tp.partition: offset for tp, offset in ends.items()}

    def read_to_end(self, timeout_s: float = 120.0) -> list[ConsumerRecord]:
        """The records from where the reader stands up to the topic's end as it is now (the
        next call goes on from there), in the order they were fetched.

        Raises:
            RuntimeError: the end not reached within ``timeout_s``.
        """
        end = self.consumer.end_offsets(self.partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(self.consumer.position(tp) < end[tp] for tp in self.partitions):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.topic}: end not reached in {timeout_s:.0f}s")
            for tp, batch in self.consumer.poll(timeout_ms=1000, max_records=50_000).items():
                records.extend(r for r in batch if r.offset < end[tp])
        for tp in self.partitions:
            if self.consumer.position(tp) > end[tp]:
                self.consumer.seek(tp, end[tp])  # records past the end are the next call's
        return records

    def poll(self, timeout_ms: int = 200, max_records: int = 5000) -> list[ConsumerRecord]:
        """The records that arrived (at most ``max_records``), waiting up to ``timeout_ms``
        for the first."""
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        return [record for batch in batches.values() for record in batch]


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Partition -> the offset the next record written to ``topic`` will get."""
    with TopicReader(settings, topic) as reader:
        return reader.end_offsets()


def read_topic(settings: Settings, topic: str, timeout_s: float = 120.0) -> list[ConsumerRecord]:
    """Every record of ``topic`` up to its end when called, all partitions.

    Raises:
        RuntimeError: the end not reached within ``timeout_s``.
    """
    with TopicReader(settings, topic) as reader:
        return reader.read_to_end(timeout_s)
