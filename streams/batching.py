"""Micro-batches: take up to N items from a queue, or what was queued within T ms of the first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def next_batch(
    queue: asyncio.Queue[T],
    max_items: int,
    max_wait_s: float,
    queued_at: Callable[[T], float],
) -> list[T]:
    """Wait for one item, then collect more until ``max_items``, or until ``max_wait_s``
    after the first item was queued (``queued_at(item)``, a ``time.monotonic()`` reading).

    The wait counts from the queueing, not from this call: items that queued up while the
    previous batch was being scored have waited already, and their batch closes with what
    is there instead of holding them T ms more. Order is the queue's order. Never returns
    an empty list.
    """
    batch = [await queue.get()]
    deadline = queued_at(batch[0]) + max_wait_s
    while len(batch) < max_items:
        while len(batch) < max_items and not queue.empty():
            batch.append(queue.get_nowait())
        remaining = deadline - time.monotonic()
        if len(batch) >= max_items or remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except TimeoutError:
            break
    return batch
