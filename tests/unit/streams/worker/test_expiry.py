"""Idle users expire by the broker's clock, a bounded number of states read per tick, only in
partitions owned (real RocksDB through rocksdict, as Faust's store opens it)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from rtrank.streams.settings import Settings
from rtrank.streams.worker.dataflow import Dataflow, EventRecord
from rtrank.streams.worker.expiry import Expiry, idle_users, scan
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.state import UserState

HOUR_MS = 3600 * 1000
NOW = 1_800_000_000_000
OFFSET_KEY = b"__faust\0offset__"


@pytest.fixture
def db(tmp_path: Path):
    """A partition's store: raw keys and JSON values, plus Faust's offset key."""
    store = Rdict(str(tmp_path / "p0.db"), Options(raw_mode=True))
    store[OFFSET_KEY] = b"41"
    yield store
    store.close()


def put(db: Rdict, user: str, seen_at: int, **fields: object) -> None:
    state = UserState(history=["a"], seen=["a"], seen_at=seen_at, **fields)
    db[json.dumps(user).encode()] = json.dumps(state.to_json()).encode()  # keys as Faust's


def test_a_user_idle_longer_than_the_ttl_by_the_broker_clock_expires() -> None:
    stored = [
        (b'"old"', json.dumps({"seen_at": NOW - 2 * HOUR_MS}).encode()),
        (b'"recent"', json.dumps({"seen_at": NOW - HOUR_MS // 2}).encode()),
    ]
    assert idle_users(stored, NOW, HOUR_MS, busy=set()) == ["old"]


def test_the_broker_time_decides_not_the_time_a_producer_wrote_in_the_event() -> None:
    state = UserState(last_ts=NOW - 365 * 24 * HOUR_MS, seen_at=NOW - 1000).to_json()
    assert idle_users([(b'"u"', json.dumps(state).encode())], NOW, HOUR_MS, set()) == []


def test_a_state_written_before_broker_times_were_kept_goes_by_its_event_time() -> None:
    state = UserState(last_ts=NOW - 2 * HOUR_MS).to_json()
    del state["seen_at"]
    assert idle_users([(b'"u"', json.dumps(state).encode())], NOW, HOUR_MS, set()) == ["u"]


def test_a_user_with_an_unwritten_event_never_expires() -> None:
    stored = [(b'"u"', json.dumps({"seen_at": NOW - 2 * HOUR_MS}).encode())]
    assert idle_users(stored, NOW, HOUR_MS, busy={"u"}) == []


def test_a_ttl_of_zero_expires_nobody() -> None:
    stored = [(b'"u"', json.dumps({"seen_at": 1}).encode())]
    assert idle_users(stored, NOW, 0, set()) == []


def test_a_scan_reads_at_most_its_limit_and_goes_on_after_the_last_key(db) -> None:
    for user in ["a", "b", "c", "d", "e"]:
        put(db, user, NOW)
    first, after = scan(db, None, 2, skip={OFFSET_KEY})
    second, after2 = scan(db, after, 2, skip={OFFSET_KEY})
    third, end = scan(db, after2, 2, skip={OFFSET_KEY})
    assert [json.loads(k) for k, _ in first + second + third] == ["a", "b", "c", "d", "e"]
    assert end is None  # the pass reached the end: the next starts again at the first key


def test_a_sweep_expires_the_idle_users_of_a_partition_over_bounded_ticks(db) -> None:
    for i in range(10):
        put(db, f"old{i}", NOW - 2 * HOUR_MS)
        put(db, f"new{i}", NOW - 1000)
    expiry = Expiry(HOUR_MS, per_tick=4, skip=frozenset({OFFSET_KEY}))
    expiry.assigned([0])
    expired = []
    for _ in range(5):  # 20 users, 4 per tick
        users = expiry.sweep(0, db, NOW, busy=set())
        assert len(users) <= 4
        expired += users
        for user in users:
            del db[json.dumps(user).encode()]
    assert sorted(expired) == sorted(f"old{i}" for i in range(10))
    assert sorted(json.loads(k) for k in db.keys() if k != OFFSET_KEY) == sorted(
        f"new{i}" for i in range(10)
    )


def test_a_partition_not_owned_or_revoked_is_never_swept(db) -> None:
    put(db, "old", NOW - 2 * HOUR_MS)
    expiry = Expiry(HOUR_MS, skip=frozenset({OFFSET_KEY}))
    assert expiry.sweep(0, db, NOW, set()) == []  # never assigned
    expiry.assigned([0, 1])
    expiry.revoke([0])
    assert expiry.sweep(0, db, NOW, set()) == []
    expiry.assigned([0])
    assert expiry.sweep(0, db, NOW, set()) == ["old"]


def test_a_partition_kept_through_a_rebalance_goes_on_where_its_sweep_stood(db) -> None:
    for user in ["a", "b", "c"]:
        put(db, user, NOW - 2 * HOUR_MS)
    expiry = Expiry(HOUR_MS, per_tick=1, skip=frozenset({OFFSET_KEY}))
    expiry.assigned([0, 1])
    assert expiry.sweep(0, db, NOW, set()) == ["a"]
    expiry.assigned([0])
    assert expiry.sweep(0, db, NOW, set()) == ["b"]
    assert set(expiry.cursors) == {0}


def test_a_users_state_keeps_the_broker_time_of_their_last_event(
    scorer, sink, states, source, make_record
) -> None:
    flow = Dataflow(Settings(batch_max_ms=0), scorer, sink, states, Metrics(), source)
    event = {"user_id": "u", "item_id": "a", "event_type": "view", "ts": 1_600_000_000_000}
    record = make_record(0, event)
    stamped = EventRecord(*[getattr(record, f) for f in ("topic", "partition", "offset")],
                          record.key, record.value, record.ack, timestamp=NOW)  # fmt: skip

    async def go() -> None:
        await flow.ingest(stamped)
        await flow.answer(await flow.next_batch(unread=lambda: 0))

    asyncio.run(go())
    assert states["u"]["seen_at"] == NOW
    assert flow.broker_ms == NOW  # the clock expiry goes by


def test_the_partitions_owned_share_one_budget_of_states_per_tick(db) -> None:
    for i in range(10):
        put(db, f"old{i}", NOW - 2 * HOUR_MS)
    expiry = Expiry(HOUR_MS, per_tick=4, skip=frozenset({OFFSET_KEY}))
    expiry.assigned([0, 1])
    assert len(expiry.sweep(0, db, NOW, set())) == 2
