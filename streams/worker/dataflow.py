"""The worker's dataflow as plain code: ingest (validate, apply to state) and answer (batch,
score, emit, write state, ack), over four small interfaces.

- a `Scorer`: a batch's scoring requests and fresh events -> (model version, one list each);
- a `Sink` for records: send one (topic, key, value, headers), and send what is buffered now;
- a `StateTable` of user states: get, and put in the partition of the event it answers;
- and acks: each `EventRecord` carries how to acknowledge it.

The Faust agents (`rtrank.streams.worker.agents`) are adapters over the producer, the table
and the stream, and a loop; unit tests drive `Dataflow` with fakes and assert what comes out.

Per event, in partition order, ingest either dead-letters the raw record or applies it to
the user's state (not twice: a redelivery is recognised by its offset,
`rtrank.streams.worker.state.is_applied`), sends its training example at once, and queues it.
Answer takes a micro-batch from the queue, scores it in one call, emits one list per user
(for that user's latest event: its state holds the earlier ones), writes each answered
user's state with that list once, sends the batch's records now, and only then acks the
batch's events: an event whose list or state was not delivered is redelivered after a crash.

Everything one worker keeps between events (the queue, ``read_up_to``, ``unwritten``) is
an attribute of one `Dataflow`, so that it can be dropped per partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rtrank.streams.records import Event, Recommendation, SourceRef, TrainingExample
from rtrank.streams.scorer.ranker import EventPolicy
from rtrank.streams.scorer.rerank import RankedItem
from rtrank.streams.scorer.scoring import ScoreRequest
from rtrank.streams.settings import Settings
from rtrank.streams.validation import Limits, Rejection, parse_event
from rtrank.streams.worker.batching import next_batch
from rtrank.streams.worker.dead_letters import dead_letter
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.online_eval import OnlineQuality
from rtrank.streams.worker.state import UserState, apply_event, is_applied


class Scorer(Protocol):
    async def score(
        self, requests: list[ScoreRequest], fresh: list[Event]
    ) -> tuple[int, list[list[RankedItem]]]:
        """One list per request, scored by one model version; ``fresh``: events newly
        applied since the previous call (for trending)."""


class Sink(Protocol):
    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: dict[str, bytes] | None = None,
    ) -> None:
        """Hand one record to the producer (buffered; delivered in order per partition)."""

    def send_buffered_now(self) -> None:
        """Send what is buffered now instead of when the producer's linger expires."""


class StateTable(Protocol):
    def get(self, user_id: str) -> dict[str, Any] | None:
        """The user's state as written last (`UserState.to_json`), None when none."""

    def put(self, user_id: str, state: dict[str, Any], answering: EventRecord) -> None:
        """Write the user's state in the partition (and changelog partition) of
        ``answering``, the event it answers: the user's."""


@dataclass(slots=True)
class EventRecord:
    """One record read from the events topic, and how to acknowledge it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    ack: Callable[[], Awaitable[Any]]
    origin: Any = None  # what the adapters need of the record (the Faust event)

    @property
    def tp(self) -> tuple[str, int]:
        """Equal, as a key, to Faust's and aiokafka's ``TP`` (named tuples)."""
        return (self.topic, self.partition)


@dataclass(slots=True)
class Pending:
    """An event read by ingest and waiting for its batch; ``state`` is after the event."""

    record: EventRecord
    parsed: Event | None  # None for a dead-lettered record: only its ack is pending
    state: UserState | None
    arrived: float  # time.monotonic() when ingest read it
    prefix: list[str] | None = None  # history before the event; None when not newly applied


def arrival(pending: Pending) -> float:
    return pending.arrived


class Dataflow:
    """One worker's ingest and answer, and what they share: the queue of pending events,
    the offset read last per partition (``read_up_to``) and the states applied but not
    written yet (``unwritten``)."""

    def __init__(
        self,
        settings: Settings,
        scorer: Scorer,
        sink: Sink,
        states: StateTable,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.scorer = scorer
        self.sink = sink
        self.states = states
        self.metrics = metrics
        self.limits = Limits(settings.max_id_bytes, settings.max_event_bytes)
        self.policy = EventPolicy.from_settings(settings)
        self.quality = OnlineQuality(metrics, settings.eval_window)
        self.queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=4 * settings.batch_max_events)
        self.read_up_to: dict[Any, int] = {}  # partition -> offset of the last event read
        self.unwritten: dict[str, UserState] = {}  # users whose state is not in the table yet

    async def ingest(self, record: EventRecord) -> None:
        """Dead-letter ``record`` or apply it to its user's state; queue it for answer."""
        settings, metrics = self.settings, self.metrics
        self.read_up_to[record.tp] = record.offset
        parsed = parse_event(record.key, record.value, self.limits)
        if isinstance(parsed, Rejection):
            metrics.events.labels("invalid").inc()
            await dead_letter(self.sink, settings.dlq_topic, record, parsed, metrics)
            await self.queue.put(Pending(record, None, None, time.monotonic()))
            return
        user = parsed.user_id
        state = self.unwritten.get(user) or UserState.from_json(self.states.get(user))
        prefix = None
        if is_applied(state, record.offset):
            metrics.events.labels("redelivered").inc()
        elif not self.policy.enters_sequence(parsed.event_type):
            metrics.events.labels("outside_sequence").inc()
        else:
            metrics.events.labels("valid").inc()
            prefix = state.history
            self.quality.observe(state.last_list, state.last_list_version, parsed.item_id)
            before = state.seen  # repeats allowed per event type
            state = apply_event(
                state, parsed, record.offset, settings.history_len, settings.seen_len
            )
            state.seen = self.policy.seen_after(before, state.seen, parsed)
            self.unwritten[user] = state
            # The trainer gets the example now, not after the batch is answered: under
            # load that saves the queue's wait (up to 4 batches) from model freshness.
            example = training_example(parsed, prefix, self.policy.weight(parsed.event_type))
            await self.sink.send(settings.training_topic, user.encode(), example.to_json())
        await self.queue.put(Pending(record, parsed, state, time.monotonic(), prefix))

    async def next_batch(self, behind: int) -> list[Pending]:
        """The next micro-batch; ``behind``: events known to be waiting, not read yet."""
        settings = self.settings
        return await next_batch(
            self.queue,
            settings.batch_max_events,
            settings.batch_max_ms / 1000,
            arrival,
            fill_to=behind + self.queue.qsize(),
            fill_wait_s=settings.batch_catch_up_ms / 1000,
        )

    async def answer(self, batch: list[Pending]) -> None:
        """Score ``batch``, emit one list per user, write those users' states, send the
        records now, and then ack every event of the batch."""
        settings, metrics = self.settings, self.metrics
        started = time.monotonic()
        answered, requests = requests_for(batch, settings.allow_repeats)
        fresh = [p.parsed for p in batch if p.prefix is not None]
        version, lists = await self.scorer.score(requests, fresh)
        inference_ms = (time.monotonic() - started) * 1000
        metrics.batch_size.observe(len(batch))
        metrics.inference_seconds.observe(inference_ms / 1000)
        lists_topic = settings.recommendations_topic
        for pending, items in zip(answered, lists, strict=True):
            rec = recommendation(pending, items, version, started, inference_ms, len(batch))
            await self.sink.send(lists_topic, rec.user_id.encode(), rec.to_json())
            listed = [i.item_id for i in items]
            write_state(self.states, self.unwritten, pending, listed, version)
        self.sink.send_buffered_now()
        metrics.recommendations.inc(len(answered))
        done = time.monotonic()
        for pending in batch:
            metrics.answer_seconds.observe(done - pending.arrived)
            await pending.record.ack()


def requests_for(
    batch: list[Pending], allow_repeats: bool
) -> tuple[list[Pending], list[ScoreRequest]]:
    """The latest pending event of each user in the batch, with its scoring request.

    The latest event's state already holds all of that user's earlier events, so one list
    per user per batch answers every one of them.
    """
    latest: dict[str, Pending] = {}
    for pending in batch:
        if pending.parsed is not None:
            latest.pop(pending.parsed.user_id, None)
            latest[pending.parsed.user_id] = pending
    answered = list(latest.values())
    requests = [
        ScoreRequest(p.state.history, [] if allow_repeats else p.state.seen) for p in answered
    ]
    return answered, requests


def write_state(
    table: StateTable,
    unwritten: dict[str, UserState],
    pending: Pending,
    items: list[str],
    version: int,
) -> None:
    """Write the user's state as of ``pending`` (the latest of its events in the batch) with
    the list just emitted for it: one table write, and one changelog message, per answered
    user per batch (no await: atomic on the loop).

    Ingest applies events to ``unwritten`` (the states it reads first) instead of the table,
    so an event costs no write of its own; a user's state reaches the table before the
    user's events are acked, and a crash before that redelivers them into a state without
    them. A newer state ingested meanwhile stays unwritten and learns the list.
    """
    user = pending.parsed.user_id
    state = pending.state
    state.last_list, state.last_list_version = items, version
    newer = unwritten.get(user)
    if newer is state:
        del unwritten[user]
    elif newer is not None:
        newer.last_list, newer.last_list_version = items, version
    table.put(user, state.to_json(), pending.record)


def events_behind(consumer: Any, read_up_to: dict[Any, int]) -> int:
    """Events on the consumer's partitions after the last one read (``read_up_to``: the
    offset read last per partition); partitions no longer assigned are forgotten.

    A batch takes what was already waiting when it began (unread here, or queued), up to N,
    for at most ``batch_catch_up_ms``: those events are late already, and a user's several
    events in one batch share one list, table write and changelog message. Closing on
    only what had queued while the previous batch was scored made batches shrink as
    scoring sped up, and a backlog's event loop spent itself on lists.
    """
    assigned = consumer.assignment()
    total = 0
    for tp in list(read_up_to):
        if tp not in assigned:
            del read_up_to[tp]
            continue
        highwater = consumer.highwater(tp)  # the offset the next produced event will get
        if highwater is not None:
            total += max(0, highwater - read_up_to[tp] - 1)
    return total


def training_example(e: Event, prefix: list[str], weight: float = 1.0) -> TrainingExample:
    return TrainingExample(
        user_id=e.user_id,
        prefix=prefix,
        item_id=e.item_id,
        event_type=e.event_type,
        ts=e.ts,
        weight=weight,
    )


def recommendation(
    pending: Pending,
    items: list[RankedItem],
    version: int,
    started: float,
    inference_ms: float,
    batch_size: int,
) -> Recommendation:
    record = pending.record
    now_ms = int(time.time() * 1000)
    return Recommendation(
        user_id=pending.parsed.user_id,
        items=[i.to_json() for i in items],
        model_version=version,
        based_on=SourceRef(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            ts=pending.parsed.ts,
        ),
        emitted_at=now_ms,
        timings={
            "queued": round((started - pending.arrived) * 1000, 3),
            "inference": round(inference_ms, 3),
            "total": float(now_ms - pending.parsed.ts),
        },
        batch_size=batch_size,
    )
