"""Trending counts an event no later than the broker appended it (in-memory dataflow)."""

from __future__ import annotations

import asyncio
import time

from rtrank.streams.settings import Settings
from rtrank.streams.worker.dataflow import Dataflow, EventRecord
from rtrank.streams.worker.metrics import Metrics

APPENDED = int(time.time() * 1000)  # now: an event 60 s ahead is still valid


def fresh_times(scorer, sink, states, source, make_record, ts: int) -> list[int]:
    """The ``ts`` of the fresh event the scorer got for one event dated ``ts`` that the
    broker appended at ``APPENDED``."""
    flow = Dataflow(Settings(batch_max_ms=0), scorer, sink, states, Metrics(), source)
    record = make_record(0, {"user_id": "u", "item_id": "a", "event_type": "view", "ts": ts})
    stamped = EventRecord(record.topic, record.partition, record.offset, record.key,
                          record.value, record.ack, timestamp=APPENDED)  # fmt: skip

    async def go() -> None:
        await flow.ingest(stamped)
        await flow.answer(await flow.next_batch(unread=lambda: 0))

    asyncio.run(go())
    return [e.ts for _, fresh in scorer.calls for e in fresh]


def test_an_event_dated_after_the_broker_appended_it_counts_at_the_append_time(
    scorer, sink, states, source, make_record
) -> None:
    ahead = APPENDED + 60_000  # within the clock skew allowed, yet ahead of the broker
    assert fresh_times(scorer, sink, states, source, make_record, ahead) == [APPENDED]


def test_an_event_dated_before_it_was_appended_counts_at_its_own_time(
    scorer, sink, states, source, make_record
) -> None:
    earlier = APPENDED - 60_000
    assert fresh_times(scorer, sink, states, source, make_record, earlier) == [earlier]
