"""Faust's consumer, handing each fetched message to the app without four tasks per message.

Faust's consumer loop (``Consumer._drain_messages``) delivers every message with
``await self.wait_first(callback(message), self.suspend_flow.wait())``: the delivery may
wait (flow control, a full producer buffer, a full stream buffer), and a rebalance that
stops the flow meanwhile must abandon it. ``mode``'s ``wait_first`` builds that race from
four tasks per message (the delivery, the flow, the service's stopped and crashed events)
and an ``asyncio.wait``; the delivery itself almost never waits. Those tasks were half of a
Faust agent's cost per event: a pass-through agent forwarded 6,400–6,500 events/s with
them and 13,500–14,000 without them; `rtrank bench pipeline`'s drain 3,400–4,100 events/s
and 6,300–8,500 (2-core AMD EPYC, alternating runs).

`InlineDeliveryConsumer` runs a delivery in the consumer's own task up to its first wait.
Most deliveries finish there. One that waits continues in ``wait_first`` exactly as in
Faust, so a stopped flow still abandons it at the point where it waits.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

from faust.transport.drivers import aiokafka as aiokafka_driver
from mode.services import WaitResults


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
    """Faust's aiokafka consumer whose deliveries start in its own task (module docstring).

    Only the consumer loop's race between a delivery and a stopped flow changes; every other
    ``wait_first`` is ``mode``'s.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        deliver = self.callback
        self.callback = lambda message: Delivery(deliver(message))

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        first = coros[0] if coros else None
        if not isinstance(first, Delivery) or timeout is not None or self.suspend_flow.is_set():
            return await super().wait_first(*coros, timeout=timeout)
        rest = step_inline(first.coro)
        if rest is None:
            _close(coros[1:])
            return WaitResults([first], [None], False)
        return await super().wait_first(rest, *coros[1:])


def _close(awaitables: tuple[Awaitable, ...]) -> None:
    """Close the never-started coroutines among the race's other contestants."""
    for awaitable in awaitables:
        if isinstance(awaitable, Coroutine):
            awaitable.close()
