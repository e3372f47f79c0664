"""The patches to Faust's and aiokafka's internals (`rtrank.streams.worker.faust_patches`).

Deliveries run in the consumer's task until they wait, and one that waits is raced against
a stopped flow as in Faust; the fetch wait reaches the aiokafka consumer a Faust consumer
runs in its thread; buffered records are sent now; table writes go to the current event's
partition; a table is kept in a dict of ours; log records nobody prints are not made.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import faust
import pytest
from faust.utils.terminal import SpinnerHandler

from rtrank.streams.settings import Settings
from rtrank.streams.worker.app import RtrankApp
from rtrank.streams.worker.faust_patches import (
    InlineDeliveryConsumer,
    as_current_event,
    drop_unprinted_log_records,
    fetch_wait_ms,
    flush_until_empty,
    keep_in_memory,
    send_app_buffer_now,
    send_buffered_now,
    set_fetch_wait,
    step_inline,
)

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
