"""Forgetting a user in the worker's dataflow: a forget request read in order with the
user's events deletes their state, leaves tombstones for their lists and examples, and
starts whatever follows it afresh (doubles in ``conftest.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from rtrank.streams.forgetting import forget_record
from rtrank.streams.settings import Settings
from rtrank.streams.worker.dataflow import Dataflow, EventRecord
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.state import UserState
from tests.unit.streams.worker.conftest import run

TS = 1_700_000_000_000
SETTINGS = Settings(batch_max_ms=0, batch_catch_up_ms=0)
LISTS, EXAMPLES, DLQ = SETTINGS.recommendations_topic, SETTINGS.training_topic, SETTINGS.dlq_topic


def event(user: str, item: str) -> dict[str, Any]:
    return {"user_id": user, "item_id": item, "event_type": "view", "ts": TS}


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def flow(scorer, sink, states, metrics, source) -> Dataflow:  # noqa: ANN001 - conftest doubles
    return Dataflow(SETTINGS, scorer, sink, states, metrics, source)


@pytest.fixture
def forget(make_record):  # noqa: ANN001, ANN201 - conftest factory
    """The request to forget ``user`` at ``offset``, as `rtrank forget` writes it."""

    def make(offset: int, user: str) -> EventRecord:
        key, value, headers = forget_record(user)
        return make_record(offset, value, key=key, headers=headers)

    return make


def tombstones(sink, topic: str) -> list[bytes]:  # noqa: ANN001 - conftest double
    return [s.key for s in sink.on(topic) if s.value is None]


def test_a_forgotten_users_state_is_deleted(flow, states, journal, make_record, forget) -> None:
    run(flow, make_record(0, event("u1", "i1")))
    run(flow, forget(1, "u1"))
    assert "u1" not in states.data
    assert ("delete", "u1") in journal
    assert flow.unwritten == {}


def test_tombstones_are_written_for_the_users_lists_and_training_examples(
    flow, sink, make_record, forget
) -> None:
    run(flow, make_record(0, event("u1", "i1")))
    run(flow, forget(1, "u1"))
    assert tombstones(sink, LISTS) == [b"u1"]
    assert tombstones(sink, EXAMPLES) == [b"u1"]


def test_the_request_is_acked_after_the_deletion_and_its_tombstones(
    flow, journal, make_record, forget
) -> None:
    run(flow, make_record(0, event("u1", "i1")))
    journal.clear()
    run(flow, forget(1, "u1"))
    assert journal == [
        ("score", 0),
        ("delete", "u1"),
        ("send", LISTS),
        ("send", EXAMPLES),
        ("forget users", ("u1",)),
        ("send now",),
        ("ack", 1),
    ]


def test_the_scorer_drops_the_user_after_scoring_the_batch_that_began_their_new_history(
    flow, journal, make_record, forget
) -> None:
    run(flow, make_record(0, event("u1", "i1")), forget(1, "u1"), make_record(2, event("u1", "i2")))
    assert journal.index(("forget users", ("u1",))) > journal.index(("score", 1))


def test_events_read_before_the_request_in_its_batch_get_no_list(
    flow, sink, states, make_record, forget
) -> None:
    run(flow, make_record(0, event("u1", "i1")), make_record(1, event("u1", "i2")), forget(2, "u1"))
    assert [s.value for s in sink.on(LISTS)] == [None]
    assert states.data == {}


def test_an_event_after_the_request_starts_a_new_history(
    flow, sink, states, make_record, forget
) -> None:
    run(flow, make_record(0, event("u1", "i1")))
    run(flow, forget(1, "u1"), make_record(2, event("u1", "i2")))
    state = UserState.from_json(states["u1"])
    assert (state.history, state.seen, state.events) == (["i2"], ["i2"], 1)
    assert [s.value is None for s in sink.on(LISTS)] == [False, True, False]  # tombstone first


def test_an_event_after_the_request_in_its_batch_starts_a_new_history(
    flow, states, journal, make_record, forget
) -> None:
    run(flow, make_record(0, event("u1", "i1")), forget(1, "u1"), make_record(2, event("u1", "i2")))
    assert UserState.from_json(states["u1"]).history == ["i2"]
    assert journal.index(("put", "u1")) > journal.index(("send", EXAMPLES), 2)


def test_an_example_after_the_request_has_no_forgotten_prefix(
    flow, sink, make_record, forget
) -> None:
    run(flow, make_record(0, event("u1", "i1")), forget(1, "u1"), make_record(2, event("u1", "i2")))
    examples = [s.json() for s in sink.on(EXAMPLES) if s.value is not None]
    assert [(e["prefix"], e["item_id"]) for e in examples] == [([], "i1"), ([], "i2")]


def test_other_users_are_untouched(flow, sink, states, make_record, forget) -> None:
    run(flow, make_record(0, event("u1", "i1")), make_record(1, event("u2", "i9")))
    run(flow, forget(2, "u1"))
    assert set(states.data) == {"u2"}
    assert tombstones(sink, LISTS) == [b"u1"]


def test_a_user_without_state_still_gets_the_tombstones(flow, sink, journal, forget) -> None:
    run(flow, forget(0, "stranger"))
    assert ("delete", "stranger") not in journal
    assert tombstones(sink, LISTS) == tombstones(sink, EXAMPLES) == [b"stranger"]
    assert journal[-1] == ("ack", 0)


def test_a_request_read_again_after_a_later_event_was_applied_changes_nothing(
    flow, sink, states, journal, metrics, forget
) -> None:
    """A crash after the new history was written but before the request was committed."""
    states.data["u1"] = UserState(history=["i2"], events=1, last_offset=5).to_json()
    run(flow, forget(3, "u1"))
    assert UserState.from_json(states["u1"]).history == ["i2"]
    assert sink.sent == []
    assert journal[-1] == ("ack", 3)
    assert metrics.registry.get_sample_value("rtrank_events_total", {"outcome": "forget"}) is None


def test_a_request_is_counted(flow, metrics, forget) -> None:
    run(flow, forget(0, "u1"))
    assert metrics.registry.get_sample_value("rtrank_events_total", {"outcome": "forget"}) == 1


def test_a_request_without_a_key_is_dead_lettered_and_acked(
    flow, sink, journal, make_record
) -> None:
    _, value, headers = forget_record("u1")
    run(flow, make_record(4, value, key=None, headers=headers))
    [dead] = sink.on(DLQ)
    assert dead.headers["rtrank-reason"].startswith(b"missing_key:")
    assert sink.on(LISTS) == []
    assert journal[-1] == ("ack", 4)


def test_a_request_whose_partition_is_revoked_while_answering_is_not_carried_out(
    flow, scorer, sink, states, journal, make_record, forget
) -> None:
    run(flow, make_record(0, event("u1", "i1")))

    async def revoke() -> None:
        flow.revoke([("events", 0)])

    scorer.while_scoring = revoke
    run(flow, forget(1, "u1"))
    assert "u1" in states.data
    assert flow.unwritten == {}
    assert tombstones(sink, LISTS) == []
    assert ("ack", 1) not in journal
