"""Micro-batches: take up to N items from a queue, or what arrived within T ms of the first."""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


async def next_batch(queue: asyncio.Queue[T], max_items: int, max_wait_s: float) -> list[T]:
    """Wait for one item, then collect more until ``max_items`` or ``max_wait_s`` has passed.

    Order is the queue's order. Never returns an empty list.
    """
    batch = [await queue.get()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    while len(batch) < max_items:
        while len(batch) < max_items and not queue.empty():
            batch.append(queue.get_nowait())
        remaining = deadline - loop.time()
        if len(batch) >= max_items or remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except TimeoutError:
            break
    return batch
