"""Handing a producer's buffered records to the broker now, not when its linger expires.

The worker's producer lingers (``RTRANK_PRODUCER_LINGER_MS``) so that a backlogged worker
sends few, large requests: every recommendation, training example and changelog write is
a record. A list waiting out the linger is latency the user sees, though, and a batch's
lists are all emitted at once: so the answer loop sends them as soon as the batch is done
(`send_buffered_now`), together with whatever else is buffered then, in one request;
between batches (training examples, as ingest reads events) the producer lingers as before.

aiokafka has no public "send now" short of ``flush()``, which waits for delivery (a round
trip per batch in the answer loop). This does the first half of what its
transactional ``flush_for_commit`` does: close every open batch, so that each is ready,
and wake the sender. Records sent afterwards open new batches, in order per partition.
The worker passes Faust's aiokafka producer (``app.producer._producer``). Private parts
all: ``tests/integration/test_send_now.py`` fails if an aiokafka release changes them, and
``test_pipeline``'s linger test if Faust does.
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer


def send_buffered_now(producer: AIOKafkaProducer | None) -> None:
    """Make every record ``producer`` holds ready to send, and wake its sender (no await).

    None (Faust's producer between stop and start, as while a worker shuts down) holds
    nothing to send.
    """
    if producer is None:
        return
    accumulator = producer._message_accumulator
    for batches in accumulator._batches.values():
        for batch in batches:
            batch._builder.close()
    if not accumulator._waiter_future.done():
        accumulator._waiter_future.set_result(None)
