"""Dead-lettering: a rejected record goes to its DLQ as it came, with why and where from."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from rtrank.streams.validation import Rejection
from rtrank.streams.worker.dead_letters import dead_letter
from rtrank.streams.worker.metrics import Metrics

MESSAGE = SimpleNamespace(topic="items", partition=1, offset=17, key=b"k\xff", value=b"\x00raw")
REJECTION = Rejection("not_json", "expecting value")


def test_the_dead_letter_keeps_the_original_key_and_bytes_and_says_why_and_where(sink) -> None:
    asyncio.run(dead_letter(sink, "items.dlq", MESSAGE, REJECTION, Metrics()))
    [sent] = sink.sent
    assert (sent.topic, sent.key, sent.value) == ("items.dlq", b"k\xff", b"\x00raw")
    assert sent.headers == {
        "rtrank-reason": b"not_json: expecting value",
        "rtrank-source": b"items/1/17",
    }


def test_a_dead_letter_is_counted_by_its_reason_with_the_callers_prefix(sink) -> None:
    metrics = Metrics()
    asyncio.run(dead_letter(sink, "items.dlq", MESSAGE, REJECTION, metrics, "item_"))
    count = metrics.registry.get_sample_value
    assert count("rtrank_dead_letters_total", {"reason": "item_not_json"}) == 1
    assert count("rtrank_dead_letters_total", {"reason": "not_json"}) is None
