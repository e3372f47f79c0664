"""In-memory doubles of the dataflow's interfaces (`rtrank.streams.worker.dataflow`), which
write what happens to them, in order, into one shared journal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from rtrank.streams.records import Event
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.scorer.rerank import RankedItem
from rtrank.streams.worker.dataflow import Dataflow, EventRecord


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] | None

    def json(self) -> dict[str, Any]:
        return json.loads(self.value)


class Sink:
    """Keeps every record sent; ``send_buffered_now`` is a journal entry. ``while_sending``
    runs inside a send (with its topic), as if the producer waited there."""

    def __init__(self, journal: list[tuple]) -> None:
        self.journal = journal
        self.sent: list[Sent] = []
        self.while_sending: Callable[[str], Awaitable[None]] | None = None

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: dict[str, bytes] | None = None,
    ) -> None:
        if self.while_sending is not None:
            await self.while_sending(topic)
        self.sent.append(Sent(topic, key, value, headers))
        self.journal.append(("send", topic))

    def send_buffered_now(self) -> None:
        self.journal.append(("send now",))

    def on(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]


class States:
    """A table of user states in a dict; ``writes``: (user, offset of the answered event)."""

    def __init__(self, journal: list[tuple]) -> None:
        self.journal = journal
        self.data: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, int]] = []

    def get(self, user_id: str) -> dict[str, Any] | None:
        return self.data.get(user_id)

    def put(self, user_id: str, state: dict[str, Any], answering: EventRecord) -> None:
        self.data[user_id] = state
        self.writes.append((user_id, answering.offset))
        self.journal.append(("put", user_id))

    def delete(self, user_id: str, answering: EventRecord) -> None:
        """Like Faust's table: a tombstone (journal entry) only for a user it holds."""
        if self.data.pop(user_id, None) is not None:
            self.journal.append(("delete", user_id))

    def __getitem__(self, user_id: str) -> dict[str, Any]:
        return self.data[user_id]


class Scorer:
    """Model version ``VERSION``; each request's list is one item named after the last item
    of its history. ``while_scoring`` runs inside the call, as if during the model's work."""

    VERSION = 7
    COMPUTE_S = 0.004  # the model's own seconds it reports per call

    def __init__(self, journal: list[tuple]) -> None:
        self.journal = journal
        self.calls: list[tuple[list[ScoreRequest], list[Event]]] = []
        self.while_scoring: Callable[[], Awaitable[None]] | None = None

    async def score(
        self, requests: list[ScoreRequest], fresh: list[Event]
    ) -> tuple[list[int], list[list[RankedItem]], float]:
        self.calls.append((requests, fresh))
        self.journal.append(("score", len(requests)))
        if self.while_scoring is not None:
            await self.while_scoring()
        lists = [[RankedItem(f"after-{r.history[-1] if r.history else ''}", 1.0)] for r in requests]
        return [self.VERSION] * len(lists), lists, self.COMPUTE_S

    async def forget_users(self, users: list[str]) -> None:
        self.journal.append(("forget users", tuple(users)))


class Source:
    """Every seek is a journal entry: ("seek", partition, offset); ``commits``: the
    committed offset per partition (none known by default); ``positions``: the offset
    fetched next per partition (none by default); ``lease``: whether the group still counts
    this worker in (by default it does); ``on_broker``: where the broker says the group
    reads each partition next, its committed offset or first offset (unknown by default)."""

    def __init__(self, journal: list[tuple]) -> None:
        self.journal = journal
        self.commits: dict[tuple[str, int], int] = {}
        self.positions: dict[tuple[str, int], int] = {}
        self.lease = True
        self.on_broker: dict[tuple[str, int], int] = {}

    async def seek(self, tp: tuple[str, int], offset: int) -> None:
        self.journal.append(("seek", tp[1], offset))

    def committed(self, tp: tuple[str, int]) -> int | None:
        return self.commits.get(tp)

    async def next_on_broker(self, tp: tuple[str, int]) -> int | None:
        return self.on_broker.get(tp)

    def fetch_positions(self) -> dict[tuple[str, int], int]:
        return dict(self.positions)

    def member(self) -> bool:
        return self.lease


class Clock:
    """A clock (``time.monotonic``'s stand-in) moved on by hand: ``clock.now += 5``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal() -> list[tuple]:
    return []


@pytest.fixture
def sink(journal: list[tuple]) -> Sink:
    return Sink(journal)


@pytest.fixture
def states(journal: list[tuple]) -> States:
    return States(journal)


@pytest.fixture
def scorer(journal: list[tuple]) -> Scorer:
    return Scorer(journal)


@pytest.fixture
def make_record(journal: list[tuple]) -> Callable[..., EventRecord]:
    """An events-topic record at ``offset`` whose ack is a journal entry."""

    def make(
        offset: int,
        value: bytes | dict[str, Any],
        key: bytes | None = None,
        partition: int = 0,
        headers: list[tuple[str, bytes]] = (),
    ) -> EventRecord:
        if isinstance(value, dict):
            key = value["user_id"].encode() if key is None else key
            value = json.dumps(value).encode()

        async def ack() -> None:
            journal.append(("ack", offset))

        return EventRecord("events", partition, offset, key, value, ack, headers=headers)

    return make


@pytest.fixture
def source(journal: list[tuple]) -> Source:
    return Source(journal)


def run(flow: Dataflow, *records: EventRecord) -> None:
    """Ingest ``records``, then answer them as one batch."""

    async def go() -> None:
        for record in records:
            await flow.ingest(record)
        await flow.answer(await flow.next_batch(unread=lambda: 0))

    asyncio.run(go())
