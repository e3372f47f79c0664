"""Dead-lettering: a rejected record goes to its DLQ as it came, with why and where from."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from rtrank.streams.validation import Rejection
from rtrank.streams.worker.dead_letters import MAX_KEY_BYTES, MAX_VALUE_BYTES, dead_letter
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


def test_a_value_too_large_to_send_again_is_cut_and_says_its_original_size(sink) -> None:
    big = SimpleNamespace(topic="events", partition=3, offset=99, key=b"u1", value=b"{" * 1_040_000)
    asyncio.run(dead_letter(sink, "events.dlq", big, REJECTION, Metrics()))
    [sent] = sink.sent
    assert sent.key == b"u1"
    assert sent.value == b"{" * MAX_VALUE_BYTES
    assert sent.headers["rtrank-value-cut-from"] == b"1040000"
    assert sent.headers["rtrank-source"] == b"events/3/99"
    assert "rtrank-key-cut-from" not in sent.headers


def test_a_key_too_large_to_send_again_is_cut_and_says_its_original_size(sink) -> None:
    big = SimpleNamespace(topic="events", partition=0, offset=1, key=b"k" * 100_000, value=b"v")
    asyncio.run(dead_letter(sink, "events.dlq", big, REJECTION, Metrics()))
    [sent] = sink.sent
    assert sent.key == b"k" * MAX_KEY_BYTES
    assert sent.headers["rtrank-key-cut-from"] == b"100000"
    assert sent.value == b"v"


def test_a_record_at_the_size_limits_goes_to_the_dlq_whole(sink) -> None:
    key, value = b"k" * MAX_KEY_BYTES, b"v" * MAX_VALUE_BYTES
    edge = SimpleNamespace(topic="events", partition=0, offset=1, key=key, value=value)
    asyncio.run(dead_letter(sink, "events.dlq", edge, REJECTION, Metrics()))
    [sent] = sink.sent
    assert (sent.key, sent.value) == (key, value)
    assert not [h for h in sent.headers if h.endswith("-cut-from")]
