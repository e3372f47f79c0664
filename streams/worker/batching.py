"""Micro-batches: take up to N items from a queue, or what was queued within T ms of the first
(and, behind a backlog, what is known to be on its way); fewer while few are waiting."""

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
    on_the_way: Callable[[], int] | None = None,
    fill_wait_s: float = 0.0,
    into: list[T] | None = None,
    keep_up_items: int | None = None,
    behind_from: int = 0,
) -> list[T]:
    """Wait for one item, then collect more until ``max_items``, or until ``max_wait_s``
    after the first item was queued (``queued_at(item)``, a ``time.monotonic()`` reading);
    a batch that then holds fewer items than there were when its first item was taken,
    queued or on their way (``on_the_way()``, asked then), goes on collecting up to that
    many, until ``fill_wait_s`` after its first item was queued.

    The waits count from the queueing, not from this call: items that queued up while the
    previous batch was being scored have waited already, and their batch closes with what
    is there instead of holding them T ms more. ``on_the_way`` counts items known to be
    coming but not queued yet (a backlog not read, or the rest of what was fetched with
    the first item); it is asked once the first item is taken, not before the wait for
    it, so that items which arrive together make one batch, not the first alone and then
    the rest. Order is the queue's order. Never returns an empty list.

    With ``keep_up_items``, a batch that begins with fewer than ``behind_from`` items
    waiting (taken, queued and on their way) takes at most ``keep_up_items``: each item
    of a batch waits for the whole batch to be scored, so while the caller keeps up,
    smaller batches answer sooner; behind a backlog of ``behind_from`` or more, a batch
    takes up to ``max_items``, which catches up in fewer, cheaper calls.

    ``into`` (empty; a new list by default) is the list collected into and returned: each
    item is in it from the moment it leaves the queue, so a caller that must reach every
    item it has taken (a revocation, while the batch still collects) finds it there.
    """
    batch = [] if into is None else into
    batch.append(await queue.get())
    first = queued_at(batch[0])
    waiting = len(batch) + queue.qsize() + (on_the_way() if on_the_way is not None else 0)
    size = max_items
    if keep_up_items is not None and waiting < behind_from:
        size = min(keep_up_items, max_items)
    await _collect(queue, batch, size, first + max_wait_s)
    if len(batch) < min(waiting, size):
        await _collect(queue, batch, min(waiting, size), first + fill_wait_s)
    return batch


async def _collect(queue: asyncio.Queue[T], batch: list[T], size: int, deadline: float) -> None:
    """Append queued items to ``batch`` until it holds ``size`` or ``deadline`` passes."""
    while len(batch) < size:
        while len(batch) < size and not queue.empty():
            batch.append(queue.get_nowait())
        remaining = deadline - time.monotonic()
        if len(batch) >= size or remaining <= 0:
            return
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except TimeoutError:
            return
