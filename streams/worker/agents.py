"""The worker's Faust wiring: the ``ingest`` agent, the ``answer`` task and the idle update
timer, over `rtrank.streams.worker.dataflow`, which holds what they do (and its tests).

The adapters: `FaustSink` (the app's producer), `FaustStates` (the ``user_to_history``
table, each state written in the partition of the event it answers) and each event's ack
through its stream, which does not ack on its own (``noack``): an event is acked only once
its batch's lists were sent and states written. Every record's delivery is checked
(`rtrank.streams.worker.delivery`): one that cannot be delivered stops the worker before
its event's offset is committed.

`Serving` is the worker's model process (`rtrank.streams.scorer.model_process`): the event
loop never waits on the model, nor shares its GIL with it. The model process applies model
updates right before a batch is scored, and on a 1 s timer when no events come; it serves
one call at a time, so an update never lands mid-batch, and every list carries the version
that scored it.
"""

from __future__ import annotations

import gc
import logging
import time
from functools import partial
from typing import Any

import faust
from faust.types import TP

from rtrank.streams.catalogue import ChangedItems
from rtrank.streams.records import Event
from rtrank.streams.scorer.model_process import ModelProcess, ModelProcessError, ModelReport
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.scorer.rerank import RankedItem
from rtrank.streams.settings import Settings
from rtrank.streams.worker.dataflow import Dataflow, EventRecord, events_behind
from rtrank.streams.worker.delivery import DeliveryGuard
from rtrank.streams.worker.expiry import register_expiry
from rtrank.streams.worker.faust_patches import (
    PatchedApp,
    as_current_event,
    committed_offset,
    fetch_positions,
    next_on_broker,
    send_app_buffer_now,
)
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.topics_and_tables import Topics

log = logging.getLogger(__name__)


CATALOGUE_CHANGES_PER_CALL = 100_000  # a larger backlog is handed over in calls of its own


class Serving:
    """The worker's model process and what it last reported (None until it has loaded).

    Every call hands over the catalogue changes since the previous one, and every report
    goes to the metrics and the log: model versions applied, updates rejected. A backlog of
    more than ``changes_per_call`` changes (the whole catalogue, after a start) goes first,
    in calls of its own of that many, each within the call's bound: a million items in one
    call took about 9 s of the 15 s default (docs/benchmarks.md, "A catalogue of a million
    items").
    """

    def __init__(
        self,
        settings: Settings,
        items: ChangedItems,
        metrics: Metrics,
        changes_per_call: int = CATALOGUE_CHANGES_PER_CALL,
    ) -> None:
        self.settings = settings
        self.items = items
        self.metrics = metrics
        self.changes_per_call = changes_per_call
        self.model: ModelProcess | None = None  # started by `start`: the worker's alone
        self.report: ModelReport | None = None
        self.reported_at = 0.0  # time.monotonic() of the last report

    async def start(self) -> None:
        self.model = ModelProcess(self.settings)
        self._record(await self.model.start())

    async def score(
        self, requests: list[ScoreRequest], fresh: list[Event]
    ) -> tuple[list[int], list[list[RankedItem]], float]:
        versions, lists, report = await self.model.score(requests, fresh, await self._changes())
        self._record(report)
        return versions, lists, report.compute_s

    async def rank(
        self, history: list[str], candidates: list[str]
    ) -> tuple[int, list[RankedItem], list[dict]]:
        version, ranked, filtered, report = await self.model.rank(
            history, candidates, await self._changes()
        )
        self._record(report)
        return version, ranked, filtered

    async def apply_updates(self) -> None:
        self._record(await self.model.apply_updates(await self._changes()))

    async def _changes(self) -> dict[str, Any]:
        """The catalogue changes for the next call, once a backlog beyond
        ``changes_per_call`` has been handed over in calls of its own."""
        while self.items.pending > self.changes_per_call:
            changes = self.items.take_changes(self.changes_per_call)
            self._record(await self.model.apply_updates(changes))
        return self.items.take_changes()

    async def apply_updates_when_idle(self, idle_s: float) -> None:
        """`apply_updates` when no call has reported for ``idle_s``: every call applies
        the updates read meanwhile already, and one more call would only queue in front of
        a batch."""
        if self.report is not None and time.monotonic() - self.reported_at >= idle_s:
            await self.apply_updates()

    async def forget_users(self, users: list[str]) -> None:
        """The model process drops what it keeps for ``users``, who were forgotten."""
        await self.model.forget_users(users)

    async def forget_revoked(self, revoked: set[TP]) -> None:
        """The model process drops its cached users of the events partitions in ``revoked``.
        A dead or hung process is only logged here: the answer loop stops the worker on it."""
        partitions = {tp.partition for tp in revoked if tp.topic == self.settings.events_topic}
        if self.model is None or not partitions:
            return
        try:
            dropped = await self.model.forget_partitions(partitions)
        except ModelProcessError as e:
            log.warning("cached users of revoked partitions not dropped: %s", e)
            return
        log.info("model process dropped %d cached users of revoked partitions", dropped)

    def _record(self, report: ModelReport) -> None:
        self.reported_at = time.monotonic()
        for reason, detail in report.rejected:
            self.metrics.model_update_rejections.labels(reason).inc()
            log.warning("model update rejected (%s); still serving the current version", detail)
        for kind, version in report.applied:
            self.metrics.model_updates.labels(kind).inc()
            log.info("now serving model version %d (%s)", version, kind)
        self.metrics.model_version.set(report.version)
        self.metrics.catalogue_items.set(report.items)
        before = self.report.cache_lookups if self.report is not None else {}
        for outcome, count in report.cache_lookups.items():
            new = max(0, count - before.get(outcome, 0))  # the report's counts are running totals
            self.metrics.encode_cache_lookups.labels(outcome).inc(new)
        self.metrics.encode_cache_users.set(report.cache_users)
        self.metrics.encode_cache_bytes.set(report.cache_bytes)
        self.report = report


class FaustSink:
    """The app's producer as a `rtrank.streams.worker.dataflow.Sink`. The producer checks
    each record's delivery itself (`rtrank.streams.worker.faust_patches.CheckedProducer`)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: dict[str, bytes] | None = None,
    ) -> None:
        await self.app.producer.send(topic, key, value, None, None, headers)

    def send_buffered_now(self) -> None:
        send_app_buffer_now(self.app)


class FaustSource:
    """The app's consumer as a `rtrank.streams.worker.dataflow.Source` of ``topic``."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self.app = app
        self.topic = topic

    async def seek(self, tp: tuple[str, int], offset: int) -> None:
        """Nothing for a partition not assigned (revoked meanwhile): aiokafka refuses to seek
        it, and its next owner reads it from its committed offset."""
        partition = TP(*tp)
        if partition in self.app.consumer.assignment():
            await self.app.consumer.seek(partition, offset)

    def committed(self, tp: tuple[str, int]) -> int | None:
        return committed_offset(self.app.consumer, TP(*tp))

    async def next_on_broker(self, tp: tuple[str, int]) -> int | None:
        return await next_on_broker(self.app.consumer, TP(*tp))

    def fetch_positions(self) -> dict[TP, int]:
        return fetch_positions(self.app.consumer, self.topic)

    def member(self) -> bool:
        return self.app.group_lease.held()


class FaustStates:
    """A Faust table of user states as a `rtrank.streams.worker.dataflow.StateTable`."""

    def __init__(self, table: faust.Table) -> None:
        self.table = table

    def get(self, user_id: str) -> dict[str, Any] | None:
        """From the table's store, read once: the table's own ``get`` reads a key twice
        (is it there, then its value), two RocksDB reads per event."""
        return self.table.data.get(user_id)

    def put(self, user_id: str, state: dict[str, Any], answering: EventRecord) -> None:
        """Written as if from the agent that read ``answering`` (its Faust event): in that
        event's partition and changelog partition, the user's."""
        with as_current_event(answering.origin):
            self.table[user_id] = state

    def delete(self, user_id: str, answering: EventRecord) -> None:
        """Faust deletes the key from the store and sends the changelog tombstone (only for
        a key it holds: a user it holds no state for has none to delete)."""
        if user_id in self.table:
            with as_current_event(answering.origin):
                del self.table[user_id]


def event_record(stream: faust.StreamT, event: faust.EventT) -> EventRecord:
    """``event`` as the dataflow reads it, acked through ``stream``."""
    message = event.message
    return EventRecord(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        partial(stream.ack, event),
        event,
        headers=message.headers or (),
        timestamp=round((message.timestamp or 0) * 1000),  # Faust gives seconds
        fetched=message.time_in or 0.0,  # Faust's monitor stamps it (monotonic)
    )


def register_agents(
    app: PatchedApp,
    settings: Settings,
    topics: Topics,
    user_to_history: faust.Table,
    metrics: Metrics,
    items: ChangedItems | None = None,
) -> Serving:
    """Attach the ingest agent, the answer task and the idle update timer to ``app``, and
    check the delivery of every record it sends (``producer_delivery_timeout_s``).

    ``items`` is the catalogue the lists are re-ranked with (the ``item_to_info`` table's
    dict). The model process starts with the worker (not when the app is built), so
    commands that only produce or read topics never pay for it.
    """
    app.check_delivery(DeliveryGuard(metrics.failed_sends), settings.producer_delivery_timeout_s)
    serving = Serving(settings, items if items is not None else ChangedItems(), metrics)
    flow = Dataflow(
        settings,
        serving,
        FaustSink(app),
        FaustStates(user_to_history),
        metrics,
        FaustSource(app, settings.events_topic),
    )

    register_expiry(app, settings, user_to_history, flow, metrics)

    @app.on_partitions_revoked.connect
    async def forget_revoked(app: faust.App, revoked: set, **kwargs: Any) -> None:
        """Faust sends this during a rebalance, before the partitions are handed on."""
        unwritten, in_flight = len(flow.unwritten), len(flow.in_flight)
        dropped = flow.revoke(revoked)
        log.log(
            logging.WARNING if dropped or in_flight else logging.INFO,
            "partitions revoked: %d queued events dropped, %d of %d unwritten states, "
            "%d events in flight",
            dropped,
            unwritten - len(flow.unwritten),
            unwritten,
            in_flight,
        )
        await serving.forget_revoked(revoked)

    @app.on_partitions_assigned.connect
    async def forget_unassigned(app: faust.App, assigned: set, **kwargs: Any) -> None:
        app.group_lease.confirm()  # the group has just counted this worker in
        flow.assigned(assigned)

    @app.agent(topics.events, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        manual = stream.noack()
        async for event in manual.events():
            await flow.ingest(event_record(manual, event))

    def unread() -> int:
        """Events after the last one read on each partition, as the consumer knows them
        (`events_behind`); kept in `rtrank_events_behind`."""
        behind = events_behind(app.consumer, flow.read_up_to)
        metrics.events_behind.set(behind)
        return behind

    @app.task
    async def answer() -> None:
        await serving.start()
        # Everything alive now (Faust, the model process's handle) lives as long as the
        # worker: keep it out of the cyclic collector's full passes, which otherwise walk
        # every one of those objects (a pause for every event in flight).
        gc.freeze()
        metrics.gc_frozen_objects.set(gc.get_freeze_count())
        while True:
            await flow.answer(await flow.next_batch(unread))

    @app.timer(1.0)
    async def reseek_stalled_gaps() -> None:
        """A partition whose next event is late is read again from it: a lost seek or lost
        events never stall it, even with no event after them."""
        await flow.reseek_stalled()

    @app.timer(1.0)
    async def apply_updates_when_idle() -> None:
        """Without events no batch runs; updates still go live (and show in /health)."""
        await serving.apply_updates_when_idle(1.0)

    return serving
