"""The worker's dataflow in memory: events in, then exactly the lists, training examples,
dead letters, table writes and acks that come out (doubles in ``conftest.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rtrank.streams.records import Event
from rtrank.streams.settings import Settings
from rtrank.streams.worker.dataflow import (
    RESEEK_AFTER_S,
    STALLED_AFTER_S,
    Dataflow,
    EventRecord,
    Pending,
    events_behind,
    requests_for,
    write_state,
)
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.state import UserState
from tests.unit.streams.worker.conftest import run

TS = 1_700_000_000_000
SETTINGS = Settings(
    batch_max_ms=0,  # a batch is what is queued when it begins
    batch_catch_up_ms=0,
    event_weights="view:1,purchase:8",
    sequence_event_types="view,purchase",  # a click stays outside the sequence
)


P0, P1 = ("events", 0), ("events", 1)


def event(user: str, item: str, event_type: str = "view", ts: int = TS) -> dict[str, Any]:
    return {"user_id": user, "item_id": item, "event_type": event_type, "ts": ts}


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def flow(scorer, sink, states, metrics, source) -> Dataflow:  # noqa: ANN001 - conftest doubles
    return Dataflow(SETTINGS, scorer, sink, states, metrics, source)


@pytest.fixture
def collecting_flow(scorer, sink, states, metrics, source) -> Dataflow:  # noqa: ANN001
    """A flow whose batches close at 2 events or 0.5 s after the first: a test sees one
    while it collects."""
    settings = SETTINGS.model_copy(update={"batch_max_events": 2, "batch_max_ms": 500})
    return Dataflow(settings, scorer, sink, states, metrics, source)


def count(metrics: Metrics, outcome: str) -> float | None:
    return metrics.registry.get_sample_value("rtrank_events_total", {"outcome": outcome})


# -- One valid event -------------------------------------------------------------------------


def test_a_valid_event_is_answered_with_one_list(flow, sink, make_record, scorer) -> None:
    run(flow, make_record(5, event("u1", "i1")))
    [sent] = sink.on(SETTINGS.recommendations_topic)
    rec = sent.json()
    assert sent.key == b"u1"
    assert rec["items"] == [{"item_id": "after-i1", "score": 1.0}]
    assert rec["model_version"] == 7
    assert rec["based_on"] == {"topic": "events", "partition": 0, "offset": 5, "ts": TS}
    assert rec["batch_size"] == 1
    assert set(rec["timings"]) == {
        *("fetch", "handover", "queued", "inference", "compute", "produce", "total")
    }
    assert rec["timings"]["compute"] == scorer.COMPUTE_S * 1000  # as the model reported it


def test_a_valid_event_sends_one_training_example_with_its_types_weight(
    flow, sink, make_record
) -> None:
    run(flow, make_record(0, event("u1", "i1")), make_record(1, event("u1", "i2", "purchase")))
    examples = [s.json() for s in sink.on(SETTINGS.training_topic)]
    assert [(e["prefix"], e["item_id"], e["weight"]) for e in examples] == [
        ([], "i1", 1.0),
        (["i1"], "i2", 8.0),
    ]
    assert [s.key for s in sink.on(SETTINGS.training_topic)] == [b"u1", b"u1"]


def test_the_training_example_is_sent_at_ingest_before_the_batch_is_answered(
    flow, sink, make_record
) -> None:
    asyncio.run(flow.ingest(make_record(0, event("u1", "i1"))))
    assert [s.topic for s in sink.sent] == [SETTINGS.training_topic]


def test_a_valid_events_state_is_written_once_with_its_list(flow, states, make_record) -> None:
    run(flow, make_record(5, event("u1", "i1")))
    assert states.writes == [("u1", 5)]
    state = UserState.from_json(states["u1"])
    assert (state.history, state.seen, state.events, state.last_offset) == (["i1"], ["i1"], 1, 5)
    assert (state.last_list, state.last_list_version) == (["after-i1"], 7)
    assert flow.unwritten == {}


def test_events_are_acked_after_the_lists_were_sent_now_and_the_states_written(
    flow, journal, make_record
) -> None:
    run(flow, make_record(0, event("u1", "i1")), make_record(1, event("u2", "i9")))
    assert journal == [
        ("send", SETTINGS.training_topic),
        ("send", SETTINGS.training_topic),
        ("score", 2),
        ("send", SETTINGS.recommendations_topic),
        ("put", "u1"),
        ("send", SETTINGS.recommendations_topic),
        ("put", "u2"),
        ("send now",),
        ("ack", 0),
        ("ack", 1),
    ]


def test_ingest_remembers_the_offset_read_last_per_partition(flow, make_record) -> None:
    async def go() -> None:
        await flow.ingest(make_record(3, event("u1", "i1"), partition=0))
        await flow.ingest(make_record(4, event("u1", "i2"), partition=0))
        await flow.ingest(make_record(9, b"not json", partition=1))

    asyncio.run(go())
    assert flow.read_up_to == {("events", 0): 4, ("events", 1): 9}


# -- Dead letters ----------------------------------------------------------------------------


def test_a_malformed_event_is_dead_lettered_as_it_came_with_its_reason(
    flow, sink, make_record
) -> None:
    run(flow, make_record(3, b"{not json", key=b"u1"))
    [dead] = sink.on(SETTINGS.dlq_topic)
    assert (dead.key, dead.value) == (b"u1", b"{not json")
    assert dead.headers["rtrank-reason"].startswith(b"not_json: ")
    assert dead.headers["rtrank-source"] == b"events/0/3"


def test_a_dead_lettered_event_is_acked_and_gets_no_list_example_or_state(
    flow, sink, states, journal, metrics, make_record
) -> None:
    run(flow, make_record(3, event("u1", "i1", ts=5)))  # ts out of range
    assert [s.topic for s in sink.sent] == [SETTINGS.dlq_topic]
    assert states.writes == []
    assert journal[-1] == ("ack", 3)
    assert count(metrics, "invalid") == 1
    assert (
        metrics.registry.get_sample_value(
            "rtrank_dead_letters_total", {"reason": "ts_out_of_range"}
        )
        == 1
    )


# -- Redelivery ------------------------------------------------------------------------------


def test_a_redelivered_event_is_answered_again_but_not_applied_twice(
    flow, sink, states, metrics, make_record
) -> None:
    run(flow, make_record(5, event("u1", "i1")))
    applied = dict(states["u1"])
    run(flow, make_record(5, event("u1", "i1")))  # the same offset again, after a crash
    assert len(sink.on(SETTINGS.training_topic)) == 1
    assert len(sink.on(SETTINGS.recommendations_topic)) == 2
    state = states["u1"]
    assert (state["history"], state["events"], state["last_offset"]) == (
        applied["history"],
        applied["events"],
        applied["last_offset"],
    )
    assert count(metrics, "redelivered") == 1


def test_an_event_before_the_last_applied_offset_is_a_redelivery(
    flow, sink, states, make_record
) -> None:
    states.data["u1"] = UserState(history=["i1", "i2"], seen=["i1", "i2"], last_offset=8).to_json()
    run(flow, make_record(6, event("u1", "i1")))
    assert sink.on(SETTINGS.training_topic) == []
    assert states["u1"]["history"] == ["i1", "i2"]


def test_only_newly_applied_events_are_fresh_for_the_scorer(
    flow, scorer, states, make_record
) -> None:
    states.data["u1"] = UserState(history=["i1"], seen=["i1"], last_offset=8).to_json()
    run(flow, make_record(8, event("u1", "i1")), make_record(9, event("u1", "i2")))
    [(_, fresh)] = scorer.calls
    assert fresh == [Event("u1", "i2", "view", TS)]


# -- Several events of one user in a batch ---------------------------------------------------


def test_a_users_events_in_one_batch_get_one_list_from_the_latest(
    flow, sink, scorer, make_record
) -> None:
    run(
        flow,
        make_record(0, event("u1", "i1")),
        make_record(1, event("u1", "i2")),
        make_record(2, event("u1", "i3")),
    )
    [(requests, _)] = scorer.calls
    assert [r.history for r in requests] == [["i1", "i2", "i3"]]
    [sent] = sink.on(SETTINGS.recommendations_topic)
    assert sent.json()["based_on"]["offset"] == 2
    assert sent.json()["batch_size"] == 3


def test_a_users_events_in_one_batch_are_written_once_and_all_acked(
    flow, states, journal, make_record
) -> None:
    run(
        flow,
        make_record(0, event("u1", "i1")),
        make_record(1, event("u1", "i2")),
        make_record(2, event("u1", "i3")),
    )
    assert states.writes == [("u1", 2)]
    assert [e for e in journal if e[0] == "ack"] == [("ack", 0), ("ack", 1), ("ack", 2)]


def test_while_few_events_wait_a_batch_takes_the_keep_up_size_and_behind_the_most(
    scorer, sink, states, metrics, source, make_record
) -> None:
    settings = SETTINGS.model_copy(
        update={"batch_keep_up_events": 2, "batch_behind_events": 5, "batch_max_events": 100}
    )
    flow = Dataflow(settings, scorer, sink, states, metrics, source)

    async def go() -> list[int]:
        for offset in range(4):
            await flow.ingest(make_record(offset, event(f"u{offset}", "i1")))
        sizes = [len(await flow.next_batch(unread=lambda: 0))]  # 4 waiting: keeping up
        for offset in range(4, 10):
            await flow.ingest(make_record(offset, event(f"u{offset}", "i1")))
        sizes.append(len(await flow.next_batch(unread=lambda: 0)))  # 8 waiting: behind
        return sizes

    assert asyncio.run(go()) == [2, 8]


# -- Event types, state and quality ----------------------------------------------------------


def test_an_event_type_outside_the_sequence_is_answered_without_entering_the_state(
    flow, sink, states, metrics, make_record
) -> None:
    run(flow, make_record(0, event("u1", "i1")), make_record(1, event("u1", "i2", "click")))
    assert [s.json()["item_id"] for s in sink.on(SETTINGS.training_topic)] == ["i1"]
    [sent] = sink.on(SETTINGS.recommendations_topic)
    assert sent.json()["based_on"]["offset"] == 1
    assert (states["u1"]["history"], states["u1"]["last_offset"]) == (["i1"], 0)
    assert count(metrics, "outside_sequence") == 1


def test_a_state_ingested_while_its_batch_is_scored_stays_unwritten_and_learns_the_list(
    flow, scorer, states, make_record
) -> None:
    async def newer_event() -> None:
        scorer.while_scoring = None
        await flow.ingest(make_record(1, event("u1", "i2")))

    scorer.while_scoring = newer_event
    run(flow, make_record(0, event("u1", "i1")))
    assert states["u1"]["history"] == ["i1"]
    newer = flow.unwritten["u1"]
    assert newer.history == ["i1", "i2"]
    assert (newer.last_list, newer.last_list_version) == (["after-i1"], 7)


def test_an_event_is_tested_against_the_list_its_user_was_last_sent(
    flow, metrics, make_record
) -> None:
    run(flow, make_record(0, event("u1", "i1")))  # the list: ["after-i1"]
    run(flow, make_record(1, event("u1", "after-i1")))
    assert metrics.registry.get_sample_value("rtrank_online_tested_total") == 1
    assert metrics.registry.get_sample_value("rtrank_online_tested_hits_total") == 1


def test_a_batch_counts_its_lists(flow, metrics, make_record) -> None:
    run(flow, make_record(0, event("u1", "i1")), make_record(1, event("u2", "i1")))
    assert metrics.registry.get_sample_value("rtrank_recommendations_total") == 2
    assert metrics.registry.get_sample_value("rtrank_batch_events_count") == 1
    assert metrics.registry.get_sample_value("rtrank_answer_seconds_count") == 2


# -- Gaps in a partition --------------------------------------------------------------------


def test_an_event_after_a_gap_is_left_unread_and_its_partition_read_again_from_the_gap(
    flow, sink, journal, make_record
) -> None:
    async def go() -> None:
        for offset in (3, 4, 7):  # 5 and 6 never reached the agent
            await flow.ingest(make_record(offset, event("u1", f"i{offset}")))

    asyncio.run(go())
    assert [e for e in journal if e[0] in ("seek", "ack")] == [("seek", 0, 5)]
    assert [s.json()["item_id"] for s in sink.on(SETTINGS.training_topic)] == ["i3", "i4"]
    assert flow.queue.qsize() == 2
    assert flow.read_up_to == {P0: 4}


def test_a_partition_read_again_after_a_gap_applies_its_events_in_order(
    flow, states, journal, make_record
) -> None:
    offsets = (3, 4, 7, 8, 5, 6, 7, 8)  # 7 and 8 dropped, then 5.. read again

    async def go() -> None:
        for offset in offsets:
            await flow.ingest(make_record(offset, event("u1", f"i{offset}")))
        await flow.answer(await flow.next_batch(unread=lambda: 0))

    asyncio.run(go())
    assert states["u1"]["history"] == ["i3", "i4", "i5", "i6", "i7", "i8"]
    assert [e for e in journal if e[0] in ("seek", "ack")] == [
        ("seek", 0, 5),  # once for the gap, not for each event after it
        ("ack", 3),
        ("ack", 4),
        ("ack", 5),
        ("ack", 6),
        ("ack", 7),
        ("ack", 8),
    ]


def test_a_gap_whose_events_come_round_again_without_it_is_sought_again(
    flow, sink, journal, make_record
) -> None:
    async def go() -> None:
        for offset in (3, 6, 7, 6, 7, 4):  # 6 again: the first seek was undone
            await flow.ingest(make_record(offset, event("u1", f"i{offset}")))

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 4), ("seek", 0, 4)]
    assert [s.json()["item_id"] for s in sink.on(SETTINGS.training_topic)] == ["i3", "i4"]


def test_an_event_after_the_gap_past_the_bound_after_the_seek_has_it_sought_again(
    flow, journal, make_record, clock
) -> None:
    flow.clock = clock

    async def go() -> None:
        for offset in (3, 6, 7):  # sought back to 4 at 6
            await flow.ingest(make_record(offset, event("u1", f"i{offset}")))
        clock.now = RESEEK_AFTER_S  # the seek was lost: 4 never came, events after it did
        await flow.ingest(make_record(8, event("u1", "i8")))
        await flow.ingest(make_record(9, event("u1", "i9")))

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 4), ("seek", 0, 4)]


def test_a_gap_not_read_within_the_bound_is_sought_again_with_no_event_after_it(
    flow, journal, make_record, clock
) -> None:
    flow.clock = clock

    async def go() -> None:
        for offset in (3, 6):
            await flow.ingest(make_record(offset, event("u1", f"i{offset}")))
        clock.now = RESEEK_AFTER_S / 2
        await flow.reseek_stalled()  # not yet: the seek may still be taking effect
        clock.now = RESEEK_AFTER_S
        await flow.reseek_stalled()
        await flow.reseek_stalled()  # once per bound, not at every call

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 4), ("seek", 0, 4)]


def test_a_gap_read_is_not_sought_again(flow, journal, make_record, clock) -> None:
    flow.clock = clock

    async def go() -> None:
        for offset in (3, 6, 4, 5, 6):
            await flow.ingest(make_record(offset, event("u1", f"i{offset}")))
        clock.now = 10 * RESEEK_AFTER_S
        await flow.reseek_stalled()

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 4)]


def test_a_revoked_partition_is_not_sought_again(flow, journal, make_record, clock) -> None:
    flow.clock = clock

    async def go() -> None:
        for offset in (3, 6):
            await flow.ingest(make_record(offset, event("u1", f"i{offset}")))
        flow.revoke({P0})
        clock.now = RESEEK_AFTER_S
        await flow.reseek_stalled()

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 4)]


def test_a_partition_fetched_past_its_next_event_with_none_read_in_the_bound_is_read_again(
    flow, source, journal, make_record, clock
) -> None:
    flow.clock = clock
    flow.assigned({P0})

    async def go() -> None:
        await flow.ingest(make_record(3, event("u1", "i3")))
        source.positions[P0] = 9  # 4..8 fetched, then lost: no event after them
        clock.now = STALLED_AFTER_S - 0.1
        await flow.reseek_stalled()
        clock.now = STALLED_AFTER_S
        await flow.reseek_stalled()

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 4)]
    assert flow.skipping[P0].gap == 4


def test_a_partition_whose_fetched_events_keep_arriving_is_not_read_again(
    flow, source, journal, make_record, clock
) -> None:
    flow.clock = clock
    flow.assigned({P0})
    source.positions[P0] = 9

    async def go() -> None:
        for offset in (3, 4, 5):
            clock.now += STALLED_AFTER_S / 2
            await flow.ingest(make_record(offset, event("u1", f"i{offset}")))
            await flow.reseek_stalled()

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == []


def test_an_assigned_partition_fetched_past_its_committed_offset_with_none_read_is_read_again(
    flow, source, journal, clock
) -> None:
    flow.clock = clock
    source.commits[P0], source.positions[P0] = 5, 9
    flow.assigned({P0})
    clock.now = STALLED_AFTER_S
    asyncio.run(flow.reseek_stalled())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 5)]


def test_a_partition_read_up_to_its_fetch_position_is_not_read_again(
    flow, source, journal, make_record, clock
) -> None:
    flow.clock = clock
    flow.assigned({P0})
    source.positions[P0] = 4

    async def go() -> None:
        await flow.ingest(make_record(3, event("u1", "i3")))
        clock.now = 10 * STALLED_AFTER_S
        await flow.reseek_stalled()

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == []


class LosingSource:
    """One partition of events 0..``end`` - 1 read in order from a position, where the
    first seek is lost (the position stays) and the others take: what Faust's consumer did
    when its drain loop moved the read offset past a seek."""

    def __init__(self, end: int, lost: int) -> None:
        self.end, self.position, self.lost = end, 0, lost
        self.seeks: list[int] = []

    async def seek(self, tp: tuple[str, int], offset: int) -> None:
        self.seeks.append(offset)
        if len(self.seeks) > 1:
            self.position = offset

    def committed(self, tp: tuple[str, int]) -> int | None:
        return 0

    async def next_on_broker(self, tp: tuple[str, int]) -> int | None:
        return 0

    def member(self) -> bool:
        return True

    def fetch_positions(self) -> dict[tuple[str, int], int]:
        return {}

    def next_offset(self) -> int | None:
        """The next event's offset; ``lost`` is skipped the first time (a rebalance's loss)."""
        if self.position >= self.end:
            return None
        offset = self.position
        self.position += 1
        if offset == self.lost and len(self.seeks) == 0:
            return self.next_offset()
        return offset


def test_a_partition_whose_seek_back_to_a_gap_is_lost_still_applies_every_event_in_order(
    scorer, sink, states, metrics, make_record, clock
) -> None:
    source = LosingSource(end=12, lost=4)
    flow = Dataflow(SETTINGS, scorer, sink, states, metrics, source)
    flow.clock = clock

    async def go() -> None:
        while (offset := source.next_offset()) is not None or flow.skipping:
            if offset is None:  # the partition is quiet: only the timer runs
                clock.now += 1.0
                await flow.reseek_stalled()
                continue
            await flow.ingest(make_record(offset, event("u1", f"i{offset}")))
        await flow.answer(await flow.next_batch(unread=lambda: 0))

    asyncio.run(asyncio.wait_for(go(), timeout=10))
    assert states["u1"]["history"] == [f"i{offset}" for offset in range(12)]
    assert source.seeks == [4, 4]


def test_a_partitions_first_event_past_its_committed_offset_is_a_gap(
    flow, source, journal, make_record
) -> None:
    source.commits[P0] = 5
    asyncio.run(flow.ingest(make_record(8, event("u1", "i8"))))  # 5..7 lost
    assert [e for e in journal if e[0] in ("seek", "send")] == [("seek", 0, 5)]


def test_a_partitions_first_event_at_its_committed_offset_is_read(
    flow, source, sink, make_record
) -> None:
    source.commits[P0] = 5
    asyncio.run(flow.ingest(make_record(5, event("u1", "i5"))))
    assert [s.json()["item_id"] for s in sink.on(SETTINGS.training_topic)] == ["i5"]


def test_a_partitions_first_event_past_its_committed_offset_on_the_broker_is_a_gap(
    flow, source, journal, make_record
) -> None:
    source.on_broker[P0] = 5  # the consumer itself knows no committed offset
    asyncio.run(flow.ingest(make_record(8, event("u1", "i8"))))  # 5..7 lost
    assert [e for e in journal if e[0] in ("seek", "send")] == [("seek", 0, 5)]


def test_a_partitions_first_event_is_read_when_it_was_never_committed(
    flow, sink, make_record
) -> None:
    asyncio.run(flow.ingest(make_record(7, event("u1", "i7"))))
    assert [s.json()["item_id"] for s in sink.on(SETTINGS.training_topic)] == ["i7"]


def test_an_event_before_the_last_one_read_is_read_as_a_redelivery(
    flow, journal, make_record
) -> None:
    async def go() -> None:
        for offset in (3, 4, 5, 2):  # the partition read again from its committed offset
            await flow.ingest(make_record(offset, event("u1", f"i{offset}")))

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == []
    assert flow.read_up_to == {P0: 2}


# -- Revoked partitions ----------------------------------------------------------------------


def test_a_revoked_partitions_queued_events_are_neither_answered_nor_acked(
    flow, sink, states, journal, make_record
) -> None:
    async def go() -> None:
        await flow.ingest(make_record(0, event("u1", "i1"), partition=0))
        await flow.ingest(make_record(1, event("u1", "i2"), partition=0))
        await flow.ingest(make_record(0, event("u2", "i9"), partition=1))
        assert flow.revoke({P0}) == 2
        await flow.answer(await flow.next_batch(unread=lambda: 0))

    asyncio.run(go())
    assert [s.key for s in sink.on(SETTINGS.recommendations_topic)] == [b"u2"]
    assert states.writes == [("u2", 0)]
    assert [e for e in journal if e[0] == "ack"] == [("ack", 0)]  # u2's, on partition 1


def test_a_revoked_partitions_unwritten_states_are_forgotten(flow, make_record) -> None:
    async def go() -> None:
        await flow.ingest(make_record(3, event("u1", "i1"), partition=0))
        await flow.ingest(make_record(4, event("u2", "i1"), partition=1))
        flow.revoke({P0})

    asyncio.run(go())
    assert list(flow.unwritten) == ["u2"]


def test_the_offsets_read_are_forgotten_for_partitions_not_assigned_again(
    flow, make_record
) -> None:
    async def go() -> None:
        await flow.ingest(make_record(3, event("u1", "i1"), partition=0))
        await flow.ingest(make_record(4, event("u2", "i1"), partition=1))
        await flow.answer(await flow.next_batch(unread=lambda: 0))
        flow.revoke({P0, P1})
        flow.assigned({P1})

    asyncio.run(go())
    assert flow.read_up_to == {P1: 4}


def test_a_partition_kept_through_a_rebalance_is_read_on_without_a_gap(
    flow, journal, make_record
) -> None:
    async def go() -> None:
        await flow.ingest(make_record(3, event("u1", "i1"), partition=0))
        await flow.answer(await flow.next_batch(unread=lambda: 0))
        flow.revoke({P0})  # eager rebalancing: every partition revoked, then assigned again
        flow.assigned({P0})
        await flow.ingest(make_record(9, event("u1", "i9"), partition=0))  # 4..8 lost

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 4)]


def test_a_partition_kept_through_a_rebalance_reads_again_the_events_it_dropped(
    flow, journal, make_record
) -> None:
    async def go() -> None:
        await flow.ingest(make_record(3, event("u1", "i1"), partition=0))
        await flow.ingest(make_record(4, event("u1", "i2"), partition=0))
        flow.revoke({P0})  # 3 and 4 dropped from the queue, never acked
        flow.assigned({P0})
        await flow.ingest(make_record(5, event("u1", "i3"), partition=0))  # no seek back to 3

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 3)]
    assert flow.queue.empty() and flow.unwritten == {}  # 5 is not applied without 3 and 4


def test_an_event_dropped_while_ingested_is_read_again_from_its_offset(
    flow, sink, journal, make_record
) -> None:
    async def revoke_and_keep(topic: str) -> None:
        flow.revoke({P0})
        flow.assigned({P0})

    async def go() -> None:
        await flow.ingest(make_record(2, event("u1", "i1"), partition=0))
        await flow.answer(await flow.next_batch(unread=lambda: 0))
        sink.while_sending = revoke_and_keep  # while 3's training example is sent
        await flow.ingest(make_record(3, event("u1", "i2"), partition=0))
        sink.while_sending = None
        await flow.ingest(make_record(4, event("u1", "i3"), partition=0))

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 3)]


def test_a_batch_whose_partition_is_revoked_while_scored_answers_only_the_other_partitions(
    flow, scorer, sink, states, journal, make_record
) -> None:
    async def revoke() -> None:
        flow.revoke({P0})

    scorer.while_scoring = revoke
    run(
        flow,
        make_record(5, event("u1", "i1"), partition=0),
        make_record(6, event("u2", "i2"), partition=1),
    )
    assert [s.key for s in sink.on(SETTINGS.recommendations_topic)] == [b"u2"]
    assert states.writes == [("u2", 6)]
    assert [e for e in journal if e[0] == "ack"] == [("ack", 6)]
    assert flow.unwritten == {}


def test_a_state_is_not_written_nor_acked_when_revoked_while_its_list_is_sent(
    flow, sink, states, journal, make_record
) -> None:
    async def revoke(topic: str) -> None:
        if topic == SETTINGS.recommendations_topic:
            flow.revoke({P0})

    sink.while_sending = revoke
    run(flow, make_record(5, event("u1", "i1"), partition=0))
    assert states.writes == []
    assert [e for e in journal if e[0] == "ack"] == []


def test_an_event_revoked_while_ingested_leaves_no_unwritten_state_and_is_not_answered(
    flow, sink, journal, make_record
) -> None:
    async def revoke(topic: str) -> None:
        flow.revoke({P0})

    sink.while_sending = revoke  # while its training example is sent

    async def go() -> None:
        await flow.ingest(make_record(5, event("u1", "i1"), partition=0))
        sink.while_sending = None
        await flow.ingest(make_record(0, event("u2", "i2"), partition=1))
        await flow.answer(await flow.next_batch(unread=lambda: 0))

    asyncio.run(go())
    assert flow.unwritten == {}
    assert [s.key for s in sink.on(SETTINGS.recommendations_topic)] == [b"u2"]
    assert [e for e in journal if e[0] == "ack"] == [("ack", 0)]


def test_a_partition_revoked_and_assigned_back_reads_the_table_not_the_stale_state(
    flow, sink, states, make_record
) -> None:
    async def go() -> None:
        await flow.ingest(make_record(5, event("u1", "i1"), partition=0))
        flow.revoke({P0})
        flow.assigned({P1})  # P0 to another worker, which applied 5..7 and wrote the table
        states.data["u1"] = UserState(
            history=["i1", "i2", "i3"], seen=["i1", "i2", "i3"], events=3, last_offset=7
        ).to_json()
        await flow.ingest(make_record(8, event("u1", "i4"), partition=0))  # assigned back
        await flow.answer(await flow.next_batch(unread=lambda: 0))

    asyncio.run(go())
    [sent] = sink.on(SETTINGS.recommendations_topic)
    assert sent.json()["based_on"]["offset"] == 8
    assert states.writes == [("u1", 8)]
    assert (states["u1"]["history"], states["u1"]["events"]) == (["i1", "i2", "i3", "i4"], 4)
    assert [s.json()["prefix"] for s in sink.on(SETTINGS.training_topic)] == [
        [],
        ["i1", "i2", "i3"],
    ]


def test_a_partition_revoked_while_its_batch_is_collected_reads_that_batch_again(
    collecting_flow, journal, make_record
) -> None:
    async def go() -> None:
        await flow.ingest(make_record(3, event("u1", "i1"), partition=0))
        collecting = asyncio.create_task(flow.next_batch(unread=lambda: 0))
        await asyncio.sleep(0)  # 3 is taken; the batch waits for more
        await flow.ingest(make_record(4, event("u1", "i2"), partition=0))  # queued
        flow.revoke({P0})  # eager rebalancing: every partition revoked, then assigned again
        flow.assigned({P0})
        await flow.ingest(make_record(5, event("u1", "i3"), partition=0))  # the consumer went on
        collecting.cancel()

    flow = collecting_flow
    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 3)]
    assert flow.unwritten == {}


# -- The group's lease -----------------------------------------------------------------------


def test_a_batch_whose_lease_lapses_while_scored_writes_sends_and_acks_nothing(
    flow, scorer, source, sink, states, journal, make_record
) -> None:
    async def lapse() -> None:
        source.lease = False  # the worker stood still past its session meanwhile

    scorer.while_scoring = lapse
    run(
        flow,
        make_record(5, event("u1", "i1"), partition=0),
        make_record(6, event("u2", "i2"), partition=1),
    )
    assert sink.on(SETTINGS.recommendations_topic) == []
    assert states.writes == []
    assert [e for e in journal if e[0] == "ack"] == []
    assert flow.unwritten == {}


def test_events_read_while_the_lease_has_lapsed_are_left_unread_and_sought_back_to(
    flow, source, sink, journal, make_record
) -> None:
    source.commits[P0] = 5
    source.lease = False

    async def go() -> None:
        await flow.ingest(make_record(5, event("u1", "i1"), partition=0))
        await flow.ingest(make_record(6, event("u1", "i2"), partition=0))  # fetched before

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 5)]
    assert sink.on(SETTINGS.training_topic) == [] and flow.queue.empty()


def test_a_lease_that_holds_again_reads_again_the_events_its_lapse_dropped(
    flow, source, journal, make_record
) -> None:
    async def go() -> None:
        await flow.ingest(make_record(3, event("u1", "i1"), partition=0))
        await flow.ingest(make_record(4, event("u1", "i2"), partition=0))
        flow.lapse()  # the lease lapsed while 3 and 4 were queued
        await flow.ingest(make_record(5, event("u1", "i3"), partition=0))  # the consumer went on

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 3)]
    assert flow.queue.empty() and flow.unwritten == {}


def test_a_partition_never_committed_is_read_from_its_first_offset_after_a_lapse(
    flow, source, journal, make_record, clock
) -> None:
    source.on_broker[P0] = 0  # never committed: the group reads it from its first offset
    source.lease = False  # e.g. a worker still starting its model process

    async def go() -> None:
        for offset in (0, 1, 2):
            await flow.ingest(make_record(offset, event("u1", f"i{offset}"), partition=0))
            clock.now += RESEEK_AFTER_S  # each seek back taken, and the position moved on
        source.lease = True
        await flow.ingest(make_record(3, event("u1", "i3"), partition=0))  # the consumer went on
        assert flow.queue.empty()
        await flow.ingest(make_record(0, event("u1", "i0"), partition=0))  # the seek took

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"][-1] == ("seek", 0, 0)
    assert flow.queue.qsize() == 1 and flow.queue.get_nowait().record.offset == 0


def test_a_lease_that_lapses_while_a_batch_is_collected_reads_that_batch_again(
    collecting_flow, sink, states, journal, make_record
) -> None:
    flow = collecting_flow

    async def go() -> None:
        await flow.ingest(make_record(3, event("u1", "i1"), partition=0))
        collecting = asyncio.create_task(flow.next_batch(unread=lambda: 0))
        await asyncio.sleep(0)  # 3 is taken; the batch waits for more
        await flow.ingest(make_record(4, event("u1", "i2"), partition=0))  # queued
        flow.lapse()
        await flow.ingest(make_record(5, event("u1", "i3"), partition=0))  # the consumer went on
        await flow.answer(await collecting)

    asyncio.run(go())
    assert [e for e in journal if e[0] == "seek"] == [("seek", 0, 3)]
    assert flow.unwritten == {}
    assert sink.on(SETTINGS.recommendations_topic) == [] and states.writes == []
    assert [e for e in journal if e[0] == "ack"] == []


# -- The parts, one at a time ----------------------------------------------------------------


def pending(user: str, item: str, history: list[str], offset: int = 0) -> Pending:
    async def ack() -> None:
        pass

    record = EventRecord("events", 0, offset, user.encode(), b"", ack)
    state = UserState(history=history, seen=history)
    return Pending(record, Event(user, item, "view", TS), state, 0.0)


class Table:
    """A state table in a dict."""

    def __init__(self) -> None:
        self.data: dict[str, dict] = {}

    def get(self, user_id: str) -> dict | None:
        return self.data.get(user_id)

    def put(self, user_id: str, state: dict, answering: EventRecord) -> None:
        self.data[user_id] = state

    def __getitem__(self, user_id: str) -> dict:
        return self.data[user_id]


def test_one_request_per_user_from_their_latest_event() -> None:
    dead = Pending(pending("x", "0", []).record, None, None, 0.0)
    batch = [
        pending("a", "1", ["1"]),
        pending("b", "7", ["7"]),
        pending("a", "2", ["1", "2"]),
        dead,
    ]
    answered, requests = requests_for(batch, allow_repeats=False)
    assert [p.parsed.user_id for p in answered] == ["b", "a"]
    assert [r.history for r in requests] == [["7"], ["1", "2"]]
    assert [r.exclude for r in requests] == [["7"], ["1", "2"]]


def test_a_request_names_its_user_partition_and_events_for_the_encode_cache() -> None:
    latest = pending("a", "2", ["1", "2"])
    latest.record.partition, latest.state.events = 5, 12
    _, [request] = requests_for([latest], allow_repeats=False)
    assert (request.user_id, request.partition, request.events) == ("a", 5, 12)


def test_allowing_repeats_excludes_nothing() -> None:
    _, requests = requests_for([pending("a", "1", ["1"])], allow_repeats=True)
    assert requests[0].exclude == []


def test_the_answered_state_is_written_with_its_list_and_leaves_the_unwritten_ones() -> None:
    table = Table()
    answered = pending("a", "2", ["1", "2"])
    unwritten = {"a": answered.state}
    write_state(table, unwritten, answered, ["9", "8"], version=3)
    assert table["a"]["history"] == ["1", "2"]
    assert (table["a"]["last_list"], table["a"]["last_list_version"]) == (["9", "8"], 3)
    assert unwritten == {}


def test_a_state_ingested_after_the_answered_one_stays_unwritten_and_learns_the_list() -> None:
    table = Table()
    answered = pending("a", "2", ["1", "2"])
    newer = UserState(history=["1", "2", "3"], seen=["1", "2", "3"])
    unwritten = {"a": newer}
    write_state(table, unwritten, answered, ["9"], version=3)
    assert table["a"]["history"] == ["1", "2"]
    assert unwritten["a"] is newer and newer.last_list == ["9"]


class Consumer:
    """Stands for Faust's consumer: the partitions it holds and their highwater offsets."""

    def __init__(self, highwaters: dict[str, int | None]) -> None:
        self.highwaters = highwaters

    def assignment(self) -> set[str]:
        return set(self.highwaters)

    def highwater(self, tp: str) -> int | None:
        return self.highwaters[tp]


def test_events_behind_counts_what_follows_the_last_offset_read_per_partition() -> None:
    consumer = Consumer({"events/0": 100, "events/1": 10, "events/2": None})
    read_up_to = {"events/0": 89, "events/1": 9, "events/2": 5}
    assert events_behind(consumer, read_up_to) == 10  # offsets 90..99; none after 9; unknown


def test_events_behind_forgets_partitions_no_longer_assigned() -> None:
    read_up_to = {"events/0": 0, "events/3": 0}
    assert events_behind(Consumer({"events/0": 5}), read_up_to) == 4
    assert read_up_to == {"events/0": 0}


def test_an_answered_event_is_timed_in_every_stage(flow, sink, make_record, metrics) -> None:
    run(flow, make_record(5, event("u1", "i1")), make_record(6, event("u2", "i1")))
    counts = {
        stage: metrics.registry.get_sample_value("rtrank_stage_seconds_count", {"stage": stage})
        for stage in ("fetch", "handover", "queued", "inference", "compute", "emit")
    }
    assert counts == dict.fromkeys(counts, 2.0)
