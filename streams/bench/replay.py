"""Turning a data set into the event stream a producer replays.

Files with timestamps replay in ``ts`` order. Files without them (the shared Amazon data:
each user's lines in time order, users one after another) are interleaved: at every step
a user is drawn with probability proportional to the events it has left, so the stream
mixes users the way live traffic does while each user's own order is kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from rtrank.model import synthetic
from rtrank.model.data import LineError, iter_records


@dataclass
class Replay:
    """Events ready to send (``ts`` None = stamp at send time) and the lines skipped."""

    events: list[dict] = field(default_factory=list)
    bad_lines: list[LineError] = field(default_factory=list)


def from_file(path: str, fmt: str = "auto", seed: int = 0) -> Replay:
    """Read ``path``; bad lines are collected (with their numbers), never sent."""
    replay = Replay()
    per_user: dict[str, list[dict]] = {}
    timed = True
    for rec in iter_records(path, fmt):
        if isinstance(rec, LineError):
            replay.bad_lines.append(rec)
            continue
        event = {
            "user_id": rec.user_id,
            "item_id": rec.item_id,
            "event_type": rec.event_type or "view",
            "ts": rec.ts,
        }
        timed = timed and rec.ts is not None
        per_user.setdefault(rec.user_id, []).append(event)
    if timed:
        replay.events = sorted((e for evs in per_user.values() for e in evs), key=lambda e: e["ts"])
    else:
        replay.events = list(interleave(per_user, seed))
    return replay


def synthetic_replay(
    users: int, items: int, events: int, seed: int = 0, noise: float = 0.1
) -> Replay:
    """``events`` synthetic events for ``users`` users (planted transitions, see
    `rtrank.model.synthetic`).

    The generator's timestamps only order the stream; events are stamped when sent, as live
    traffic would be.
    """
    per_user = max(1, math.ceil(events / users))
    data = synthetic.generate(
        num_users=users, num_items=items, min_len=per_user, max_len=per_user, noise=noise, seed=seed
    )
    stream = [{**e, "ts": None} for e in synthetic.events(data)][:events]
    return Replay(events=stream)


def interleave(per_user: dict[str, list[dict]], seed: int = 0) -> Iterator[dict]:
    """Mix users' event lists, keeping each list's order (seeded, reproducible)."""
    users = list(per_user)
    counts = np.array([len(per_user[u]) for u in users], dtype=np.int64)
    order = np.repeat(np.arange(len(users)), counts)
    np.random.default_rng(seed).shuffle(order)
    cursor = np.zeros(len(users), dtype=np.int64)
    for u in order:
        yield per_user[users[u]][cursor[u]]
        cursor[u] += 1
