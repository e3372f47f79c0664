"""Micro-batches close at N items or T ms after their first item."""

from __future__ import annotations

import asyncio

from streams.batching import next_batch


def test_batch_closes_at_max_items_and_keeps_order() -> None:
    async def scenario():
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(10):
            queue.put_nowait(n)
        return await next_batch(queue, max_items=4, max_wait_s=5), queue.qsize()

    batch, left = asyncio.run(scenario())
    assert batch == [0, 1, 2, 3]
    assert left == 6


def test_batch_closes_after_the_wait_with_what_arrived() -> None:
    async def scenario():
        queue: asyncio.Queue[int] = asyncio.Queue()
        queue.put_nowait(1)

        async def late():
            await asyncio.sleep(0.01)
            queue.put_nowait(2)
            await asyncio.sleep(1.0)
            queue.put_nowait(3)

        task = asyncio.create_task(late())
        batch = await next_batch(queue, max_items=100, max_wait_s=0.2)
        task.cancel()
        return batch

    assert asyncio.run(scenario()) == [1, 2]


def test_batch_waits_for_its_first_item() -> None:
    async def scenario():
        queue: asyncio.Queue[str] = asyncio.Queue()
        asyncio.get_running_loop().call_later(0.05, queue.put_nowait, "first")
        return await next_batch(queue, max_items=10, max_wait_s=0.01)

    assert asyncio.run(scenario()) == ["first"]
