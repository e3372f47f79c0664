"""Micro-batches close at N items or T ms after their first item was queued."""

from __future__ import annotations

import asyncio
import time

from rtrank.streams.worker.batching import next_batch

Item = tuple[str, float]  # (name, time.monotonic() when queued)


def queued_at(item: Item) -> float:
    return item[1]


def put(queue: asyncio.Queue[Item], name: str, waited_s: float = 0.0) -> None:
    queue.put_nowait((name, time.monotonic() - waited_s))


def names(batch: list[Item]) -> list[str]:
    return [name for name, _ in batch]


def test_batch_closes_at_max_items_and_keeps_order() -> None:
    async def scenario():
        queue: asyncio.Queue[Item] = asyncio.Queue()
        for n in range(10):
            put(queue, str(n))
        return await next_batch(queue, 4, 5.0, queued_at), queue.qsize()

    batch, left = asyncio.run(scenario())
    assert names(batch) == ["0", "1", "2", "3"]
    assert left == 6


def test_batch_closes_after_the_wait_with_what_arrived() -> None:
    async def scenario():
        queue: asyncio.Queue[Item] = asyncio.Queue()
        put(queue, "1")

        async def late():
            await asyncio.sleep(0.01)
            put(queue, "2")
            await asyncio.sleep(1.0)
            put(queue, "3")

        task = asyncio.create_task(late())
        batch = await next_batch(queue, 100, 0.2, queued_at)
        task.cancel()
        return batch

    assert names(asyncio.run(scenario())) == ["1", "2"]


def test_batch_waits_for_its_first_item() -> None:
    async def scenario():
        queue: asyncio.Queue[Item] = asyncio.Queue()
        asyncio.get_running_loop().call_later(0.05, put, queue, "first")
        return await next_batch(queue, 10, 0.01, queued_at)

    assert names(asyncio.run(scenario())) == ["first"]


def test_a_batch_whose_first_item_waited_past_the_wait_closes_with_what_is_queued() -> None:
    async def scenario():
        queue: asyncio.Queue[Item] = asyncio.Queue()
        put(queue, "waited", waited_s=0.5)
        put(queue, "queued")
        asyncio.get_running_loop().call_later(0.1, put, queue, "later")
        return await next_batch(queue, 100, 0.3, queued_at)

    assert names(asyncio.run(scenario())) == ["waited", "queued"]


def arriving(delays: tuple[float, ...]) -> asyncio.Queue[Item]:
    """A queue holding item "1" now, and items "2", "3"... queued after ``delays`` seconds
    (from inside a running loop)."""
    queue: asyncio.Queue[Item] = asyncio.Queue()
    put(queue, "1")
    loop = asyncio.get_running_loop()
    for n, delay in enumerate(delays, 2):
        loop.call_later(delay, put, queue, str(n))
    return queue


def test_a_batch_fills_up_to_the_items_known_to_be_on_their_way() -> None:
    async def scenario():
        queue = arriving((0.05, 0.1, 0.15))
        return await next_batch(queue, 100, 0.01, queued_at, on_the_way=lambda: 2, fill_wait_s=5.0)

    assert names(asyncio.run(scenario())) == ["1", "2", "3"]


def test_the_items_on_their_way_are_counted_once_the_first_item_is_taken() -> None:
    """A burst fetched at once while the batch waits for its first item, then read one item
    at a time: its first item wakes the batch while the rest are still unread, and they
    are one batch with it."""

    async def scenario():
        queue: asyncio.Queue[Item] = asyncio.Queue()
        unread: list[str] = []

        async def read_burst():
            await asyncio.sleep(0.05)
            unread.extend(["1", "2", "3"])
            while unread:
                put(queue, unread.pop(0))
                await asyncio.sleep(0.01)

        reading = asyncio.create_task(read_burst())
        batch = await next_batch(
            queue, 100, 0.0, queued_at, on_the_way=lambda: len(unread), fill_wait_s=5.0
        )
        await reading
        return batch

    assert names(asyncio.run(scenario())) == ["1", "2", "3"]


def test_a_batch_waits_for_the_awaited_events_no_longer_than_the_fill_wait() -> None:
    async def scenario():
        queue: asyncio.Queue[Item] = asyncio.Queue()
        put(queue, "1")
        started = time.monotonic()
        batch = await next_batch(
            queue, 100, 0.01, queued_at, on_the_way=lambda: 49, fill_wait_s=0.2
        )
        return batch, time.monotonic() - started

    batch, waited = asyncio.run(scenario())
    assert names(batch) == ["1"]
    assert 0.15 < waited < 2.0


def keep_up_batch_of_ten_queued(on_the_way: int) -> tuple[list[str], int]:
    """Ten items queued, ``on_the_way`` more coming; batches keep up at 4 items while
    fewer than 16 wait: the batch's names and the items left queued."""

    async def scenario():
        queue: asyncio.Queue[Item] = asyncio.Queue()
        for n in range(10):
            put(queue, str(n))
        batch = await next_batch(
            queue,
            100,
            0.0,
            queued_at,
            on_the_way=lambda: on_the_way,
            keep_up_items=4,
            behind_from=16,
        )
        return names(batch), queue.qsize()

    return asyncio.run(scenario())


def test_while_few_items_wait_a_batch_closes_at_the_keep_up_size() -> None:
    assert keep_up_batch_of_ten_queued(on_the_way=5) == (["0", "1", "2", "3"], 6)  # 15 wait


def test_behind_a_backlog_a_batch_takes_up_to_the_most_items() -> None:
    assert keep_up_batch_of_ten_queued(on_the_way=6) == ([str(n) for n in range(10)], 0)


def test_a_keep_up_batch_waits_only_for_the_items_it_takes() -> None:
    async def scenario():
        return await next_batch(
            arriving((0.02, 0.04, 1.0)),
            100,
            0.0,
            queued_at,
            on_the_way=lambda: 3,
            fill_wait_s=5.0,
            keep_up_items=3,
            behind_from=16,
        )

    assert names(asyncio.run(scenario())) == ["1", "2", "3"]


def test_each_item_taken_is_in_the_callers_list_while_the_batch_still_collects() -> None:
    async def scenario():
        queue: asyncio.Queue[Item] = asyncio.Queue()
        put(queue, "1")
        taken: list[Item] = []
        collecting = asyncio.create_task(next_batch(queue, 100, 5.0, queued_at, into=taken))
        await asyncio.sleep(0.01)
        seen_while_collecting = names(taken)
        put(queue, "2")
        await asyncio.sleep(0.01)
        seen_later = names(taken)
        collecting.cancel()
        return seen_while_collecting, seen_later

    assert asyncio.run(scenario()) == (["1"], ["1", "2"])
