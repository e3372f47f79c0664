"""A lingering producer's records go to the broker when the worker says so (real broker)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from rtrank.streams.settings import Settings
from rtrank.streams.worker.faust_patches import send_buffered_now
from rtrank.streams.worker.topics_and_tables import ensure_topics


async def send_then_release(settings: Settings) -> tuple[bool, bool]:
    """(still held a second after it was sent, delivered within 20 s of send_buffered_now)
    for one record of a producer that would otherwise linger a minute."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=60_000)
    await producer.start()
    try:
        delivery = await producer.send(settings.recommendations_topic, b"value", key=b"u1")
        await asyncio.sleep(1.0)
        lingered = not delivery.done()
        send_buffered_now(producer)
        await asyncio.wait_for(asyncio.shield(delivery), timeout=20.0)
        return lingered, delivery.done()
    finally:
        await producer.stop()


def test_buffered_records_are_delivered_without_waiting_for_the_linger(settings) -> None:
    ensure_topics(settings)
    lingered, delivered = asyncio.run(send_then_release(settings))
    assert lingered, "the producer did not hold the record: the test shows nothing"
    assert delivered
