"""The worker's stream processing: ingest (validate, update state) and answer (batch, score).

``ingest`` is the Faust agent on the events topic. Per event, in partition order, it either
dead-letters the raw record or applies it to the user's state and queues it. ``answer``
drains that queue in micro-batches, scores each batch with one call to the model process
(`rtrank.streams.scorer.model_process`: the event loop never waits on the model, nor shares its GIL
with it), emits one list per user per batch, writes each answered user's state (with that
list) to the table once, sends the batch's records without waiting out the producer's
linger (`rtrank.streams.worker.send_now`), and only then acks the batch's events: an event whose list was
not sent is redelivered after a crash, and `rtrank.streams.worker.state.is_applied` keeps the redelivery
from changing state twice. Writing once per answered user instead of at every event and
again for the list halved the table writes and changelog messages per event
(`write_state`).

Model updates are read and applied by the model process right before a batch is scored,
and on a 1 s timer when no events come: it serves one call at a time, so an update never
lands mid-batch, and every list carries the version that scored it. Each emitted list is
kept in its user's state (``last_list``) so the user's next event can test it
(`rtrank.streams.worker.online_eval`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import faust
from faust.streams import _current_event

from rtrank.streams.catalogue import ChangedItems
from rtrank.streams.records import Event, Recommendation, SourceRef, TrainingExample
from rtrank.streams.scorer.model_process import ModelProcess, ModelReport
from rtrank.streams.scorer.ranker import EventPolicy
from rtrank.streams.scorer.rerank import RankedItem
from rtrank.streams.scorer.scoring import ScoreRequest
from rtrank.streams.settings import Settings
from rtrank.streams.validation import Limits, Rejection, parse_event
from rtrank.streams.worker.batching import next_batch
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.online_eval import OnlineQuality
from rtrank.streams.worker.send_now import send_buffered_now
from rtrank.streams.worker.state import UserState, apply_event, is_applied
from rtrank.streams.worker.topics_and_tables import Topics

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """An event read by ingest and waiting for its batch; ``state`` is after the event."""

    stream: Any  # the Faust stream that must ack the event
    event: Any  # faust EventT
    parsed: Event | None  # None for a dead-lettered record: only its ack is pending
    state: UserState | None
    arrived: float  # time.monotonic() when ingest read it
    prefix: list[str] | None = None  # history before the event; None when not newly applied


def arrival(pending: Pending) -> float:
    return pending.arrived


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


class Serving:
    """The worker's model process and what it last reported (None until it has loaded).

    Every call hands over the catalogue changes since the previous one, and every report
    goes to the metrics and the log: model versions applied, updates rejected.
    """

    def __init__(self, settings: Settings, items: ChangedItems, metrics: Metrics) -> None:
        self.settings = settings
        self.items = items
        self.metrics = metrics
        self.model: ModelProcess | None = None  # started by `start`: the worker's alone
        self.report: ModelReport | None = None

    async def start(self) -> None:
        self.model = ModelProcess(self.settings)
        self._record(await self.model.start())

    async def score(
        self, requests: list[ScoreRequest], fresh: list[Event]
    ) -> tuple[int, list[list[RankedItem]]]:
        version, lists, report = await self.model.score(requests, fresh, self.items.take_changes())
        self._record(report)
        return version, lists

    async def rank(
        self, history: list[str], candidates: list[str]
    ) -> tuple[int, list[RankedItem], list[dict]]:
        version, ranked, filtered, report = await self.model.rank(
            history, candidates, self.items.take_changes()
        )
        self._record(report)
        return version, ranked, filtered

    async def apply_updates(self) -> None:
        self._record(await self.model.apply_updates(self.items.take_changes()))

    def _record(self, report: ModelReport) -> None:
        for reason, detail in report.rejected:
            self.metrics.model_update_rejections.labels(reason).inc()
            log.warning("model update rejected (%s); still serving the current version", detail)
        for kind, version in report.applied:
            self.metrics.model_updates.labels(kind).inc()
            log.info("now serving model version %d (%s)", version, kind)
        self.metrics.model_version.set(report.version)
        self.metrics.catalogue_items.set(report.items)
        self.report = report


def register_agents(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    user_to_history: faust.Table,
    metrics: Metrics,
    items: ChangedItems | None = None,
) -> Serving:
    """Attach the ingest agent and the answer task to ``app``.

    ``items`` is the catalogue the lists are re-ranked with (the ``item_to_info`` table's
    dict). The model process starts with the worker (not when the app is built), so
    commands that only produce or read topics never pay for it.
    """
    limits = Limits(settings.max_id_bytes, settings.max_event_bytes)
    queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=4 * settings.batch_max_events)
    read_up_to: dict[Any, int] = {}  # partition (Faust TP) -> offset of the last event read
    unwritten: dict[str, UserState] = {}  # users whose applied events are not in the table yet
    serving = Serving(settings, items if items is not None else ChangedItems(), metrics)
    policy = EventPolicy.from_settings(settings)
    quality = OnlineQuality(metrics, settings.eval_window)

    async def emit(topic: str, user_id: str, value: bytes) -> None:
        """Send one of our JSON records, keyed by its user (key/value already bytes)."""
        await app.producer.send(topic, user_id.encode(), value, None, None, None)

    @app.agent(topics.events, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        manual = stream.noack()
        async for event in manual.events():
            message = event.message
            read_up_to[message.tp] = message.offset
            parsed = parse_event(message.key, message.value, limits)
            if isinstance(parsed, Rejection):
                metrics.events.labels("invalid").inc()
                metrics.dead_letters.labels(parsed.code).inc()
                await app.producer.send(
                    settings.dlq_topic,
                    message.key,
                    message.value,
                    None,
                    None,
                    parsed.dead_letter_headers(message),
                )
                await queue.put(Pending(manual, event, None, None, time.monotonic()))
                continue
            state = unwritten.get(parsed.user_id) or UserState.from_json(
                user_to_history.get(parsed.user_id)
            )
            prefix = None
            if is_applied(state, message.offset):
                metrics.events.labels("redelivered").inc()
            elif not policy.enters_sequence(parsed.event_type):
                metrics.events.labels("outside_sequence").inc()
            else:
                metrics.events.labels("valid").inc()
                prefix = state.history
                quality.observe(state.last_list, state.last_list_version, parsed.item_id)
                before = state.seen  # repeats allowed per event type
                state = apply_event(
                    state, parsed, message.offset, settings.history_len, settings.seen_len
                )
                state.seen = policy.seen_after(before, state.seen, parsed)
                unwritten[parsed.user_id] = state
                # The trainer gets the example now, not after the batch is answered: under
                # load that saves the queue's wait (up to 4 batches) from model freshness.
                weight = policy.weight(parsed.event_type)
                example = training_example(parsed, prefix, weight)
                await emit(settings.training_topic, example.user_id, example.to_json())
            await queue.put(Pending(manual, event, parsed, state, time.monotonic(), prefix))

    @app.task
    async def answer() -> None:
        await serving.start()
        # Everything alive now (Faust, the model process's handle) lives as long as the
        # worker: keep it out of the cyclic collector's full passes, which otherwise walk
        # ~250k objects (~150 ms, a pause for every event in flight).
        gc.freeze()
        metrics.gc_frozen_objects.set(gc.get_freeze_count())
        while True:
            behind = events_behind(app.consumer, read_up_to)
            metrics.events_behind.set(behind)
            batch = await next_batch(
                queue,
                settings.batch_max_events,
                settings.batch_max_ms / 1000,
                arrival,
                fill_to=behind + queue.qsize(),
                fill_wait_s=settings.batch_catch_up_ms / 1000,
            )
            started = time.monotonic()
            answered, requests = requests_for(batch, settings.allow_repeats)
            fresh = [p.parsed for p in batch if p.prefix is not None]
            version, lists = await serving.score(requests, fresh)
            inference_ms = (time.monotonic() - started) * 1000
            metrics.batch_size.observe(len(batch))
            metrics.inference_seconds.observe(inference_ms / 1000)
            for pending, items in zip(answered, lists, strict=True):
                rec = recommendation(pending, items, version, started, inference_ms, len(batch))
                await emit(settings.recommendations_topic, rec.user_id, rec.to_json())
                listed = [i.item_id for i in items]
                write_state(user_to_history, unwritten, pending, listed, version)
            send_buffered_now(app.producer._producer)  # Faust's aiokafka producer
            metrics.recommendations.inc(len(answered))
            done = time.monotonic()
            for pending in batch:
                metrics.answer_seconds.observe(done - pending.arrived)
                await pending.stream.ack(pending.event)

    @app.timer(1.0)
    async def apply_updates_when_idle() -> None:
        """Without events no batch runs; updates still go live (and show in /health)."""
        if serving.report is not None:
            await serving.apply_updates()

    return serving


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


@contextmanager
def _in_event(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event: table writes go to its partition's store and
    changelog partition (the user's), as if written from the ingest agent."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def write_state(
    table: faust.Table,
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
    with _in_event(pending.event):
        table[user] = state.to_json()


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
    message = pending.event.message
    now_ms = int(time.time() * 1000)
    return Recommendation(
        user_id=pending.parsed.user_id,
        items=[i.to_json() for i in items],
        model_version=version,
        based_on=SourceRef(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
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
