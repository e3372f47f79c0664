"""Every patch rtrank makes to Faust's, aiokafka's and mode's internals, in one place.

Written against faust-streaming 0.15.3, aiokafka 0.14.0 and mode-streaming 0.7.1 (the bounds
in pyproject.toml). Each section touches private parts that a release may change; the
tests that fail when one does: tests/unit/streams/worker/test_faust_patches.py,
tests/integration/test_send_now.py and test_pipeline.py (linger, fetch wait).

Sections:

- `PatchedApp`: a ``faust.App`` with the patches below applied where Faust builds its parts.
- Inline delivery: `InlineDeliveryConsumer` hands each fetched message to the app without
  four tasks per message, and its seeks hold against the messages fetched before them
  (`ReadOffsets`).
- Checked delivery: `CheckedProducer` (idempotent, acks=all, every send watched, a bounded
  flush) and `CheckedConsumer` (no commit once a record was not delivered), for
  `rtrank.streams.worker.delivery.DeliveryGuard`.
- Limits Faust has no setting for: the consumer's fetch wait (`set_fetch_wait`), the
  producer buffer's bound (`producer_buffer_max`).
- A producer buffer flush that empties the buffer (`flush_until_empty`) before a commit,
  the message it is handing to aiokafka included (`send_pending_counted`).
- Faust's ``Monitor`` left out of the sensors.
- Log records nobody prints (`drop_unprinted_log_records`).
- Sending buffered records now (`send_buffered_now`, `send_app_buffer_now`).
- The committed offset of a partition (`committed_offset`, `next_on_broker`), and
  where the consumer fetches each partition of a topic next once Faust handed over what it
  fetched (`fetch_positions`).
- The current event (`as_current_event`): table writes outside the agent that read it.
- A table kept in memory (`keep_in_memory`).
- Stream buffers that a resume of a running flow keeps (`HeldFlowControl`).
- The group's lease on this worker's partitions (`GroupLease`, `watch_heartbeats`).
- Faust's root command group (`FaustRootGroup`), for rtrank's CLI.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import types
import weakref
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from contextlib import contextmanager
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import TopicPartition
from faust.cli.base import _Group
from faust.streams import _current_event
from faust.transport.consumer import ensure_TP
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, EventT, TransportT
from faust.types.tuples import RecordMetadata
from faust.utils.terminal import SpinnerHandler
from mode import ServiceT
from mode.services import WaitResults
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from rtrank.streams.worker.delivery import DeliveryGuard

log = logging.getLogger(__name__)


# -- The app ---------------------------------------------------------------------------------


class PatchedApp(faust.App):
    """A ``faust.App`` whose Kafka consumer delivers inline, whose producer buffer holds
    ``producer_buffer_max_messages``, whose consumer's fetch wait is ``fetch_wait_ms``
    once started, without Faust's ``Monitor``, whose root logger drops the records no
    handler prints once the worker has started, and whose stream buffers a resume of a
    running flow keeps (`HeldFlowControl`). Every other keyword is Faust's.

    Offsets missing from a topic of ``gapless_topics`` are never committed as if read (see
    `InlineDeliveryConsumer._add_gap`).

    Its Kafka producer is idempotent with acks=all, and once `check_delivery` gave it a
    `DeliveryGuard`, every record it sends is checked and no offset is committed after
    one was not delivered (`CheckedProducer`, `CheckedConsumer`).
    """

    def __init__(
        self,
        id: str,  # noqa: A002 - Faust's name for it
        *,
        producer_buffer_max_messages: int,
        fetch_wait_ms: int,
        gapless_topics: frozenset[str] = frozenset(),
        **options: Any,
    ) -> None:
        super().__init__(id, **options)
        self.producer_buffer_max_messages = producer_buffer_max_messages
        self.fetch_wait_ms = fetch_wait_ms
        self.gapless_topics = gapless_topics
        self.delivery: DeliveryGuard | None = None
        self.group_lease = GroupLease(
            self.conf.broker_session_timeout, self.conf.broker_heartbeat_interval
        )

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        """Faust's flow control of the streams' buffers (`HeldFlowControl`)."""
        return HeldFlowControl(loop=self.loop)

    def check_delivery(self, delivery: DeliveryGuard, timeout_s: float) -> None:
        """Report every record's delivery to ``delivery``, which may then stop the
        commits; a record is retried for up to ``timeout_s``.

        ``timeout_s`` is Faust's ``producer_request_timeout`` (aiokafka's request timeout,
        which also bounds a send waiting for room in the producer's batches) and bounds
        each flush before a commit (`CheckedProducer.flush`). Call it before the producer
        is built (before the worker starts).
        """
        self.delivery = delivery
        self.conf.producer_request_timeout = timeout_s

    def _new_transport(self) -> TransportT:
        transport = super()._new_transport()
        if isinstance(transport, aiokafka_driver.Transport):
            transport.Consumer = CheckedConsumer
            transport.Producer = CheckedProducer
        return transport

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        """Faust's services, without its ``Monitor`` among the sensors, and with the
        producer buffer's bound.

        The monitor keeps Faust's own statistics (its ``/stats`` pages) and runs on every
        event, send and table access; rtrank's figures are its Prometheus metrics
        (`rtrank.streams.worker.metrics`), so the monitor was per-event work nobody read.
        """
        services = super().on_init_dependencies()
        self.sensors.remove(self.monitor)
        self.producer.buffer.max_messages = self.producer_buffer_max_messages
        buffer = self.producer.buffer
        buffer.sending = 0
        buffer._send_pending = types.MethodType(send_pending_counted, buffer)
        buffer.flush = types.MethodType(flush_until_empty, buffer)
        return services

    async def on_started(self) -> None:
        await super().on_started()
        drop_unprinted_log_records()
        if not set_fetch_wait(self.consumer, self.fetch_wait_ms):
            log.warning("consumer fetch wait not set: no aiokafka consumer found")
        producer = getattr(self.producer, "_producer", None)
        if not (
            watch_heartbeats(self.consumer, self.group_lease)
            and hold_sends_while_lapsed(producer, self.group_lease, exit_expelled)
        ):
            self.group_lease.watched = False
            log.error("group heartbeats not watched: a paused worker may write after its lease")


# -- Inline delivery -------------------------------------------------------------------------


def step_inline(coro: Coroutine) -> Coroutine | None:
    """Run ``coro`` in the calling task up to its first wait.

    None when it finished without waiting (an exception it raised propagates here);
    otherwise a coroutine that awaits the rest of it, for a task of its own.
    """
    try:
        awaiting = coro.send(None)
    except StopIteration:
        return None
    return _rest_of(coro, awaiting)


async def _rest_of(coro: Coroutine, awaiting: Any) -> Any:
    return await _resume(coro, awaiting)


@types.coroutine
def _resume(coro: Coroutine, awaiting: Any) -> Generator[Any, Any, Any]:
    """Yield what ``coro`` waits on to the task running us, and pass back what the task
    sends or throws (a cancellation too), until ``coro`` returns: ``await`` for a
    coroutine that was started elsewhere."""
    while True:
        try:
            sent = yield awaiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - every throw belongs to coro
            try:
                awaiting = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                awaiting = coro.send(sent)
            except StopIteration as stop:
                return stop.value


class Delivery:
    """One message's delivery to the app (the consumer's callback), not yet started.

    Awaitable like the callback's coroutine; `InlineDeliveryConsumer.wait_first` knows it
    by its type and starts it inline.
    """

    __slots__ = ("coro",)

    def __init__(self, coro: Coroutine) -> None:
        self.coro = coro

    def __await__(self) -> Generator[Any, Any, Any]:
        return self.coro.__await__()


class InlineDeliveryConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer whose deliveries start in its own task.

    Faust's consumer loop (``Consumer._drain_messages``) delivers every message with
    ``await self.wait_first(callback(message), self.suspend_flow.wait())``: the delivery
    may wait (flow control, a full producer buffer, a full stream buffer), and a rebalance
    that stops the flow meanwhile must abandon it. ``mode``'s ``wait_first`` builds that
    race from four tasks per message (the delivery, the flow, the service's stopped and
    crashed events) and an ``asyncio.wait``, though the delivery itself almost never
    waits: those tasks were half of a Faust agent's cost per event (`rtrank bench
    pipeline`'s Faust pass-through and drain, docs/benchmarks.md).

    Here a delivery runs in the consumer's own task up to its first wait; most finish
    there. One that waits continues in ``wait_first`` exactly as in Faust, so a stopped
    flow still abandons it at the point where it waits. Every other ``wait_first`` is
    ``mode``'s.

    A seek (`seek`) holds against the messages fetched before it (`ReadOffsets`).

    Offsets are committed by Faust's commit timer alone (every ``broker_commit_interval``,
    ``RTRANK_COMMIT_INTERVAL_S``, in a task of its own). Faust's loop also commits once
    ``broker_commit_every`` messages were acked, but inline: it delivers nothing until the
    commit is done, and the events fetched meanwhile wait. At a steady rate that is a stall
    every ``broker_commit_every`` events, which `rtrank bench pipeline` saw in its p99
    (docs/decisions.md).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        deliver = self.callback
        self.callback = lambda message: Delivery(deliver(message))
        self._read_offset = ReadOffsets()
        self._commit_every = None  # the loop's own commits: see the class's docstring

    async def seek(self, partition: TP, offset: int) -> None:
        """Faust's seek, whose read offset the messages fetched before it do not undo."""
        await self._seek(partition, offset)
        self._read_offset.seek(ensure_TP(partition), offset)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust's record of offsets its loop never delivered, except on the app's
        ``gapless_topics``.

        Faust counts such a range as acknowledged once any later offset is, so its commit
        passes it. On the events topic, which has no gaps (not compacted, no transaction
        markers), a range Faust did not deliver is events it lost around a rebalance:
        ingest reads them again (`rtrank.streams.worker.dataflow`), and the ack of the
        first one must not commit the rest before they were applied.
        """
        if tp.topic in self.app.gapless_topics:
            return
        await super()._add_gap(tp, offset_from, offset_to)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        first = coros[0] if coros else None
        if not isinstance(first, Delivery) or timeout is not None or self.suspend_flow.is_set():
            return await super().wait_first(*coros, timeout=timeout)
        rest = step_inline(first.coro)
        if rest is None:
            _close(coros[1:])
            return WaitResults([first], [None], False)
        return await super().wait_first(rest, *coros[1:])


class ReadOffsets(dict):
    """Faust's read offset per partition (``Consumer._read_offset``: the offset delivered
    last; a message below it is dropped as read already), where a seek holds.

    Faust's consumer loop (``_drain_messages``) sets a partition's read offset after each
    delivery. A seek made meanwhile (rtrank's ingest seeks a partition back to a gap while
    the loop waits to deliver, or holds a fetched batch) set it to the sought offset, and
    the loop's next delivery of a message fetched before the seek set it back past it: the
    messages read again from the sought offset were then dropped up to there, and the
    events after them were skipped waiting for them (`rtrank bench scale` saw a partition
    stuck so). Here, after `seek`, the partition has no read offset (every message is
    delivered: ingest recognises events read twice) and the loop's sets are ignored until
    it delivers the sought offset itself. Faust's own seeks to the committed offsets
    (``update``) and a revocation (``pop``) end a pending seek.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sought: dict[Any, int] = {}  # partition -> offset sought, not delivered yet

    def seek(self, tp: Any, offset: int) -> None:
        self.sought[tp] = offset
        super().pop(tp, None)

    def __missing__(self, tp: Any) -> None:
        return None

    def __getitem__(self, tp: Any) -> int | None:
        return None if tp in self.sought else super().__getitem__(tp)

    def __setitem__(self, tp: Any, offset: int | None) -> None:
        sought = self.sought.get(tp)
        if sought is not None:
            if offset != sought:
                return  # a message fetched before the seek
            del self.sought[tp]
        super().__setitem__(tp, offset)

    def __delitem__(self, tp: Any) -> None:
        self.sought.pop(tp, None)
        super().__delitem__(tp)

    def pop(self, tp: Any, *default: Any) -> Any:
        self.sought.pop(tp, None)
        return super().pop(tp, *default)

    def update(self, offsets: Any = (), **more: Any) -> None:
        offsets = dict(offsets, **more)
        for tp in offsets:
            self.sought.pop(tp, None)
        super().update(offsets)


def _close(awaitables: tuple[Awaitable, ...]) -> None:
    """Close the never-started coroutines among the race's other contestants."""
    for awaitable in awaitables:
        if isinstance(awaitable, Coroutine):
            awaitable.close()


# -- Checked delivery ------------------------------------------------------------------------


class CheckedProducer(aiokafka_driver.Producer):
    """Faust's aiokafka producer, idempotent with acks=all, reporting every record's
    delivery to the app's `DeliveryGuard` (``app.delivery``, none: unchecked).

    Every send goes through here: the lists, training examples and dead letters
    (`rtrank.streams.worker.agents.FaustSink`), the tables' changelog writes (Faust's
    producer buffer), rank responses. Each record's delivery future gets a done-callback,
    and a send that raises is a failure too; nothing more is awaited per record.

    Faust asks aiokafka for idempotence only inside transactions. An idempotent producer
    writes a retried batch once (no duplicate lists or changelog records after a lost
    acknowledgement), and retries a retriable error (a broker down, too few in-sync
    replicas) with no end of its own: `flush` bounds it.
    """

    def _settings_extra(self) -> dict[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[RecordMetadata]:
        delivery = self.app.delivery
        try:
            sent = await super().send(
                topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
            )
        except Exception as exc:
            if delivery is not None:
                delivery.failed(topic, exc)
            raise
        if delivery is not None:
            delivery.watch(topic, sent)
        return sent

    async def flush(self) -> None:
        """Faust's flush (run before every commit), failing the delivery when it has not
        finished in ``producer_request_timeout``: the records it waits for were retried
        that long.

        It waits for every record handed to the producer when it started: those of every
        acked event; their done-callbacks have run when it returns.
        """
        delivery = self.app.delivery
        if delivery is None:
            await super().flush()
            return
        if not delivery.may_commit():
            return  # nothing will be committed: no need to wait for anything
        try:
            await asyncio.wait_for(super().flush(), self.request_timeout)
        except TimeoutError:
            delivery.failed(
                undelivered_topics(self._producer),
                KafkaTimeoutError(f"not delivered in {self.request_timeout:g} s of retries"),
            )


def undelivered_topics(producer: AIOKafkaProducer | None) -> str:
    """The topics of the record batches ``producer`` has not delivered yet, for a log."""
    if producer is None:
        return "?"
    accumulator = producer._message_accumulator
    topics = {tp.topic for tp, batches in accumulator._batches.items() if batches}
    topics.update(batch.tp.topic for batch in accumulator._pending_batches)
    return ", ".join(sorted(topics)) or "?"


class CheckedConsumer(InlineDeliveryConsumer):
    """The app's consumer (`InlineDeliveryConsumer`), committing no offset once the app's
    `DeliveryGuard` learnt of a record that was not delivered.

    Faust commits in ``_commit_offsets``: it flushes the producer (`CheckedProducer.flush`),
    then calls ``_commit`` with the offsets it decided on before the flush. The check is
    made in ``_commit``, at the last moment, after the done-callbacks of the records the
    flush waited for have run: a failure found by the flush, or by any record before it,
    stops that commit too.
    """

    async def _commit(self, offsets: Any) -> bool:
        delivery = self.app.delivery
        if delivery is not None:
            await asyncio.sleep(0)  # let pending done-callbacks run
            if not delivery.may_commit():
                log.warning("offsets not committed: a record was not delivered")
                return False
        return await super()._commit(offsets)


# -- Limits Faust has no setting for ---------------------------------------------------------

PRODUCER_BUFFER_BATCHES = 2  # batches of table writes the producer buffer may hold


def producer_buffer_max(batch_max_events: int) -> int:
    """Messages Faust's producer buffer may hold before its consumer waits for it.

    Table writes go to the changelog through that buffer, and Faust's consumer stops
    handing over events while it holds more than 100 messages. A batch writes one state
    per answered user (hundreds at a time), so every batch paused ingest until its writes
    had drained. Twice the largest batch is still a bound, and one our writes never reach
    (`rtrank bench online`, docs/benchmarks.md).
    """
    return PRODUCER_BUFFER_BATCHES * batch_max_events


async def flush_until_empty(buffer: Any) -> None:
    """Faust's producer buffer ``flush``, returning only once the buffer is empty.

    Faust flushes its producer before it commits offsets, so that no committed event's
    table write is still unsent. Its buffer's ``flush`` returns, though, when no message
    left it for 0.1 s, however many remain: on a busy worker the commit then passed
    changelog writes still buffered, and a worker killed right after lost them while its
    events stayed committed (the next owner served a state without those events).
    Nor is the buffer empty while its last message is still being handed to aiokafka
    (``sending``, `send_pending_counted`: a send waits there while its partition's batch
    is full): aiokafka's own flush, next, waits only for the records it already holds.
    Installed on the app's buffer by `PatchedApp`.
    """
    while buffer.size or buffer.sending:
        if buffer.size:
            await buffer.flush_atmost(None)
        else:
            buffer.message_sent.clear()
            await buffer.message_sent.wait()  # set by the buffer's task after each send


async def send_pending_counted(buffer: Any, fut: Any) -> None:
    """Faust's producer buffer ``_send_pending`` (the buffer's task runs it for each
    message it takes), counting in ``buffer.sending`` the messages being sent: taken from
    the buffer's queue (no longer in its ``size``), not yet held by aiokafka.
    Installed on the app's buffer by `PatchedApp`, before the buffer's task starts."""
    buffer.sending += 1
    try:
        await fut.message.channel.publish_message(fut, wait=False)
    finally:
        buffer.sending -= 1


def set_fetch_wait(faust_consumer: Any, wait_ms: int) -> bool:
    """Set the fetch wait of the aiokafka consumer inside a started Faust consumer, for
    every fetch it sends from now on; False when it runs none (nothing changes).

    Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500``, fixed. aiokafka
    sends one fetch at a time to a broker, and leaves out of it every partition whose
    records the worker has not yet taken; so while the worker is busy, the next fetch
    often holds only partitions that get no new records, the broker keeps it for the whole
    wait, and no partition is fetched until it returns: a steady stream was read in bursts
    ~1.5 s apart (`rtrank bench online`, docs/benchmarks.md). A shorter wait costs an idle
    worker one more small fetch request per wait.
    """
    fetcher = _fetcher(faust_consumer)
    if fetcher is None:
        return False
    faust_consumer._thread._consumer._fetch_max_wait_ms = wait_ms  # for a rebuilt fetcher
    fetcher._fetch_max_wait_ms = wait_ms  # read for every fetch request
    return True


def fetch_wait_ms(faust_consumer: Any) -> int | None:
    """The fetch wait in force in a started Faust consumer (None: no aiokafka consumer)."""
    fetcher = _fetcher(faust_consumer)
    return None if fetcher is None else fetcher._fetch_max_wait_ms


def _fetcher(faust_consumer: Any) -> Any | None:
    """Faust's consumer runs aiokafka's in a thread of its own (``_thread._consumer``);
    the consumer's fetcher exists once it has started."""
    consumer = getattr(getattr(faust_consumer, "_thread", None), "_consumer", None)
    return getattr(consumer, "_fetcher", None)


# -- Log records nobody prints ---------------------------------------------------------------


def drop_unprinted_log_records() -> None:
    """Once started, raise the root logger to its handlers' lowest level.

    For its start-up spinner, Faust's worker sets the root logger to DEBUG and filters in
    the handlers, and leaves it so: every debug call in aiokafka and Faust then builds a
    record nobody prints, about a tenth of the event loop's time under load (`rtrank bench
    pipeline`, docs/benchmarks.md). The spinner has finished by now, so its handler goes too.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, SpinnerHandler)]:
        root.removeHandler(handler)
    levels = [h.level for h in root.handlers if h.level > logging.NOTSET]
    if levels:
        root.setLevel(min(levels))


# -- Sending buffered records now ------------------------------------------------------------


def send_buffered_now(producer: AIOKafkaProducer | None) -> None:
    """Make every record ``producer`` holds ready to send, and wake its sender (no await).

    The worker's producer lingers (``RTRANK_PRODUCER_LINGER_MS``) so that a backlogged
    worker sends few, large requests; but a list waiting out the linger is latency the user
    sees, so the answer loop sends a batch's records as soon as the batch is done. aiokafka
    has no public "send now" short of ``flush()``, which waits for delivery (a round trip
    per batch). This does the first half of what its transactional ``flush_for_commit``
    does: close every open batch, so that each is ready, and wake the sender. Records sent
    afterwards open new batches, in order per partition.

    None (Faust's producer between stop and start, as while a worker shuts down) holds
    nothing to send.
    """
    if producer is None:
        return
    accumulator = producer._message_accumulator
    for batches in accumulator._batches.values():
        for batch in batches:
            batch._builder.close()
    if not accumulator._waiter_future.done():
        accumulator._waiter_future.set_result(None)


def send_app_buffer_now(app: faust.App) -> None:
    """`send_buffered_now` for the aiokafka producer inside ``app``'s Faust producer."""
    send_buffered_now(app.producer._producer)


# -- The committed offset --------------------------------------------------------------------


def committed_offset(faust_consumer: Any, tp: Any) -> int | None:
    """The offset ``tp`` was committed at as the consumer knows it: read from the broker
    when the partition was assigned (Faust seeks it there before handing over events), then
    each commit of its own; None when none is known."""
    return getattr(faust_consumer, "_committed_offset", {}).get(tp)


async def next_on_broker(faust_consumer: Any, tp: Any) -> int | None:
    """The offset the group reads ``tp`` from next, asked of the broker now: its committed
    offset, or, never committed, the partition's first offset (where the consumer starts:
    Faust's ``consumer_auto_offset_reset`` is ``earliest``); None when the consumer runs
    no aiokafka consumer. Round trips through the consumer's own thread, for when
    `committed_offset` knows none."""
    thread = getattr(faust_consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    if consumer is None:
        return None
    partition = TopicPartition(tp.topic, tp.partition)
    committed = await thread.call_thread(consumer.committed, partition)
    if committed is not None:
        return committed
    first = await thread.call_thread(consumer.beginning_offsets, [partition])
    return first[partition]


def fetch_positions(faust_consumer: Any, topic: str) -> dict[TP, int]:
    """The offset the consumer fetches next (aiokafka's position: every event before it was
    fetched) of each partition of ``topic`` assigned to it and positioned, whose fetched
    events Faust has all handed to an agent (`waiting_in_faust`); empty when the consumer
    has not started or is being reassigned. Read from the consumer's thread's state without
    waiting on it (an int each, set there)."""
    fetcher = _fetcher(faust_consumer)
    assignment = None if fetcher is None else fetcher._subscriptions.subscription
    assignment = None if assignment is None else assignment.assignment
    if assignment is None or not assignment.active:
        return {}
    positions = {}
    for tp in list(assignment.tps):
        state = assignment.state_value(tp)
        if tp.topic == topic and state is not None and state.has_valid_position:
            positions[TP(tp.topic, tp.partition)] = state.position
    waiting = waiting_in_faust(faust_consumer, positions)
    return {tp: position for tp, position in positions.items() if tp not in waiting}


def waiting_in_faust(faust_consumer: Any, positions: Mapping[TP, int]) -> set[TP]:
    """The partitions among ``positions`` (`fetch_positions`) with a fetched event that Faust
    has not handed to an agent yet: its consumer loop has not delivered it (the loop's read
    offset is below the position's last event, or a seek is pending), or it waits in the
    buffer of a stream reading the partition.

    With a backlog, a partition's fetched events wait so while the loop delivers other
    partitions' events first, for as long as the backlog takes. A partition fetched past
    the agent's next event that is not waiting lost those events.
    """
    read = faust_consumer._read_offset
    undelivered = {
        tp for tp, position in positions.items() if read[tp] is None or read[tp] < position - 1
    }
    index = faust_consumer.app.topics._tp_index
    channels = {id(c): c for tp in positions.keys() - undelivered for c in index.get(tp, ())}
    buffered = {event.message.tp for c in channels.values() for event in c.queue._queue}
    return undelivered | (buffered & positions.keys())


# -- The current event -----------------------------------------------------------------------


@contextmanager
def as_current_event(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event for the block.

    A table write goes to the store and changelog partition of the current event, which
    Faust sets only inside the agent that read it; inside this block a write from anywhere
    else (the answer loop) goes to ``event``'s partition, the user's, as if written there.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


# -- A table kept in memory ------------------------------------------------------------------


def keep_in_memory(table: faust.Table, data: MutableMapping) -> None:
    """Keep ``table`` in ``data`` (a dict) instead of the app's store, recovered from its
    changelog at start.

    Faust drops ``store="memory://"`` given to a table (a URL that is falsy), so the store
    is set directly; and its dict is replaced so that the caller holds the very mapping
    the table writes to.
    """
    table._data = table._new_store_by_url("memory://")
    table.data.data = data


# -- Flow control ----------------------------------------------------------------------------


class HeldFlowControl(FlowControlEvent):
    """Faust's flow control of the streams' buffers, whose `resume` clears them only when it
    resumes a suspended flow.

    A rebalance suspends the flow and clears the buffers (their events may be of partitions
    gone); Faust's ``resume`` clears them again, even when the flow runs already. Recovery
    resumes the flow while it reads the changelogs, and once the tables are ready
    (``Recovery.on_recovery_completed``) it resumes the stream partitions, seeks each to its
    committed offset (an await per partition, during which the consumer fetches and
    delivers them) and resumes the flow once more: that resume dropped the events delivered
    meanwhile. The consumer's position was past them, and with no event after them ingest
    saw no gap: a worker restarted with a backlog answered a batch, and the rest of those
    partitions waited for `Dataflow.reseek_stalled` to read them again.
    """

    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()


# -- The group's lease -----------------------------------------------------------------------


class GroupLease:
    """Whether the consumer group surely still counts this worker as the owner of its
    partitions: the group last confirmed it (a heartbeat answered, counted from when it was
    sent, or an assignment received) less than ``session_timeout_s - heartbeat_s`` ago.

    A worker whose process stood still past its session (a long pause, a starved machine,
    SIGSTOP) has been expelled and its partitions handed on, but it learns that only from
    its next heartbeat, up to ``heartbeat_s`` after it resumes; meanwhile its event loop
    would go on answering and write states, lists and changelog records for partitions
    another worker now owns: a stale state written after the new owner's (the changelog's
    last word for those users). Faust's revocation comes only after that. So the dataflow
    writes nothing while the lease has lapsed (`rtrank.streams.worker.dataflow`). The
    margin of one heartbeat interval keeps a write made just before the lapse ahead of any
    new owner: after an expiry, the other members learn of the rebalance only at their own
    next heartbeat, and read the changelogs only once it completed.

    Records handed to the producer before the worker stood still are the other half: sent
    when it resumes, they too would land after the new owner's. So the producer sends
    nothing while the lease has lapsed (`hold_sends_while_lapsed`), and a worker that learns
    it was expelled (``expulsions`` grew: a heartbeat answered that the group no longer
    knows it) while it held records stops at once without them.

    ``watched`` is False when the heartbeats could not be watched (`watch_heartbeats`): the
    lease is then always held, as without it.
    """

    def __init__(
        self,
        session_timeout_s: float,
        heartbeat_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.term_s = max(0.0, session_timeout_s - heartbeat_s)
        self.clock = clock
        self.confirmed = clock()
        self.watched = True
        self.expulsions = 0  # heartbeats answered: this member is unknown to the group

    def confirm(self, at: float | None = None) -> None:
        """The group confirmed this worker at ``at`` (a ``clock`` time; default now)."""
        at = self.clock() if at is None else at
        self.confirmed = max(self.confirmed, at)

    def held(self) -> bool:
        return not self.watched or self.clock() - self.confirmed < self.term_s


def watch_heartbeats(faust_consumer: Any, lease: GroupLease) -> bool:
    """Confirm ``lease`` with every heartbeat of the started consumer's group coordinator
    that the broker answered, as of when it was sent; False when there is no coordinator
    to watch (the consumer has not started, or aiokafka changed).

    The heartbeats run in the consumer's own thread: the confirmation is one float set.
    """
    consumer = getattr(getattr(faust_consumer, "_thread", None), "_consumer", None)
    coordinator = getattr(consumer, "_coordinator", None)
    heartbeat = getattr(coordinator, "_do_heartbeat", None)
    if heartbeat is None:
        return False

    async def do_heartbeat() -> bool:
        sent = lease.clock()
        answered = await heartbeat()
        if answered:
            lease.confirm(sent)
        elif not coordinator.member_id:  # the group forgot this member: it must rejoin
            lease.expulsions += 1
        return answered

    coordinator._do_heartbeat = do_heartbeat
    return True


def exit_expelled() -> None:
    """End the process now: the group expelled this worker (it stood still past its
    session) while the producer held records. Sending them would put stale states after
    their new owner's; a graceful stop would flush them. The running mark stays, so the
    next start recovers the tables from their changelogs
    (`rtrank.streams.worker.local_state`)."""
    log.critical(
        "expelled from the group with records not yet sent: stopping at once without them "
        "(their events were not committed; the partitions' new owners answer them)"
    )
    logging.shutdown()
    os._exit(1)


LAPSE_POLL_S = 0.1  # how often a held send looks at the lease again


def hold_sends_while_lapsed(
    aiokafka_producer: Any, lease: GroupLease, expelled: Callable[[], None]
) -> bool:
    """Make ``aiokafka_producer`` send no record while ``lease`` has lapsed: each produce
    request waits until the lease holds again, or calls ``expelled`` (which must end the
    process without sending them) when the group expelled this worker meanwhile. False
    when the producer has no sender to hold (not started, or aiokafka changed).

    The check is made where aiokafka sends a drained batch, the one way records reach a
    broker, so it holds whatever task runs first after the process resumes.
    """
    sender = getattr(aiokafka_producer, "_sender", None)
    send = getattr(sender, "_send_produce_req", None)
    if send is None:
        return False

    async def send_produce_req(node_id: int, batches: Any) -> None:
        expulsions = lease.expulsions
        while not lease.held() and lease.expulsions == expulsions:
            await asyncio.sleep(LAPSE_POLL_S)
        if lease.expulsions != expulsions:  # held, then expelled: stale, even once rejoined
            expelled()
        await send(node_id, batches)

    sender._send_produce_req = send_produce_req
    return True


# -- Faust's root command group --------------------------------------------------------------

FaustRootGroup = _Group
"""Faust's root ``click`` group, private in ``faust.cli.base``: its ``make_context`` puts
the app on the root context, which Faust's commands (``worker`` among them) read; rtrank's
root group (`rtrank.streams.cli.main`) subclasses it so ``rtrank worker`` is Faust's."""
