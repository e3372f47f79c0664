"""The patches to Faust's and aiokafka's internals (`rtrank.streams.worker.faust_patches`).

Deliveries run in the consumer's task until they wait, and one that waits is raced against
a stopped flow as in Faust; a seek holds against the messages fetched before it; the fetch
wait reaches the aiokafka consumer a Faust consumer runs in its thread, whose fetch
positions are read; buffered records are sent now; table writes go to the current event's
partition; a table is kept in a dict of ours; log records nobody prints are not made; the
producer is idempotent and reports every record's delivery, and no offset is committed
after a record was not delivered.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from types import SimpleNamespace

import faust
import pytest
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.structs import TopicPartition
from faust.exceptions import ProducerSendError
from faust.types import TP
from faust.utils.terminal import SpinnerHandler
from mode.utils.queues import FlowControlQueue

from rtrank.streams.settings import Settings
from rtrank.streams.worker.app import RtrankApp, build_app
from rtrank.streams.worker.delivery import DeliveryGuard
from rtrank.streams.worker.faust_patches import (
    CheckedConsumer,
    CheckedProducer,
    GroupLease,
    HeldFlowControl,
    InlineDeliveryConsumer,
    ReadOffsets,
    as_current_event,
    drop_unprinted_log_records,
    fetch_positions,
    fetch_wait_ms,
    flush_until_empty,
    hold_sends_while_lapsed,
    keep_in_memory,
    next_on_broker,
    send_app_buffer_now,
    send_buffered_now,
    send_pending_counted,
    set_fetch_wait,
    step_inline,
    watch_heartbeats,
)
from rtrank.streams.worker.metrics import Metrics

# -- Inline delivery


async def _no_callback(*_: object) -> None:
    return None


def _consumer(callback) -> InlineDeliveryConsumer:  # noqa: ANN001 - a consumer callback
    app = RtrankApp(Settings.from_env())
    return InlineDeliveryConsumer(
        app.transport,
        callback=callback,
        on_partitions_revoked=_no_callback,
        on_partitions_assigned=_no_callback,
    )


def test_a_coroutine_that_never_waits_runs_in_the_calling_task() -> None:
    async def scenario() -> None:
        ran_in = []

        async def deliver() -> None:
            ran_in.append(asyncio.current_task())

        assert step_inline(deliver()) is None
        assert ran_in == [asyncio.current_task()]

    asyncio.run(scenario())


def test_a_coroutine_that_waits_finishes_in_the_rest_with_its_result() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        steps = []

        async def deliver() -> str:
            steps.append("before")
            await gate.wait()
            steps.append("after")
            return "done"

        rest = asyncio.ensure_future(step_inline(deliver()))
        await asyncio.sleep(0)
        assert steps == ["before"]
        gate.set()
        assert await rest == "done"
        assert steps == ["before", "after"]

    asyncio.run(scenario())


def test_an_error_before_the_first_wait_is_raised_at_once() -> None:
    async def deliver() -> None:
        raise ValueError("bad message")

    async def scenario() -> None:
        with pytest.raises(ValueError, match="bad message"):
            step_inline(deliver())

    asyncio.run(scenario())


def test_an_error_after_a_wait_is_raised_by_the_rest() -> None:
    async def deliver() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad message")

    async def scenario() -> None:
        rest = step_inline(deliver())
        with pytest.raises(ValueError, match="bad message"):
            await rest

    asyncio.run(scenario())


def test_cancelling_the_rest_cancels_the_coroutine_where_it_waits() -> None:
    async def scenario() -> None:
        seen = []

        async def deliver() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                seen.append("cancelled while waiting")
                raise

        rest = asyncio.ensure_future(step_inline(deliver()))
        await asyncio.sleep(0)
        rest.cancel()
        with pytest.raises(asyncio.CancelledError):
            await rest
        assert seen == ["cancelled while waiting"]

    asyncio.run(scenario())


def test_the_apps_kafka_consumer_delivers_inline() -> None:
    assert isinstance(RtrankApp(Settings.from_env()).consumer, InlineDeliveryConsumer)


def test_the_consumer_delivers_a_message_that_needs_no_wait_in_its_own_task() -> None:
    async def scenario() -> None:
        ran_in = []

        async def deliver(message: str) -> None:
            ran_in.append((message, asyncio.current_task()))

        consumer = _consumer(deliver)
        result = await consumer.wait_first(consumer.callback("m1"), consumer.suspend_flow.wait())
        assert ran_in == [("m1", asyncio.current_task())]
        assert not result.stopped

    asyncio.run(scenario())


def test_the_consumer_finishes_a_delivery_that_waits() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        delivered = []

        async def deliver(message: str) -> None:
            await gate.wait()
            delivered.append(message)

        consumer = _consumer(deliver)
        race = asyncio.ensure_future(
            consumer.wait_first(consumer.callback("m1"), consumer.suspend_flow.wait())
        )
        await asyncio.sleep(0.01)
        assert delivered == []
        gate.set()
        await race
        assert delivered == ["m1"]

    asyncio.run(scenario())


def test_a_stopped_flow_abandons_a_delivery_that_waits() -> None:
    async def scenario() -> None:
        outcome = []

        async def deliver(message: str) -> None:
            try:
                await asyncio.Event().wait()
                outcome.append("delivered")
            except asyncio.CancelledError:
                outcome.append("abandoned")
                raise

        consumer = _consumer(deliver)
        race = asyncio.ensure_future(
            consumer.wait_first(consumer.callback("m1"), consumer.suspend_flow.wait())
        )
        await asyncio.sleep(0.01)
        consumer.stop_flow()
        await asyncio.wait_for(race, timeout=5)
        await asyncio.sleep(0)
        assert outcome == ["abandoned"]

    asyncio.run(scenario())


def test_with_the_flow_stopped_a_delivery_is_raced_from_the_start() -> None:
    async def scenario() -> None:
        outcome = []

        async def deliver(message: str) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                outcome.append("abandoned")
                raise

        consumer = _consumer(deliver)
        consumer.stop_flow()
        await asyncio.wait_for(
            consumer.wait_first(consumer.callback("m1"), consumer.suspend_flow.wait()), timeout=5
        )
        await asyncio.sleep(0)
        assert outcome == ["abandoned"]

    asyncio.run(scenario())


class _Fetcher:
    """What Faust's consumer loop (``_drain_messages``) needs of its fetcher service."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()


def _drain(consumer: InlineDeliveryConsumer, batches: list[list[int]]) -> None:
    """Run Faust's consumer loop over ``batches`` of fetched offsets of partition 0, then stop."""
    fetcher = _Fetcher()
    tp = TP("events", 0)

    async def getmany(timeout: float):  # noqa: ANN202 - Faust's getmany, an async generator
        if not batches:
            fetcher._stopped.set()
            return
        for offset in batches.pop(0):
            yield tp, SimpleNamespace(topic="events", offset=offset, key=None, value=None)

    consumer.getmany = getmany
    consumer._thread = SimpleNamespace(seek=lambda partition, offset: None)
    asyncio.run(asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10))


def test_a_seek_holds_against_the_messages_fetched_before_it() -> None:
    delivered = []

    async def deliver(message: SimpleNamespace) -> None:
        delivered.append(message.offset)
        if message.offset == 145 and delivered.count(145) == 1:  # ingest: 115..144 lost
            await consumer.seek(TP("events", 0), 115)

    consumer = _consumer(deliver)
    # 145..147 fetched before the seek, then the partition read again from 115
    _drain(consumer, [[145, 146, 147], [115, 116, 145, 146, 147, 148]])
    assert delivered == [145, 146, 147, 115, 116, 145, 146, 147, 148]


def test_messages_below_the_read_offset_are_still_dropped_without_a_seek() -> None:
    delivered = []

    async def deliver(message: SimpleNamespace) -> None:
        delivered.append(message.offset)

    _drain(_consumer(deliver), [[5, 6, 7], [5, 6, 8]])  # 5, 6 fetched twice
    assert delivered == [5, 6, 7, 8]


def test_the_consumer_loop_never_holds_deliveries_for_a_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """However many messages were acked, the loop delivers on; the commit timer commits."""
    journal: list = []

    async def deliver(message: SimpleNamespace) -> None:
        journal.append(message.offset)

    async def commit(*_: object, **__: object) -> bool:
        journal.append("commit")
        return True

    consumer = _consumer(deliver)
    monkeypatch.setattr(consumer, "commit", commit)
    consumer._n_acked = consumer.app.conf.broker_commit_every * 10  # past Faust's count
    _drain(consumer, [[1, 2], [3]])
    assert journal == [1, 2, 3]


def _acking_consumer(monkeypatch: pytest.MonkeyPatch) -> InlineDeliveryConsumer:
    """A consumer whose app acks every topic, as the worker's events topic is acked."""
    consumer = _consumer(_no_callback)
    monkeypatch.setattr(consumer.app.topics, "acks_enabled_for", lambda topic: True)
    return consumer


def test_offsets_the_loop_skipped_on_the_events_topic_are_never_counted_as_acked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = _acking_consumer(monkeypatch)
    _drain(consumer, [[5, 6, 9]])  # 7 and 8 fetched and lost
    assert not consumer._gap[TP("events", 0)]


def test_offsets_the_loop_skipped_on_other_topics_are_faust_s_gaps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = _acking_consumer(monkeypatch)
    consumer.app.gapless_topics = frozenset()
    _drain(consumer, [[5, 6, 9]])
    assert sorted((i.begin, i.end) for i in consumer._gap[TP("events", 0)]) == [(7, 10)]


def test_a_seek_ends_at_faust_s_own_seek_to_the_committed_offsets_and_at_revocation() -> None:
    consumer = _consumer(_no_callback)
    offsets, tp = consumer._read_offset, TP("events", 0)
    offsets.seek(tp, 115)
    offsets.update({tp: 200})  # Faust's perform_seek
    offsets[tp] = 201
    assert offsets[tp] == 201
    offsets.seek(tp, 115)
    offsets.pop(tp, None)  # revoked
    offsets[tp] = 300
    assert offsets[tp] == 300


# -- The fetch wait


def _faust_consumer(wait_ms: int) -> SimpleNamespace:
    fetcher = SimpleNamespace(_fetch_max_wait_ms=wait_ms)
    aiokafka = SimpleNamespace(_fetcher=fetcher, _fetch_max_wait_ms=wait_ms)
    return SimpleNamespace(_thread=SimpleNamespace(_consumer=aiokafka))


def test_setting_the_fetch_wait_changes_the_running_fetcher_and_the_consumer() -> None:
    consumer = _faust_consumer(1500)
    assert set_fetch_wait(consumer, 100)
    assert fetch_wait_ms(consumer) == 100
    assert consumer._thread._consumer._fetch_max_wait_ms == 100


def _positioned_consumer(
    positions: dict[TopicPartition, int], read: ReadOffsets, queued: list[TP] = ()
) -> SimpleNamespace:
    """A Faust consumer as `fetch_positions` reads it: aiokafka's subscription state at
    ``positions``, Faust's loop's read offsets ``read``, and one stream reading every
    partition whose buffer holds an event of each partition in ``queued``."""
    subscriptions = SubscriptionState()
    subscriptions.subscribe({tp.topic for tp in positions} | {"events"})
    subscriptions.assign_from_subscribed(set(positions) | {TopicPartition("events", 1)})
    for tp, offset in positions.items():
        subscriptions.seek(tp, offset)
    fetcher = SimpleNamespace(_subscriptions=subscriptions)
    events = [SimpleNamespace(message=SimpleNamespace(tp=tp)) for tp in queued]
    stream = SimpleNamespace(queue=SimpleNamespace(_queue=collections.deque(events)))
    tp_index = {TP(tp.topic, tp.partition): [stream] for tp in positions}
    return SimpleNamespace(
        _thread=SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher)),
        _read_offset=read,
        app=SimpleNamespace(topics=SimpleNamespace(_tp_index=tp_index)),
    )


def _read_offsets(offsets: dict[TP, int]) -> ReadOffsets:
    read = ReadOffsets()
    read.update(offsets)
    return read


def test_fetch_positions_are_the_topic_s_positioned_partitions_aiokafka_fetches_next() -> None:
    async def scenario() -> dict:
        positions = {TopicPartition("events", 0): 7, TopicPartition("other", 0): 3}
        read = _read_offsets({TP("events", 0): 6, TP("other", 0): 2})
        return fetch_positions(_positioned_consumer(positions, read), "events")

    assert asyncio.run(scenario()) == {TP("events", 0): 7}  # events 1: not positioned yet


def test_a_partition_whose_fetched_events_faust_s_loop_has_not_delivered_has_no_position() -> None:
    async def scenario() -> dict:
        positions = {TopicPartition("events", 0): 3000, TopicPartition("events", 2): 50}
        read = _read_offsets({TP("events", 0): 102, TP("events", 2): 49})
        return fetch_positions(_positioned_consumer(positions, read), "events")

    assert asyncio.run(scenario()) == {TP("events", 2): 50}


def test_a_partition_with_an_event_in_a_stream_s_buffer_has_no_position() -> None:
    async def scenario() -> dict:
        positions = {TopicPartition("events", 0): 7, TopicPartition("events", 2): 50}
        read = _read_offsets({TP("events", 0): 6, TP("events", 2): 49})
        consumer = _positioned_consumer(positions, read, queued=[TP("events", 0)])
        return fetch_positions(consumer, "events")

    assert asyncio.run(scenario()) == {TP("events", 2): 50}


def test_a_partition_sought_and_not_delivered_from_there_yet_has_no_position() -> None:
    async def scenario() -> dict:
        read = _read_offsets({TP("events", 0): 6})
        read.seek(TP("events", 0), 3)
        consumer = _positioned_consumer({TopicPartition("events", 0): 7}, read)
        return fetch_positions(consumer, "events")

    assert asyncio.run(scenario()) == {}


def test_a_consumer_not_started_has_no_fetch_positions() -> None:
    assert fetch_positions(SimpleNamespace(), "events") == {}


def test_a_consumer_not_started_yet_is_left_alone_and_says_so() -> None:
    not_started = SimpleNamespace(_thread=SimpleNamespace(_consumer=None))
    assert not set_fetch_wait(not_started, 100)
    assert fetch_wait_ms(not_started) is None


# -- Sending buffered records now


def test_a_producer_that_is_not_running_has_nothing_to_send() -> None:
    send_buffered_now(None)  # Faust's producer while the worker stops: no AttributeError


def test_an_app_whose_producer_has_not_started_has_nothing_to_send(tmp_path) -> None:
    settings = Settings(broker="kafka://127.0.0.1:9", store="memory://", data_dir=tmp_path)
    send_app_buffer_now(RtrankApp(settings))  # no aiokafka producer yet: no AttributeError


# -- The current event


class _Event:
    """Stands for a Faust event: Faust keeps a weak reference to the current one."""


def test_inside_the_block_the_event_is_faust_s_current_event() -> None:
    event = _Event()
    with as_current_event(event):
        assert faust.current_event() is event


def test_after_the_block_the_previous_current_event_is_back() -> None:
    before, outer, inner = faust.current_event(), _Event(), _Event()
    with as_current_event(outer):
        with as_current_event(inner):
            pass
        assert faust.current_event() is outer
    assert faust.current_event() is before


# -- A table kept in memory


def test_a_table_kept_in_memory_reads_what_its_dict_holds(tmp_path) -> None:
    app = RtrankApp(Settings(broker="memory://", store="rocksdb://", data_dir=tmp_path))
    table = app.GlobalTable(
        "item_to_info",
        default=None,
        schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
    )
    items: dict = {}
    keep_in_memory(table, items)
    items["i1"] = {"available": True}
    assert table.get("i1") == {"available": True}
    assert list(table.keys()) == ["i1"]


# -- Log records nobody prints


@pytest.fixture
def root_logger():  # noqa: ANN201 - yields the root logger, restored afterwards
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


def test_the_root_logger_is_raised_to_its_handlers_lowest_level(root_logger) -> None:
    root_logger.handlers[:] = [logging.NullHandler(logging.WARNING)]
    root_logger.addHandler(logging.NullHandler(logging.INFO))
    root_logger.setLevel(logging.DEBUG)
    drop_unprinted_log_records()
    assert root_logger.level == logging.INFO


def test_handlers_without_a_level_leave_the_root_logger_as_it_is(root_logger) -> None:
    root_logger.handlers[:] = [logging.NullHandler()]
    root_logger.setLevel(logging.DEBUG)
    drop_unprinted_log_records()
    assert root_logger.level == logging.DEBUG


def test_faust_s_start_up_spinner_handler_is_removed(root_logger) -> None:
    spinner = SpinnerHandler(SimpleNamespace(), level=logging.DEBUG)
    root_logger.handlers[:] = [spinner, logging.NullHandler(logging.WARNING)]
    drop_unprinted_log_records()
    assert spinner not in root_logger.handlers
    assert root_logger.level == logging.WARNING


class SlowBuffer:
    """A producer buffer that sends one message per flush_atmost call, as Faust's does when
    each later message takes over 0.1 s to leave it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sending = 0
        self.calls = 0

    async def flush_atmost(self, max_messages: int | None) -> int:
        self.calls += 1
        self.size -= 1
        return 1


def test_a_flush_before_a_commit_returns_only_once_the_buffer_is_empty() -> None:
    buffer = SlowBuffer(size=3)
    asyncio.run(flush_until_empty(buffer))
    assert (buffer.size, buffer.calls) == (0, 3)


def test_the_app_s_producer_buffer_flushes_until_empty(tmp_path) -> None:
    settings = Settings(broker="kafka://127.0.0.1:9", store="memory://", data_dir=tmp_path)
    app = RtrankApp(settings)
    app.on_init_dependencies()
    assert app.producer.buffer.flush.__func__ is flush_until_empty
    assert app.producer.buffer._send_pending.__func__ is send_pending_counted


class _Channel:
    """A topic whose publish waits for ``sent`` (aiokafka waiting for room in a batch)."""

    def __init__(self) -> None:
        self.sent = asyncio.Event()

    async def publish_message(self, fut: object, wait: bool) -> None:
        await self.sent.wait()


def test_a_flush_waits_for_the_message_being_handed_to_the_producer(tmp_path) -> None:
    settings = Settings(broker="kafka://127.0.0.1:9", store="memory://", data_dir=tmp_path)
    app = RtrankApp(settings)
    app.on_init_dependencies()
    buffer = app.producer.buffer

    async def scenario() -> list[str]:
        channel, steps = _Channel(), []
        message = SimpleNamespace(message=SimpleNamespace(channel=channel))

        async def buffer_task() -> None:  # Faust's ProducerBuffer._handle_pending, one message
            await buffer._send_pending(message)
            steps.append("sent")
            buffer.message_sent.set()

        async def commit() -> None:
            await buffer.flush()
            steps.append("flushed")

        sending = asyncio.ensure_future(buffer_task())
        await asyncio.sleep(0)
        assert (buffer.size, buffer.sending) == (0, 1)
        flushing = asyncio.ensure_future(commit())
        await asyncio.sleep(0.01)
        assert steps == []
        channel.sent.set()
        await asyncio.gather(sending, flushing)
        return steps

    assert asyncio.run(scenario()) == ["sent", "flushed"]


# -- Checked delivery


class _Stops:
    def __init__(self) -> None:
        self.requested = 0

    def __call__(self) -> None:
        self.requested += 1


def _guard() -> DeliveryGuard:
    return DeliveryGuard(Metrics().failed_sends, stop=_Stops())


def _checked_app(tmp_path, guard: DeliveryGuard, timeout_s: float = 120.0) -> RtrankApp:
    settings = Settings(broker="kafka://127.0.0.1:9", store="memory://", data_dir=tmp_path)
    app = RtrankApp(settings)
    app.check_delivery(guard, timeout_s)
    return app


class _Accumulator:
    def __init__(self, undelivered: dict) -> None:
        self._batches = undelivered
        self._pending_batches: set = set()


class _AiokafkaProducer:
    """aiokafka's producer as Faust's calls it: ``send`` returns the record's delivery future
    (or raises ``raises``); ``flush`` waits for ``delivered``."""

    def __init__(self, raises: Exception | None = None, undelivered: dict | None = None) -> None:
        self.raises = raises
        self.futures: list[asyncio.Future] = []
        self.delivered = asyncio.Event()
        self._message_accumulator = _Accumulator(undelivered or {})

    async def send(self, topic: str, value: bytes | None, **kwargs: object) -> asyncio.Future:
        if self.raises is not None:
            raise self.raises
        self.futures.append(asyncio.get_running_loop().create_future())
        return self.futures[-1]

    async def flush(self) -> None:
        await self.delivered.wait()


def _checked_producer(app: RtrankApp, aiokafka: _AiokafkaProducer) -> CheckedProducer:
    producer = app.producer
    producer._producer = aiokafka
    return producer


def test_the_app_s_kafka_producer_is_idempotent_with_acks_all(tmp_path) -> None:
    app = _checked_app(tmp_path, _guard(), timeout_s=7.0)

    async def scenario() -> None:
        aiokafka = app.producer._new_producer()
        assert aiokafka._txn_manager is not None  # aiokafka's idempotence
        assert aiokafka._sender._acks == -1
        assert aiokafka._request_timeout_ms == 7000
        await aiokafka.client.close()

    asyncio.run(scenario())


def test_the_worker_s_records_are_retried_for_the_delivery_timeout_of_the_settings(
    tmp_path,
) -> None:
    settings = Settings(
        broker="kafka://127.0.0.1:9",
        store="memory://",
        data_dir=tmp_path,
        producer_delivery_timeout_s=42.0,
    )
    app = build_app(settings)
    assert app.producer.request_timeout == 42.0
    assert isinstance(app.delivery, DeliveryGuard)


def test_a_record_the_producer_fails_to_deliver_is_reported_with_its_topic(tmp_path) -> None:
    guard = _guard()
    app = _checked_app(tmp_path, guard)

    async def scenario() -> None:
        aiokafka = _AiokafkaProducer()
        producer = _checked_producer(app, aiokafka)
        await producer.send("recommendations", b"u1", b"{}", None, None, None)
        aiokafka.futures[0].set_exception(MessageSizeTooLargeError())
        await asyncio.sleep(0)
        assert guard.failure[0] == "recommendations"

    asyncio.run(scenario())


def test_a_send_that_raises_is_reported_and_raised(tmp_path) -> None:
    guard = _guard()
    app = _checked_app(tmp_path, guard)

    async def scenario() -> None:
        producer = _checked_producer(app, _AiokafkaProducer(raises=KafkaTimeoutError()))
        with pytest.raises(ProducerSendError):
            await producer.send("user_to_history-changelog", b"u1", b"{}", None, None, None)
        assert guard.failure[0] == "user_to_history-changelog"

    asyncio.run(scenario())


def test_delivered_records_leave_the_commits_open(tmp_path) -> None:
    guard = _guard()
    app = _checked_app(tmp_path, guard)

    async def scenario() -> None:
        aiokafka = _AiokafkaProducer()
        producer = _checked_producer(app, aiokafka)
        await producer.send("recommendations", b"u1", b"{}", None, None, None)
        aiokafka.futures[0].set_result("metadata")
        aiokafka.delivered.set()
        await producer.flush()
        assert guard.may_commit()

    asyncio.run(scenario())


def test_a_flush_still_waiting_after_the_delivery_timeout_fails_the_delivery(tmp_path) -> None:
    guard = _guard()
    app = _checked_app(tmp_path, guard, timeout_s=0.01)
    undelivered = {TP("recommendations", 3): ["a batch"], TP("training-examples", 0): []}

    async def scenario() -> None:
        producer = _checked_producer(app, _AiokafkaProducer(undelivered=undelivered))
        await producer.flush()  # nothing is ever delivered

    asyncio.run(scenario())
    topic, error = guard.failure
    assert topic == "recommendations"
    assert isinstance(error, KafkaTimeoutError)


class _ConsumerThread:
    def __init__(self) -> None:
        self.committed: list = []

    async def commit(self, offsets: dict) -> bool:
        self.committed.append(offsets)
        return True


def _checked_consumer(app: RtrankApp) -> CheckedConsumer:
    consumer = app.consumer
    consumer._thread = _ConsumerThread()
    return consumer


def test_offsets_are_committed_while_every_record_was_delivered(tmp_path) -> None:
    app = _checked_app(tmp_path, _guard())
    consumer = _checked_consumer(app)
    assert asyncio.run(consumer._commit({TP("events", 0): 10}))
    assert consumer._thread.committed == [{TP("events", 0): 10}]


def test_no_offset_is_committed_after_a_record_was_not_delivered(tmp_path) -> None:
    guard = _guard()
    app = _checked_app(tmp_path, guard)
    consumer = _checked_consumer(app)
    guard.failed("recommendations", MessageSizeTooLargeError())
    assert not asyncio.run(consumer._commit({TP("events", 0): 10}))
    assert consumer._thread.committed == []


def test_a_commit_already_decided_sees_a_failure_whose_callback_is_still_pending(
    tmp_path,
) -> None:
    guard = _guard()
    app = _checked_app(tmp_path, guard)
    consumer = _checked_consumer(app)

    async def scenario() -> bool:
        delivery = asyncio.get_running_loop().create_future()
        guard.watch("recommendations", delivery)
        delivery.set_exception(MessageSizeTooLargeError())  # its done-callback not run yet
        return await consumer._commit({TP("events", 0): 10})

    assert not asyncio.run(scenario())
    assert consumer._thread.committed == []


# -- Flow control


def test_resuming_a_running_flow_keeps_the_buffered_events() -> None:
    flow = HeldFlowControl()
    buffer = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.resume()
    buffer.put_nowait("event")
    flow.resume()
    assert buffer.qsize() == 1


def test_resuming_a_suspended_flow_clears_the_buffers() -> None:
    flow = HeldFlowControl()
    buffer = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.resume()
    buffer.put_nowait("event")
    flow.suspend()
    flow.resume()
    assert buffer.qsize() == 0


def test_the_app_s_stream_buffers_are_kept_by_a_resume_of_a_running_flow() -> None:
    assert isinstance(RtrankApp(Settings.from_env()).flow_control, HeldFlowControl)


# -- The group's lease -----------------------------------------------------------------------


def test_the_lease_holds_for_the_session_less_one_heartbeat_after_a_confirmation(clock) -> None:
    lease = GroupLease(session_timeout_s=10.0, heartbeat_s=3.0, clock=clock)
    clock.now += 6.9
    assert lease.held()
    clock.now += 0.2
    assert not lease.held()
    lease.confirm()
    assert lease.held()


def test_a_confirmation_older_than_the_last_one_does_not_shorten_the_lease(clock) -> None:
    lease = GroupLease(10.0, 3.0, clock=clock)
    lease.confirm(at=clock.now - 5.0)  # a heartbeat sent before the assignment, answered after
    clock.now += 6.0
    assert lease.held()


def test_a_lease_whose_heartbeats_are_not_watched_always_holds(clock) -> None:
    lease = GroupLease(10.0, 3.0, clock=clock)
    lease.watched = False
    clock.now += 1000.0
    assert lease.held()


def test_an_answered_heartbeat_confirms_the_lease_as_of_when_it_was_sent(clock) -> None:
    lease = GroupLease(10.0, 3.0, clock=clock)

    async def heartbeat() -> bool:
        clock.now += 2.0  # the broker's answer takes 2 s
        return answered

    coordinator = SimpleNamespace(_do_heartbeat=heartbeat, member_id="member-1")
    aiokafka_consumer = SimpleNamespace(_coordinator=coordinator)
    consumer = SimpleNamespace(_thread=SimpleNamespace(_consumer=aiokafka_consumer))
    assert watch_heartbeats(consumer, lease)
    clock.now += 5.0
    sent = clock.now
    answered = True
    assert asyncio.run(coordinator._do_heartbeat()) is True
    assert lease.confirmed == sent
    answered = False
    clock.now += 5.0
    assert asyncio.run(coordinator._do_heartbeat()) is False
    assert lease.confirmed == sent


def test_heartbeats_are_not_watched_without_a_started_consumer() -> None:
    lease = GroupLease(10.0, 3.0)
    assert not watch_heartbeats(SimpleNamespace(_thread=None), lease)


def test_aiokafka_s_group_coordinator_still_has_the_heartbeat_the_lease_watches() -> None:
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    assert asyncio.iscoroutinefunction(GroupCoordinator._do_heartbeat)


def test_a_heartbeat_answered_that_the_group_forgot_this_member_counts_an_expulsion() -> None:
    lease = GroupLease(10.0, 3.0)
    coordinator = SimpleNamespace(member_id="member-1")

    async def heartbeat() -> bool:
        coordinator.member_id = ""  # aiokafka's reset_generation after UnknownMemberId
        return False

    coordinator._do_heartbeat = heartbeat
    aiokafka_consumer = SimpleNamespace(_coordinator=coordinator)
    watch_heartbeats(SimpleNamespace(_thread=SimpleNamespace(_consumer=aiokafka_consumer)), lease)
    asyncio.run(coordinator._do_heartbeat())
    assert lease.expulsions == 1


class Sender:
    def __init__(self) -> None:
        self.sent: list[int] = []

    async def _send_produce_req(self, node_id: int, batches: dict) -> None:
        self.sent.append(node_id)


def test_records_wait_while_the_lease_has_lapsed_and_are_sent_once_it_holds(clock) -> None:
    lease = GroupLease(10.0, 3.0, clock=clock)
    sender = Sender()
    assert hold_sends_while_lapsed(SimpleNamespace(_sender=sender), lease, expelled=None)
    clock.now += 8.0  # lapsed

    async def go() -> list[int]:
        send = asyncio.ensure_future(sender._send_produce_req(1, {}))
        await asyncio.sleep(0.3)
        held = list(sender.sent)
        lease.confirm()  # a heartbeat answered: still a member
        await send
        return held

    assert asyncio.run(go()) == []
    assert sender.sent == [1]


def test_records_held_when_the_group_expels_the_worker_are_never_sent(clock) -> None:
    lease = GroupLease(10.0, 3.0, clock=clock)
    sender = Sender()

    class Expelled(Exception):
        pass

    def expelled() -> None:
        raise Expelled  # the worker's exits the process here

    hold_sends_while_lapsed(SimpleNamespace(_sender=sender), lease, expelled)
    clock.now += 8.0

    async def go() -> None:
        send = asyncio.ensure_future(sender._send_produce_req(1, {}))
        await asyncio.sleep(0.15)
        lease.expulsions += 1
        lease.confirm()  # rejoined at once: still stale
        await send

    with pytest.raises(Expelled):
        asyncio.run(go())
    assert sender.sent == []


def test_a_producer_without_a_sender_is_not_held() -> None:
    assert not hold_sends_while_lapsed(SimpleNamespace(), GroupLease(10.0, 3.0), lambda: None)


# -- The committed offset on the broker ------------------------------------------------------


def test_the_committed_offset_on_the_broker_is_asked_through_the_consumer_s_thread() -> None:
    asked: list[TopicPartition] = []

    async def committed(partition: TopicPartition) -> int | None:
        asked.append(partition)
        return 42

    async def call_thread(fun, *args):  # noqa: ANN001, ANN202 - mode's signature
        return await fun(*args)

    aiokafka_consumer = SimpleNamespace(committed=committed)
    thread = SimpleNamespace(_consumer=aiokafka_consumer, call_thread=call_thread)
    offset = asyncio.run(next_on_broker(SimpleNamespace(_thread=thread), TP("events", 3)))
    assert offset == 42 and asked == [TopicPartition("events", 3)]


def test_a_partition_never_committed_is_read_next_from_its_first_offset() -> None:
    async def committed(partition: TopicPartition) -> int | None:
        return None

    async def beginning_offsets(partitions: list[TopicPartition]) -> dict:
        return dict.fromkeys(partitions, 7)  # the log's start, past deleted segments

    async def call_thread(fun, *args):  # noqa: ANN001, ANN202 - mode's signature
        return await fun(*args)

    aiokafka_consumer = SimpleNamespace(committed=committed, beginning_offsets=beginning_offsets)
    thread = SimpleNamespace(_consumer=aiokafka_consumer, call_thread=call_thread)
    offset = asyncio.run(next_on_broker(SimpleNamespace(_thread=thread), TP("events", 3)))
    assert offset == 7


def test_no_committed_offset_is_asked_without_a_started_consumer() -> None:
    assert asyncio.run(next_on_broker(SimpleNamespace(_thread=None), TP("events", 3))) is None
