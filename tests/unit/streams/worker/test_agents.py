"""The Faust adapters of the dataflow: the producer as a sink, the table of user states, and
an event read from a stream as an `EventRecord` acked through that stream."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.types import TP

from rtrank.streams.catalogue import ChangedItems
from rtrank.streams.scorer.model_process import ModelProcessError, ModelReport
from rtrank.streams.settings import Settings
from rtrank.streams.worker.agents import FaustSink, FaustStates, Serving, event_record
from rtrank.streams.worker.metrics import Metrics


class FakeEvent:
    """Stands for the Faust event a table write is made for (Faust keeps a weak reference)."""

    def __init__(self, message: Any = None) -> None:
        self.message = message


class Table(dict):
    """Records Faust's current event at each write, which decides the write's partition."""

    def __init__(self) -> None:
        super().__init__()
        self.written_in: list[Any] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.written_in.append(faust.current_event())
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.written_in.append(faust.current_event())
        super().__delitem__(key)

    @property
    def data(self) -> Table:
        """Where a Faust table keeps its store: this one keeps its states itself."""
        return self


def test_a_state_is_written_with_the_answered_event_as_faust_s_current_event() -> None:
    table, event = Table(), FakeEvent()
    record = SimpleNamespace(origin=event)
    FaustStates(table).put("u1", {"history": ["i1"]}, record)
    assert table == {"u1": {"history": ["i1"]}}
    assert table.written_in == [event]
    assert faust.current_event() is None


def test_a_state_is_deleted_with_the_answered_event_as_faust_s_current_event() -> None:
    table, event = Table(), FakeEvent()
    dict.__setitem__(table, "u1", {"history": ["i1"]})
    FaustStates(table).delete("u1", SimpleNamespace(origin=event))
    assert table == {}
    assert table.written_in == [event]  # Faust sends the tombstone to this event's partition


def test_deleting_a_user_without_state_deletes_nothing() -> None:
    table = Table()
    FaustStates(table).delete("u1", SimpleNamespace(origin=FakeEvent()))
    assert table.written_in == []


def test_a_state_is_read_from_the_table() -> None:
    table = Table()
    dict.__setitem__(table, "u1", {"history": ["i1"]})
    assert FaustStates(table).get("u1") == {"history": ["i1"]}
    assert FaustStates(table).get("u2") is None


class Producer:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self._producer = None  # no aiokafka producer: nothing buffered to send now

    async def send(self, *args: Any) -> None:
        self.calls.append(args)


def test_the_sink_sends_through_the_apps_producer_with_headers() -> None:
    app = SimpleNamespace(producer=Producer())
    headers = {"rtrank-reason": b"x"}
    asyncio.run(FaustSink(app).send("events.dlq", b"u1", b"raw", headers))
    assert app.producer.calls == [("events.dlq", b"u1", b"raw", None, None, headers)]


class Stream:
    def __init__(self) -> None:
        self.acked: list[Any] = []

    async def ack(self, event: Any) -> bool:
        self.acked.append(event)
        return True


def test_an_events_record_carries_its_message_and_acks_it_through_its_stream() -> None:
    message = SimpleNamespace(
        topic="events",
        partition=2,
        offset=41,
        key=b"u1",
        value=b"{}",
        headers=[],
        timestamp=1_700_000_000.25,
        time_in=812.5,  # Faust's monitor: when the consumer read it
    )
    stream, event = Stream(), FakeEvent(message)
    record = event_record(stream, event)
    assert (record.tp, record.offset, record.key, record.value) == (("events", 2), 41, b"u1", b"{}")
    assert record.timestamp == 1_700_000_000_250  # the broker's time, in ms
    assert record.fetched == 812.5
    assert record.origin is event
    assert stream.acked == []
    asyncio.run(record.ack())
    assert stream.acked == [event]


def test_an_events_record_carries_its_headers() -> None:
    message = SimpleNamespace(
        topic="events",
        partition=0,
        offset=1,
        key=b"u1",
        value=b"{}",
        timestamp=0,
        headers=[("rtrank-request", b"forget")],
        time_in=None,
    )
    record = event_record(Stream(), FakeEvent(message))
    assert record.headers == [("rtrank-request", b"forget")]


class ModelProcessStub:
    """Records what the worker asks its model process to forget, and its update calls."""

    def __init__(self, error: Exception | None = None) -> None:
        self.forgotten: list[set[int]] = []
        self.error = error
        self.update_calls = 0
        self.handed_over: list[tuple[str, dict]] = []  # (call, catalogue changes) in order

    async def apply_updates(self, changes: dict) -> ModelReport:
        self.update_calls += 1
        self.handed_over.append(("apply_updates", changes))
        return ModelReport(1, "cpu", 9)

    async def score(self, requests: list, fresh: list, changes: dict):
        self.handed_over.append(("score", changes))
        return [1] * len(requests), [[] for _ in requests], ModelReport(1, "cpu", 9)

    async def forget_partitions(self, partitions: set[int]) -> int:
        if self.error is not None:
            raise self.error
        self.forgotten.append(partitions)
        return len(partitions)

    async def forget_users(self, users: list[str]) -> int:
        self.forgotten.append(set(users))
        return len(users)


def serving_with(model: ModelProcessStub) -> Serving:
    serving = Serving(Settings(broker="memory://"), ChangedItems(), Metrics())
    serving.model = model
    return serving


def test_revoked_events_partitions_are_forgotten_by_the_model_process() -> None:
    events = Settings(broker="memory://").events_topic
    model = ModelProcessStub()
    revoked = {TP(events, 1), TP(events, 4), TP("user_to_history-changelog", 2)}
    asyncio.run(serving_with(model).forget_revoked(revoked))
    assert model.forgotten == [{1, 4}]


def test_a_model_process_that_cannot_forget_is_logged_not_raised_in_the_rebalance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = Settings(broker="memory://").events_topic
    serving = serving_with(ModelProcessStub(ModelProcessError("the model process died")))
    asyncio.run(serving.forget_revoked({TP(events, 0)}))
    assert "cached users of revoked partitions not dropped" in caplog.text


def test_forgotten_users_are_dropped_by_the_model_process() -> None:
    model = ModelProcessStub()
    asyncio.run(serving_with(model).forget_users(["u1", "u2"]))
    assert model.forgotten == [{"u1", "u2"}]


def test_the_model_process_encode_cache_counts_reach_the_metrics_as_increments() -> None:
    serving = serving_with(ModelProcessStub())
    lookups = serving.metrics.encode_cache_lookups
    serving._record(ModelReport(1, "cpu", 9, cache_lookups={"hit": 0, "miss": 3}, cache_users=3))
    serving._record(ModelReport(1, "cpu", 9, cache_lookups={"hit": 5, "miss": 4}, cache_users=4))
    assert (lookups.labels("hit")._value.get(), lookups.labels("miss")._value.get()) == (5, 4)
    assert serving.metrics.encode_cache_users._value.get() == 4


def test_the_idle_timer_applies_updates_when_no_call_reported_for_the_idle_time() -> None:
    model = ModelProcessStub()
    serving = serving_with(model)
    serving._record(ModelReport(1, "cpu", 9))
    serving.reported_at -= 2.0
    asyncio.run(serving.apply_updates_when_idle(1.0))
    assert model.update_calls == 1


def test_the_idle_timer_leaves_the_updates_to_the_batches_while_they_report() -> None:
    model = ModelProcessStub()
    serving = serving_with(model)
    serving._record(ModelReport(1, "cpu", 9))  # a batch just reported
    asyncio.run(serving.apply_updates_when_idle(1.0))
    assert model.update_calls == 0


def test_a_catalogue_backlog_goes_over_in_bounded_calls_before_the_batch() -> None:
    items = ChangedItems({f"i{n}": {"item_id": f"i{n}"} for n in range(25)})
    model = ModelProcessStub()
    serving = Serving(Settings(broker="memory://"), items, Metrics(), changes_per_call=10)
    serving.model = model
    asyncio.run(serving.score([], []))
    calls = [(call, len(changes)) for call, changes in model.handed_over]
    assert calls == [("apply_updates", 10), ("apply_updates", 10), ("score", 5)]
    handed = [item for _, changes in model.handed_over for item in changes]
    assert sorted(handed) == sorted(f"i{n}" for n in range(25))


def test_changes_within_the_bound_ride_with_the_batch() -> None:
    items = ChangedItems({"a": {"item_id": "a"}})
    model = ModelProcessStub()
    serving = Serving(Settings(broker="memory://"), items, Metrics(), changes_per_call=10)
    serving.model = model
    asyncio.run(serving.score([], []))
    assert model.handed_over == [("score", {"a": {"item_id": "a"}})]
