"""Re-ranking against a real broker and one real worker.

One worker serves the whole module (start-up is the slow part); each test uses its own
users and items, so the tests do not see each other's data.
"""

from __future__ import annotations

import json
import random
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.model.synthetic import item_id
from rtrank.streams.bench.topic_reader import end_offsets
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.scorer.ranker import TRENDING_REFRESH_S
from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import ensure_topics
from tests.integration.conftest import (
    SYNTHETIC_ITEMS,
    latest_by_key,
    read_topic,
    wait_for,
)

EXPLORE_SLOTS = 2


@pytest.fixture(scope="module")
def rerank_settings(kafka_broker, synthetic_checkpoint, tmp_path_factory) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(broker=f"kafka://{kafka_broker.bootstrap}").isolated(
        f"rerank-{tag}",
        data_dir=tmp_path_factory.mktemp("rerank-worker"),
        web_port=local_kafka.free_port(),
        partitions=4,
        standby_replicas=0,
        session_timeout_s=10.0,
        checkpoint=str(synthetic_checkpoint),
        update_catch_up_s=5.0,
        explore_slots=EXPLORE_SLOTS,
        cold_start_max_history=1,
    )


@pytest.fixture(scope="module")
def rerank_worker(rerank_settings: Settings, tmp_path_factory) -> Iterator[WorkerProcess]:
    ensure_topics(rerank_settings)
    proc = WorkerProcess(rerank_settings, Path(tmp_path_factory.mktemp("logs")) / "worker.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def now_ms() -> int:
    return int(time.time() * 1000)


def send_raw(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def publish_items(settings: Settings, items: list[dict]) -> None:
    """Write catalogue records and wait until the worker's GlobalTable holds them."""
    send_raw(
        settings,
        settings.items_topic,
        [(str(i["item_id"]).encode(), json.dumps(i).encode()) for i in items],
    )
    changelog = f"{settings.app_id}-item_to_info-changelog"
    wanted = {str(i["item_id"]): i for i in items}

    def applied() -> bool:
        table = latest_by_key(read_topic(settings.bootstrap_servers, changelog), json_keys=True)
        return all(table.get(k, {}).get("available") == v["available"] for k, v in wanted.items())

    wait_for(applied, timeout_s=60, message="catalogue records not applied")


def events_for(users: list[str], items: list[str], per_user: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"user_id": u, "item_id": rng.choice(items), "event_type": "view", "ts": None}
        for _ in range(per_user)
        for u in users
    ]


def events_sent_so_far(settings: Settings) -> dict[int, int]:
    """The events topic's end offsets: events sent later have offsets at or past them."""
    return end_offsets(settings, settings.events_topic)


def lists_of(
    settings: Settings, users: set[str], since: dict[int, int] | None = None
) -> list[dict]:
    """``users``' lists; with ``since`` (`events_sent_so_far`), only those answering an
    event sent after it."""
    records = read_topic(settings.bootstrap_servers, settings.recommendations_topic)
    out = [json.loads(r.value) for r in records]
    return [
        r
        for r in out
        if r["user_id"] in users
        and r["based_on"]["offset"] >= (since or {}).get(r["based_on"]["partition"], 0)
    ]


def answered(settings: Settings, users: set[str], since: dict[int, int] | None = None) -> set[str]:
    return {r["user_id"] for r in lists_of(settings, users, since)}


CATALOGUE = [item_id(n) for n in range(SYNTHETIC_ITEMS)]


def test_an_unavailable_item_never_appears_in_lists_after_the_next_batch(
    rerank_settings, rerank_worker
) -> None:
    s = rerank_settings
    users = [f"avail-{n}" for n in range(60)]
    send_events(s, events_for(users, CATALOGUE[:100], 4, seed=1), progress=False)
    wait_for(lambda: answered(s, set(users)) == set(users), timeout_s=90)
    shown = Counter(i["item_id"] for r in lists_of(s, set(users)) for i in r["items"])
    hidden = [i for i, _ in shown.most_common(3)]
    publish_items(s, [{"item_id": i, "available": False} for i in hidden])
    after = events_sent_so_far(s)
    send_events(s, events_for(users, CATALOGUE[:100], 2, seed=2), progress=False)
    wait_for(lambda: answered(s, set(users), after) == set(users), timeout_s=90)
    for rec in lists_of(s, set(users), after):
        assert not set(hidden) & {i["item_id"] for i in rec["items"]}, rec


def test_malformed_catalogue_records_go_to_the_items_dlq(rerank_settings, rerank_worker) -> None:
    s = rerank_settings
    bad = [
        (b"x1", b"{not json"),
        (b"x2", json.dumps({"item_id": "x2"}).encode()),
        (b"x3", json.dumps({"item_id": "x3", "available": "yes"}).encode()),
    ]
    send_raw(s, s.items_topic, bad)
    dead = read_topic(s.bootstrap_servers, s.items_dlq_topic, expected=3, timeout_s=60)
    assert sorted(r.value for r in dead) == sorted(v for _, v in bad)
    assert all(dict(r.headers)["rtrank-reason"] for r in dead)


def test_a_first_event_gets_a_list_of_what_is_trending(rerank_settings, rerank_worker) -> None:
    s = rerank_settings
    hot = CATALOGUE[400:405]  # weights 50, 40, 30, 20, 10 events
    warm = [
        {"user_id": f"trend-{n}-{k}", "item_id": item, "event_type": "view", "ts": None}
        for n, item in enumerate(hot)
        for k in range(50 - 10 * n)
    ]
    send_events(s, warm, progress=False)
    warm_users = {e["user_id"] for e in warm}
    # Each user has one event, so once all are answered every warm-up event was counted;
    # cold lists read trending from a cache refreshed at most every TRENDING_REFRESH_S.
    wait_for(lambda: answered(s, warm_users) == warm_users, timeout_s=60)
    time.sleep(TRENDING_REFRESH_S + 0.1)
    newcomer = f"newcomer-{uuid.uuid4().hex[:6]}"
    send_events(
        s,
        [{"user_id": newcomer, "item_id": CATALOGUE[499], "event_type": "view", "ts": None}],
        progress=False,
    )
    wait_for(lambda: answered(s, {newcomer}) == {newcomer}, timeout_s=60)
    [rec] = lists_of(s, {newcomer})
    items = [i["item_id"] for i in rec["items"]]
    assert items and items[0] == hot[0]
    assert [i["item_id"] for i in rec["items"] if i.get("source") == "trending"][:5] == hot


def test_new_catalogue_items_fill_exploration_slots_within_the_quota(
    rerank_settings, rerank_worker
) -> None:
    s = rerank_settings
    new_items = [f"brand-new-{uuid.uuid4().hex[:6]}-{n}" for n in range(5)]
    publish_items(
        s,
        [
            {"item_id": i, "available": True, "category": "new", "created_at": now_ms()}
            for i in new_items
        ],
    )
    users = [f"explore-{n}" for n in range(40)]
    after = events_sent_so_far(s)
    send_events(s, events_for(users, CATALOGUE[:100], 3, seed=3), progress=False)
    wait_for(lambda: answered(s, set(users), after) == set(users), timeout_s=90)
    shown_new = 0
    for rec in lists_of(s, set(users), after):
        fresh = [i for i in rec["items"] if i["item_id"] in new_items]
        assert len(fresh) <= EXPLORE_SLOTS, rec
        assert all(i.get("source") == "explore" for i in fresh), rec
        shown_new += len(fresh)
    assert shown_new > 0


def test_each_of_1000_rank_requests_is_answered_once_with_its_own_candidates(
    rerank_settings, rerank_worker
) -> None:
    s = rerank_settings
    rng = random.Random(7)
    requests = {}
    for n in range(1000):
        candidates = rng.sample(CATALOGUE, rng.randint(3, 12)) + [f"unknown-{n}"]
        requests[f"req-{n}"] = candidates
    records = [
        (
            f"rr-user-{n % 50}".encode(),
            json.dumps(
                {"request_id": rid, "user_id": f"rr-user-{n % 50}", "candidates": cands}
            ).encode(),
        )
        for n, (rid, cands) in enumerate(requests.items())
    ]
    records.append((b"bad", b"{not a request"))
    send_raw(s, s.rank_requests_topic, records)
    responses = read_topic(
        s.bootstrap_servers, s.rank_responses_topic, expected=1001, timeout_s=150
    )
    bodies = [json.loads(r.value) for r in responses]
    errors = [b for b in bodies if "error" in b]
    answers = Counter(b["request_id"] for b in bodies if "error" not in b)
    assert answers == Counter(dict.fromkeys(requests, 1))
    for body in bodies:
        if "error" not in body:  # every candidate is ranked, or filtered with its reason
            returned = [i["item_id"] for i in body["items"] + body["filtered"]]
            assert sorted(returned) == sorted(requests[body["request_id"]])
            assert all(f["reason"] == "unavailable" for f in body["filtered"])
    assert len(errors) == 1 and errors[0]["error"]["code"] == "not_json"


def test_the_latest_list_is_served_over_http(rerank_settings, rerank_worker) -> None:
    s = rerank_settings
    users = [f"http-{n}" for n in range(20)]
    send_events(s, events_for(users, CATALOGUE[:100], 3, seed=4), progress=False)
    wait_for(lambda: answered(s, set(users)) == set(users), timeout_s=90)

    def served(user: str) -> list[str] | None:
        url = f"http://127.0.0.1:{s.web_port}/recommendations/{user}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return [i["item_id"] for i in json.loads(response.read())["items"]]
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
            return None

    def all_latest() -> bool:
        latest = latest_by_key(read_topic(s.bootstrap_servers, s.recommendations_topic))
        return all(served(u) == [i["item_id"] for i in latest[u]["items"]] for u in users)

    wait_for(all_latest, timeout_s=60, interval_s=1, message="HTTP lists differ from the latest")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{s.web_port}/recommendations/nobody", timeout=5)
    assert missing.value.code == 404
