"""Time-decayed item popularity, maintained from the event stream (cold start, exploration).

An event of weight ``w`` at time ``t`` contributes ``w * 2 ** -((now - t) / half_life)``.
Stored as forward decay (Cormode et al., 2009): each event adds ``w * 2 ** ((t - t0) /
half_life)`` once, and reading divides by ``2 ** ((now - t0) / half_life)``, so an event
costs O(1) whatever the catalogue size. ``t0`` moves forward (all values rescaled) before
the exponents grow large. "Now" is the newest event time seen, and an event's time counts
as at most the broker's append time (the worker hands events over so,
`rtrank.streams.worker.dataflow.at_broker_time`) and the wall clock's: replays of old data
decay by their own clock, and an event dated in the future (a producer's wrong clock, or a
hostile one) counts as happening now instead of outweighing every real event until its
date (and moving "now" there).

At most ``max_items`` items are tracked (``RTRANK_TRENDING_MAX_ITEMS``): one more, and the
least popular half is forgotten at once (amortised O(1) per event); an item forgotten
counts from zero again at its next event, which for an item that unpopular changes no list.

Each worker counts the events of its own partitions: with users spread over partitions
that is a sample of the whole stream. The counts are a cache derived from the stream, not
state: a restarted worker starts cold and warms up as events arrive.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

RESCALE_AT = 60.0  # half-lives past t0 before rescaling (2**60 is still exact enough)


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Trending:
    half_life_ms: float
    max_items: int = 200_000  # RTRANK_TRENDING_MAX_ITEMS: beyond, the least popular half goes
    clock_ms: Callable[[], int] = wall_clock_ms
    _t0: int | None = None
    _now: int = 0
    _raw: dict[str, float] = field(default_factory=dict)

    def observe(self, item_id: str, ts: int, weight: float = 1.0) -> None:
        """Count one event of ``weight`` on ``item_id`` at ``ts`` (epoch ms), or now when
        ``ts`` is later than the clock."""
        ts = min(ts, self.clock_ms())
        if self._t0 is None:
            self._t0 = ts
        self._now = max(self._now, ts)
        if (self._now - self._t0) / self.half_life_ms > RESCALE_AT:
            self._rescale(self._now)
        self._raw[item_id] = self._raw.get(item_id, 0.0) + weight * 2.0 ** (
            (ts - self._t0) / self.half_life_ms
        )
        if len(self._raw) > self.max_items:
            self._forget(len(self._raw) - self.max_items // 2)  # amortised: half at once

    def score(self, item_id: str) -> float:
        """Decayed popularity of ``item_id`` at the newest event time seen."""
        return self._raw.get(item_id, 0.0) * self._scale()

    def scores(self, item_ids: Iterable[str]) -> dict[str, float]:
        """The decayed popularity of those of ``item_ids`` counted (the others' is 0), in
        one pass: cheaper than `score` per item over tens of thousands of items."""
        raw, scale = self._raw, self._scale()
        return {i: v * scale for i in item_ids if (v := raw.get(i))}

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` most popular items now, most popular first (ties: by item id)."""
        scale = self._scale()
        best = heapq.nsmallest(n, self._raw.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(i, v * scale) for i, v in best]

    def __len__(self) -> int:
        return len(self._raw)

    def _scale(self) -> float:
        if self._t0 is None:
            return 0.0
        return 2.0 ** (-(self._now - self._t0) / self.half_life_ms)

    def _rescale(self, new_t0: int) -> None:
        factor = 2.0 ** (-(new_t0 - self._t0) / self.half_life_ms)
        self._raw = {i: v * factor for i, v in self._raw.items() if v * factor > 1e-12}
        self._t0 = new_t0

    def _forget(self, n: int) -> None:
        for item_id, _ in heapq.nsmallest(n, self._raw.items(), key=lambda kv: kv[1]):
            del self._raw[item_id]
