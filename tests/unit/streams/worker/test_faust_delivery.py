"""A delivery runs in the consumer's task until it waits; one that waits is raced against
a stopped flow as in Faust."""

from __future__ import annotations

import asyncio

import pytest

from rtrank.streams.settings import Settings
from rtrank.streams.worker.app import RtrankApp
from rtrank.streams.worker.faust_delivery import InlineDeliveryConsumer, step_inline


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
