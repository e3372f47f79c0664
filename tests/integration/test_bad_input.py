"""Hostile input against a real broker and a real worker: among 10,000 good events, catalogue
records and rank requests, every pathological record reaches its dead-letter topic (a rank
request: an error response) with its reason, every good user is answered, and the worker
commits the events topic to its end.

One worker and one run of traffic serve the module's tests; each test checks one outcome.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaProducer

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.model.synthetic import item_id
from rtrank.streams.bench.topic_reader import end_offsets
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.settings import Settings
from rtrank.streams.worker.dead_letters import MAX_VALUE_BYTES
from tests.integration.conftest import (
    committed_offsets,
    kill_and_show_log,
    latest_by_key,
    read_topic,
    wait_for,
)

GOOD_EVENTS = 10_000
USERS = 1_000
HUGE_EVENT_BYTES = 1_040_000  # over the worker producer's 1,000,000-byte request limit


def now_ms() -> int:
    return int(time.time() * 1000)


def event(user: str, **fields: object) -> dict:
    return {"user_id": user, "item_id": "item-1", "event_type": "view", "ts": now_ms(), **fields}


def raw(obj: dict, marker: str, json_text: str) -> bytes:
    """``obj`` as JSON with the string ``marker`` replaced by ``json_text``: how a record
    gets what `json.dumps` cannot write."""
    return json.dumps(obj).replace(json.dumps(marker), json_text).encode()


def bad_events() -> dict[str, tuple[bytes, bytes, str]]:
    """name -> (key, value, the reason code it is dead-lettered with)."""
    return {
        "huge integer": (b"b1", raw(event("b1", n="N"), "N", "9" * 5000), "number_too_large"),
        "deep nesting": (b"b2", b"[" * 3000 + b"]" * 3000, "not_json"),
        "invalid UTF-8": (b"b3", b'{"user_id": "b3", "item_id": "\xff\xfe"}', "not_utf8"),
        "NaN literal": (b"b4", raw(event("b4", p="P"), "P", "NaN"), "non_finite_number"),
        "Infinity literal": (b"b5", raw(event("b5", p="P"), "P", "-Infinity"), "non_finite_number"),
        "duplicate key": (
            b"b6",
            raw(event("b6", event_type="E"), "E", '"view", "user_id": "b6"'),
            "duplicate_key",
        ),
        "ts in 2099": (
            b"b7",
            json.dumps(event("b7", ts=4_070_908_800_000)).encode(),
            "ts_in_future",
        ),
        "ts an hour ahead": (
            b"b8",
            json.dumps(event("b8", ts=now_ms() + 3_600_000)).encode(),
            "ts_in_future",
        ),
        "ts in 1990": (
            b"b9",
            json.dumps(event("b9", ts=631_152_000_000)).encode(),
            "ts_out_of_range",
        ),
        "bell in user_id": (b"b\x07", json.dumps(event("b\x07")).encode(), "bad_characters"),
        "tab in item_id": (
            b"b10",
            json.dumps(event("b10", item_id="a\tb")).encode(),
            "bad_characters",
        ),
        "about 1 MB": (b"b11", b"{" + b" " * (HUGE_EVENT_BYTES - 2) + b"}", "too_large"),
    }


BAD_ITEMS = {  # name -> (key, value, reason)
    "huge integer": (
        b"x1",
        b'{"item_id": ' + b"9" * 5000 + b', "available": true}',
        "number_too_large",
    ),
    "NaN boost": (
        b"x2",
        b'{"item_id": "x2", "available": true, "boost": NaN}',
        "non_finite_number",
    ),
    "duplicate key": (
        b"x3",
        b'{"item_id": "x3", "available": true, "available": false}',
        "duplicate_key",
    ),
    "invalid UTF-8": (b"x4", b'{"item_id": "x4\xc3\x28", "available": true}', "not_utf8"),
    "NUL in item_id": (b"x5", b'{"item_id": "x5\\u0000", "available": true}', "bad_characters"),
    "deep nesting": (b"x6", b"[" * 3000 + b"]" * 3000, "not_json"),
}

BAD_REQUESTS = {  # name -> (key = the id its error response carries, value, reason)
    "huge integer": (
        b"q1",
        b'{"request_id": ' + b"9" * 5000 + b', "user_id": "u"}',
        "number_too_large",
    ),
    "NaN candidate": (
        b"q2",
        b'{"request_id": "q2", "user_id": "u", "candidates": [NaN]}',
        "non_finite_number",
    ),
    "duplicate key": (
        b"q3",
        b'{"request_id": "q3", "request_id": "q3", "user_id": "u"}',
        "duplicate_key",
    ),
    "invalid UTF-8": (
        b"q4",
        b'{"request_id": "q4\xff", "user_id": "u", "candidates": []}',
        "not_utf8",
    ),
    "bell in request_id": (
        b"q5",
        b'{"request_id": "q\\u0007", "user_id": "u", "candidates": []}',
        "bad_characters",
    ),
    "deep nesting": (b"q6", b"[" * 3000 + b"]" * 3000, "not_json"),
}


@dataclass
class Run:
    settings: Settings
    worker: WorkerProcess
    last_event: dict[str, str]  # good user -> "partition/offset" of their last event
    bad_sources: dict[str, tuple[str, str, int]]  # name -> (source, reason, size)


def send(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def produce_events(settings: Settings) -> tuple[dict[str, str], dict[str, tuple[str, str, int]]]:
    """The good events with the bad ones spread among them."""
    rng = random.Random(27)
    bad = list(bad_events().items())
    spots = dict(zip(rng.sample(range(GOOD_EVENTS), len(bad)), bad, strict=True))
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=5,
        max_request_size=2 * 1024 * 1024,
    )
    last, placed = {}, {}
    try:
        for n in range(GOOD_EVENTS):
            user = f"user-{n % USERS}"
            body = json.dumps(event(user, item_id=item_id(rng.randrange(50)))).encode()
            last[user] = producer.send(settings.events_topic, key=user.encode(), value=body)
            if n in spots:
                name, (key, value, reason) = spots[n]
                sent = producer.send(settings.events_topic, key=key, value=value)
                placed[name] = (sent, reason, len(value))
        producer.flush()
    finally:
        producer.close()
    ends = {}
    for user, future in last.items():
        meta = future.get(timeout=30)
        ends[user] = f"{meta.partition}/{meta.offset}"
    sources = {}
    for name, (future, reason, size) in placed.items():
        meta = future.get(timeout=30)
        sources[name] = (f"{settings.events_topic}/{meta.partition}/{meta.offset}", reason, size)
    return ends, sources


@pytest.fixture(scope="module")
def run(kafka_broker, synthetic_checkpoint, tmp_path_factory) -> Iterator[Run]:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(broker=f"kafka://{kafka_broker.bootstrap}").isolated(
        f"bad-input-{tag}",
        data_dir=tmp_path_factory.mktemp("bad-input-worker"),
        web_port=local_kafka.free_port(),
        partitions=4,
        standby_replicas=0,
        session_timeout_s=10.0,
        batch_max_ms=20.0,
        checkpoint=str(synthetic_checkpoint),
    )
    worker = WorkerProcess(settings, Path(tmp_path_factory.mktemp("logs")) / "worker.log")
    worker.start()
    try:
        send(settings, settings.items_topic, [(k, v) for k, v, _ in BAD_ITEMS.values()])
        good_request = {"request_id": "good", "user_id": "user-1", "candidates": ["item-1"]}
        requests = [(k, v) for k, v, _ in BAD_REQUESTS.values()]
        send(
            settings,
            settings.rank_requests_topic,
            [*requests, (b"user-1", json.dumps(good_request).encode())],
        )
        last_event, bad_sources = produce_events(settings)
        yield Run(settings, worker, last_event, bad_sources)
    finally:
        kill_and_show_log(worker)


def test_every_pathological_event_is_dead_lettered_with_its_reason(run) -> None:
    s = run.settings
    dead = read_topic(
        s.bootstrap_servers, s.dlq_topic, expected=len(run.bad_sources), timeout_s=120
    )
    reasons = {
        dict(r.headers)["rtrank-source"].decode(): dict(r.headers)["rtrank-reason"].decode()
        for r in dead
    }
    assert {
        name: reasons.get(source, "").split(":")[0]
        for name, (source, _, _) in run.bad_sources.items()
    } == {name: reason for name, (_, reason, _) in run.bad_sources.items()}
    assert len(dead) == len(run.bad_sources)


def test_an_event_too_large_to_send_whole_is_dead_lettered_cut_with_its_size(run) -> None:
    s = run.settings
    source, _, size = run.bad_sources["about 1 MB"]
    dead = read_topic(
        s.bootstrap_servers, s.dlq_topic, expected=len(run.bad_sources), timeout_s=120
    )
    [cut] = [r for r in dead if dict(r.headers)["rtrank-source"].decode() == source]
    assert dict(cut.headers)["rtrank-value-cut-from"] == str(size).encode()
    assert cut.value == (b"{" + b" " * size)[:MAX_VALUE_BYTES]


def test_every_pathological_catalogue_record_is_dead_lettered_with_its_reason(run) -> None:
    s = run.settings
    dead = read_topic(s.bootstrap_servers, s.items_dlq_topic, expected=len(BAD_ITEMS), timeout_s=60)
    assert {r.key: dict(r.headers)["rtrank-reason"].decode().split(":")[0] for r in dead} == {
        key: reason for key, _, reason in BAD_ITEMS.values()
    }


def test_every_pathological_rank_request_gets_an_error_response_with_its_reason(run) -> None:
    s = run.settings
    responses = read_topic(
        s.bootstrap_servers, s.rank_responses_topic, expected=len(BAD_REQUESTS) + 1, timeout_s=90
    )
    bodies = [json.loads(r.value) for r in responses]
    errors = {b["request_id"]: b["error"]["code"] for b in bodies if "error" in b}
    assert errors == {key.decode(): reason for key, _, reason in BAD_REQUESTS.values()}
    assert [b["request_id"] for b in bodies if "error" not in b] == ["good"]


def test_every_good_user_is_answered_for_their_last_event(run) -> None:
    s = run.settings

    def all_answered() -> bool:
        latest = latest_by_key(read_topic(s.bootstrap_servers, s.recommendations_topic))
        return all(
            u in latest
            and f"{latest[u]['based_on']['partition']}/{latest[u]['based_on']['offset']}" == at
            for u, at in run.last_event.items()
        )

    wait_for(all_answered, timeout_s=180, interval_s=2.0, message="a good user was not answered")
    assert run.worker.running


def test_the_events_topic_is_committed_to_its_end(run) -> None:
    s = run.settings

    wait_for(
        lambda: committed_offsets(s) == end_offsets(s, s.events_topic),
        timeout_s=180,
        interval_s=2.0,
        message="offsets not committed to the end",
    )
    assert run.worker.running
