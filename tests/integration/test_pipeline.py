"""The whole pipeline against a real broker and a real worker process."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading

import pytest
from kafka import KafkaAdminClient

from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.worker_metrics import metric_value
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import ensure_topics
from tests.integration.conftest import (
    SYNTHETIC_ITEMS,
    child_pids,
    latest_by_key,
    read_topic,
    running,
    wait_for,
)


def final_state_of_users(settings) -> dict[str, dict]:
    """The user table as its changelog holds it (latest value per user)."""
    changelog = f"{settings.app_id}-user_to_history-changelog"
    return latest_by_key(read_topic(settings.bootstrap_servers, changelog), json_keys=True)


def start_serving(settings, worker, checkpoint) -> Settings:
    """Start ``worker`` on ``checkpoint``; returns the settings it runs with."""
    settings = settings.replace(checkpoint=str(checkpoint))
    worker.settings = settings
    worker.start()
    return settings


def test_every_user_gets_k_unseen_items_answering_their_last_event(
    settings, worker, synthetic_checkpoint
) -> None:
    settings = start_serving(settings, worker, synthetic_checkpoint)
    replay = synthetic_replay(users=2000, items=SYNTHETIC_ITEMS, events=20_000, seed=5)
    send_events(settings, replay.events, progress=False)

    events = read_topic(settings.bootstrap_servers, settings.events_topic, expected=20_000)
    last_event = {}
    for record in sorted(events, key=lambda r: (r.partition, r.offset)):
        last_event[record.key.decode()] = (record.partition, record.offset)
    history: dict[str, list[str]] = {}
    for e in replay.events:
        history.setdefault(e["user_id"], []).append(e["item_id"])

    def all_answered() -> bool:
        latest = latest_by_key(
            read_topic(settings.bootstrap_servers, settings.recommendations_topic)
        )
        return len(latest) == 2000 and all(
            (r["based_on"]["partition"], r["based_on"]["offset"]) == last_event[u]
            for u, r in latest.items()
        )

    wait_for(all_answered, timeout_s=180, interval_s=3, message="not every last event was answered")
    latest = latest_by_key(read_topic(settings.bootstrap_servers, settings.recommendations_topic))
    for user, rec in latest.items():
        items = [i["item_id"] for i in rec["items"]]
        assert len(items) == settings.top_k == len(set(items)), user
        assert not set(items) & set(history[user]), user
        assert rec["model_version"] >= 1
    assert worker.running


def test_every_applied_event_sends_one_training_example_with_the_history_before_it(
    settings, worker, synthetic_checkpoint
) -> None:
    settings = start_serving(settings, worker, synthetic_checkpoint)
    replay = synthetic_replay(users=200, items=SYNTHETIC_ITEMS, events=2_000, seed=6)
    send_events(settings, replay.events, progress=False)

    read_topic(settings.bootstrap_servers, settings.training_topic, expected=2_000)
    records = read_topic(settings.bootstrap_servers, settings.training_topic)  # all of it
    examples: dict[str, list[dict]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        examples.setdefault(record.key.decode(), []).append(json.loads(record.value))
    expected: dict[str, list[tuple[list[str], str]]] = {}
    history: dict[str, list[str]] = {}
    for e in replay.events:
        before = history.setdefault(e["user_id"], [])
        kept = before[-settings.history_len :]
        expected.setdefault(e["user_id"], []).append((kept, e["item_id"]))
        before.append(e["item_id"])
    assert len(records) == 2_000
    assert {u: [(x["prefix"], x["item_id"]) for x in xs] for u, xs in examples.items()} == expected


def test_a_healthy_lone_worker_owns_every_events_partition(settings, worker) -> None:
    worker.start()
    health = worker.health()
    assert health["status"] == "ok" and health["model_version"] >= 0
    assert health["events_partitions"] == list(range(settings.partitions))


def test_the_worker_consumer_waits_for_fetches_as_configured_not_faust_fixed_1500_ms(
    settings, tmp_path
) -> None:
    worker = WorkerProcess(settings.replace(consumer_fetch_wait_ms=37), tmp_path / "w.log")
    try:
        worker.start()
        assert worker.health()["consumer_fetch_wait_ms"] == 37
    finally:
        worker.stop(signal.SIGKILL)


def test_a_serving_worker_keeps_its_start_up_objects_out_of_garbage_collection(
    settings, worker
) -> None:
    worker.start()
    worker.health()
    assert metric_value(worker.metrics(), "rtrank_gc_frozen_objects") > 100_000


def test_worker_creates_its_topics_with_the_configured_partitions(settings, worker) -> None:
    worker.start()
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        described = admin.describe_topics(
            [
                settings.events_topic,
                settings.recommendations_topic,
                settings.dlq_topic,
                settings.training_topic,
            ]
        )
    finally:
        admin.close()
    assert {d["name"]: len(d["partitions"]) for d in described} == {
        settings.events_topic: 8,
        settings.recommendations_topic: 8,
        settings.dlq_topic: 8,
        settings.training_topic: 8,
    }


BAD_EVENTS = [
    (b"u-bad", b"{not json"),
    (b"u-bad", b"\xff\xfe\x00garbage"),
    (b"u-bad", b"[1, 2, 3]"),
    (b"u-bad", b'"just a string"'),
    (b"u-bad", json.dumps({"user_id": "u-bad", "item_id": "i", "event_type": "view"}).encode()),
    (
        b"u-bad",
        json.dumps(
            {"user_id": "u-bad", "item_id": None, "event_type": "view", "ts": 1_700_000_000_000}
        ).encode(),
    ),
    (
        b"u-bad",
        json.dumps(
            {"user_id": "u-bad", "item_id": {"x": 1}, "event_type": "view", "ts": 1_700_000_000_000}
        ).encode(),
    ),
    (
        b"u-bad",
        json.dumps(
            {"user_id": "u-bad", "item_id": "i", "event_type": "view", "ts": "now"}
        ).encode(),
    ),
    (
        b"u-bad",
        json.dumps({"user_id": "u-bad", "item_id": "i", "event_type": "view", "ts": 12}).encode(),
    ),
    (
        b"u-bad",
        json.dumps(
            {
                "user_id": "u-bad",
                "item_id": "i" * 1000,
                "event_type": "view",
                "ts": 1_700_000_000_000,
            }
        ).encode(),
    ),
    (
        b"u-bad",
        json.dumps(
            {
                "user_id": "u-bad",
                "item_id": "i",
                "event_type": "view",
                "ts": 1_700_000_000_000,
                "n": [[[[[[[[[[[1]]]]]]]]]]],
            }
        ).encode(),
    ),
    (
        b"someone-else",
        json.dumps(
            {"user_id": "u-bad", "item_id": "i", "event_type": "view", "ts": 1_700_000_000_000}
        ).encode(),
    ),
    (
        b"\xc3\x28",
        json.dumps(
            {"user_id": "u-bad", "item_id": "i", "event_type": "view", "ts": 1_700_000_000_000}
        ).encode(),
    ),
    (b"u-bad", b""),
    (b"u-bad", b"{" * 100_000),
]


def test_malformed_events_go_to_the_dlq_and_good_ones_are_answered(
    settings, worker, synthetic_checkpoint
) -> None:
    from kafka import KafkaProducer

    settings = start_serving(settings, worker, synthetic_checkpoint)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    good_users = []
    for n, (key, value) in enumerate(BAD_EVENTS):
        good = {
            "user_id": f"good-{n}",
            "item_id": "item-1",
            "event_type": "view",
            "ts": 1_700_000_000_000 + n,
        }
        producer.send(
            settings.events_topic, key=good["user_id"].encode(), value=json.dumps(good).encode()
        )
        good_users.append(good["user_id"])
        producer.send(settings.events_topic, key=key, value=value)
    producer.flush()
    producer.close()

    dead = read_topic(
        settings.bootstrap_servers, settings.dlq_topic, expected=len(BAD_EVENTS), timeout_s=90
    )
    assert sorted(r.value for r in dead) == sorted(v for _, v in BAD_EVENTS)
    for record in dead:
        headers = dict(record.headers)
        assert headers["rtrank-reason"]
        assert headers["rtrank-source"].startswith(settings.events_topic.encode() + b"/")

    wait_for(
        lambda: (
            set(good_users)
            <= set(
                latest_by_key(
                    read_topic(settings.bootstrap_servers, settings.recommendations_topic)
                )
            )
        ),
        timeout_s=60,
        message="a good event interleaved with bad ones was not answered",
    )
    assert worker.running
    metrics = worker.metrics()
    assert f'rtrank_events_total{{outcome="invalid"}} {float(len(BAD_EVENTS))}' in metrics


def test_state_survives_sigterm_and_sigkill_mid_stream_without_loss_or_duplicates(
    settings, worker, synthetic_checkpoint
) -> None:
    settings = start_serving(settings, worker, synthetic_checkpoint)
    replay = synthetic_replay(users=300, items=SYNTHETIC_ITEMS, events=6000, seed=9)
    producer = threading.Thread(target=send_events, args=(settings, replay.events, 200.0, False))
    producer.start()
    for stop_signal in (signal.SIGTERM, signal.SIGKILL):
        wait_for(
            lambda: metric_value(worker.metrics(), "rtrank_answer_seconds_count") >= 300,
            timeout_s=120,
            message="the worker answered too little of the stream to be stopped mid-stream",
        )
        worker.stop(stop_signal)
        worker.start()
    producer.join()

    expected: dict[str, list[str]] = {}
    for e in replay.events:
        expected.setdefault(e["user_id"], []).append(e["item_id"])

    def state_complete() -> bool:
        state = final_state_of_users(settings)
        return len(state) == len(expected) and all(
            s["events"] == len(expected[u]) for u, s in state.items()
        )

    with contextlib.suppress(AssertionError):  # the checks below say what is wrong
        wait_for(state_complete, timeout_s=180, interval_s=3)
    state = final_state_of_users(settings)
    missing = sorted(set(expected) - set(state))
    assert not missing, f"users missing from the table: {missing}"
    miscounted = {
        user: (state[user]["events"], len(items))
        for user, items in expected.items()
        if state[user]["events"] != len(items)
    }
    assert not miscounted, f"(events applied, events sent) per user: {miscounted}"
    for user, items in expected.items():
        assert state[user]["history"] == items[-settings.history_len :], user

    events = read_topic(settings.bootstrap_servers, settings.events_topic, expected=6000)
    last_offset: dict[str, int] = {}
    for record in events:
        user = record.key.decode()
        last_offset[user] = max(last_offset.get(user, -1), record.offset)

    def every_last_event_answered() -> bool:
        recs = read_topic(settings.bootstrap_servers, settings.recommendations_topic)
        latest = latest_by_key(recs)
        return len(latest) == len(expected) and all(
            rec["based_on"]["offset"] == last_offset[u] for u, rec in latest.items()
        )

    wait_for(
        every_last_event_answered,
        timeout_s=120,
        interval_s=3,
        message="not every user's last event was answered after the restarts",
    )


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; the parent-death signal is Linux")
def test_the_model_process_does_not_outlive_a_killed_worker(
    settings, worker, synthetic_checkpoint
) -> None:
    start_serving(settings, worker, synthetic_checkpoint)
    children = child_pids(worker.process.pid)
    assert children, "the worker serves its model from a child process"
    worker.stop(signal.SIGKILL)
    wait_for(
        lambda: not any(running(pid) for pid in children),
        timeout_s=30,
        message="the model process outlived its SIGKILLed worker",
    )


def test_producing_before_any_worker_creates_co_partitioned_topics(settings) -> None:
    from rtrank.streams.bench.worker_process import settings_env

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtrank.streams",
            "produce",
            "--synthetic",
            "--users",
            "20",
            "--events",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=settings_env(settings),
    )
    assert done.returncode == 0, done.stderr
    assert "sent 100 events" in done.stderr
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        [described] = admin.describe_topics([settings.events_topic])
    finally:
        admin.close()
    assert len(described["partitions"]) == settings.partitions


def test_a_batchs_lists_are_sent_without_waiting_out_the_producer_linger(
    settings, worker, synthetic_checkpoint
) -> None:
    settings = start_serving(
        settings.replace(producer_linger_ms=120_000), worker, synthetic_checkpoint
    )
    replay = synthetic_replay(users=20, items=SYNTHETIC_ITEMS, events=40, seed=7)
    send_events(settings, replay.events, progress=False)

    # A user whose events fell into two batches has two lists, so 20 lists need not be the
    # 20 users': wait for every user's, well within the linger (a list it held back would
    # never come).
    users = {e["user_id"] for e in replay.events}
    listed: set[str] = set()

    def every_user_listed() -> bool:
        nonlocal listed
        records = read_topic(settings.bootstrap_servers, settings.recommendations_topic)
        listed = {r.key.decode() for r in records}
        return listed >= users

    wait_for(every_user_listed, timeout_s=90, interval_s=1, message="a user's list held back")
    assert listed == users


def test_a_backlog_is_answered_in_batches_of_n_while_the_worker_catches_up(
    settings, worker, synthetic_checkpoint
) -> None:
    replay = synthetic_replay(users=1200, items=SYNTHETIC_ITEMS, events=12_000, seed=8)
    ensure_topics(settings)
    send_events(settings, replay.events, progress=False)  # all waiting before the worker
    settings = start_serving(
        settings.replace(
            batch_max_events=4000,
            batch_catch_up_ms=5000,
            batch_keep_up_events=100,
            batch_behind_events=1000,
        ),
        worker,
        synthetic_checkpoint,
    )
    worker.drain(len(replay.events))

    metrics = worker.metrics()
    batches = metric_value(metrics, "rtrank_batch_events_count")
    assert metric_value(metrics, "rtrank_batch_events_sum") == len(replay.events)
    # a first batch before it knew, a tail; under 1000 waiting, batches of 100
    assert batches <= len(replay.events) / 4000 + 3 + 1000 / 100
    assert metric_value(metrics, "rtrank_events_behind") < 4000
