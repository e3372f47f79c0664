"""Seeded synthetic behaviour with a planted pattern, for tests, demos and first runs.

Items follow a hidden successor map (one cycle through all items, so no item follows
itself): each next item is the current item's successor with probability ``1 - noise``,
else a uniformly random item. A model that learns the map reaches Hit@10 close to
``1 - noise``; popularity cannot (every item is about equally popular).

    data = generate(num_users=500, num_items=100, seed=0)
    data["user-0"][:2]  # [("item-17", 1700000012345), ("item-3", 1700000071234)]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

START_TS = 1_700_000_000_000  # epoch ms (2023-11-14): a fixed, realistic clock start


def item_id(i: int) -> str:
    return f"item-{i}"


def user_id(u: int) -> str:
    return f"user-{u}"


def successors(num_items: int, seed: int = 0) -> dict[str, str]:
    """The planted map: external item id -> the item that usually follows it."""
    order = np.random.default_rng([seed, 1]).permutation(num_items)
    return {
        item_id(int(a)): item_id(int(b)) for a, b in zip(order, np.roll(order, -1), strict=True)
    }


def generate(
    num_users: int = 1000,
    num_items: int = 200,
    min_len: int = 5,
    max_len: int = 30,
    noise: float = 0.1,
    seed: int = 0,
    start_ts: int = START_TS,
    span_ms: int = 3_600_000,
    drift_at: float | None = None,
) -> dict[str, list[tuple[str, int]]]:
    """Generates per-user chronological (item_id, ts) lists.

    Args:
        num_users: users ``user-0`` ... ; each gets ``min_len..max_len`` events.
        num_items: catalogue ``item-0`` ... (at least 2).
        noise: probability that a step ignores the planted successor.
        seed: same seed, same data.
        start_ts: epoch ms of the earliest possible event.
        span_ms: users start uniformly within this window, so replaying all events by
            ``ts`` interleaves users (each user's own order is kept).
        drift_at: with a value in [0, 1], a user's events after that share of its sequence
            follow another planted map (`successors` with seed ``seed + 1``): replaying
            every user's first part, then every second part, changes the item transitions
            mid-stream, and a model trained on the first parts falls behind. None: no drift.
    """
    if num_items < 2 or not 0 <= noise <= 1 or not 1 <= min_len <= max_len:
        raise ValueError("need num_items >= 2, 0 <= noise <= 1 and 1 <= min_len <= max_len")
    rng = np.random.default_rng([seed, 0])
    succ = successors(num_items, seed)
    drifted = successors(num_items, seed + 1) if drift_at is not None else succ
    data: dict[str, list[tuple[str, int]]] = {}
    for u in range(num_users):
        n = int(rng.integers(min_len, max_len + 1))
        ts = start_ts + int(rng.integers(0, span_ms))
        item = item_id(int(rng.integers(num_items)))
        events = []
        switch = n if drift_at is None else int(n * drift_at)
        for step in range(n):
            events.append((item, ts))
            ts += int(rng.integers(1_000, 120_000))  # 1 s .. 2 min between events
            planted = succ if step + 1 < switch else drifted
            item = item_id(int(rng.integers(num_items))) if rng.random() < noise else planted[item]
        data[user_id(u)] = events
    return data


def events(
    data: dict[str, list[tuple[str, int]]], event_type: str = "view"
) -> Iterator[dict[str, Any]]:
    """All events of ``data`` as event dicts, in ``ts`` order (users interleaved)."""
    flat = [(ts, u, i) for u, evs in data.items() for i, ts in evs]
    flat.sort(key=lambda e: e[0])  # stable: a user's equal timestamps keep their order
    for ts, u, i in flat:
        yield {"user_id": u, "item_id": i, "event_type": event_type, "ts": ts}
