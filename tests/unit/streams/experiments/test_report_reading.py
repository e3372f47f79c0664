"""What the report reads from a live system's topics besides events and lists: records the
worker dead-lettered, forget requests and a forgotten user's tombstones are no events and no
lists (the topics are read through `rtrank.streams.bench.replay_eval.read_run`)."""

from __future__ import annotations

import json

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from rtrank.streams.bench import replay_eval
from rtrank.streams.settings import Settings

SETTINGS = Settings()


def record(
    offset: int, key: bytes | None, value: bytes | None, headers: tuple = ()
) -> ConsumerRecord:
    return ConsumerRecord("t", 0, 0, offset, 0, 0, key, value, list(headers), None, 0, 0, 0)


def event(offset: int, item: str | int) -> ConsumerRecord:
    value = {"user_id": "u", "item_id": item, "event_type": "view", "ts": 1}
    return record(offset, b"u", json.dumps(value).encode())


def listed(offset: int, answering: int, items: list[str]) -> ConsumerRecord:
    rec = {
        "user_id": "u",
        "items": [{"item_id": i, "score": 1.0} for i in items],
        "model_version": 1,
        "based_on": {"topic": "events", "partition": 0, "offset": answering, "ts": 1},
    }
    return record(offset, b"u", json.dumps(rec).encode())


@pytest.fixture
def topics(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[ConsumerRecord]]:
    topics: dict[str, list[ConsumerRecord]] = {}
    monkeypatch.setattr(replay_eval, "read_topic", lambda settings, topic: topics[topic])
    monkeypatch.setattr(replay_eval, "end_offsets", lambda settings, topic: {0: 0})
    return topics


def test_records_that_are_no_events_and_tombstones_are_passed_over(topics) -> None:
    topics[SETTINGS.events_topic] = [
        event(0, "a"),
        record(1, b"u", b"{not json"),
        record(2, b"u", b'{"user_id": "u", "requested_at": 1}', [("rtrank-request", b"forget")]),
        record(3, None, b"{}"),
        event(4, 7),
    ]
    topics[SETTINGS.recommendations_topic] = [
        listed(0, 0, ["7", "x"]),
        record(1, b"u", None),
        listed(2, 4, ["y"]),
    ]
    run = replay_eval.read_run(SETTINGS, {}, check_examples=False)
    assert run.items == {"u": ["a", "7"]}
    assert [(e.n, e.items) for e in run.lists["u"]] == [(0, ("7", "x")), (1, ("y",))]
