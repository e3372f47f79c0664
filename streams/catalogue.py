"""The item catalogue: what producers say about items, validated like events are.

Producers write ``{"item_id", "available", "category", "tags"?, "boost"?, "created_at"?}`` to
the compacted ``items`` topic keyed by item_id, at any time; a record with no value (a
tombstone) removes the item. `parse_item` turns raw bytes into an `ItemInfo` or a
`rtrank.streams.validation.Rejection` (the record then goes to ``items.dlq`` with its original
bytes and the reason). The worker keeps the catalogue in the ``item_to_info`` GlobalTable
(every worker holds every item); `Catalogue` is the read side the re-ranker uses.

The worker's copy holds at most ``RTRANK_CATALOGUE_MAX_ITEMS`` items (`ChangedItems`): one
more, and the item least recently written (created or updated) leaves the copy, in the
worker and in its model process alike. An item not in the copy counts as an unknown item
does (available, no category, no boost), so the cap is meant to sit above the catalogue's
size: it bounds the memory a flood of item ids (a bug, or a hostile producer) can take.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from rtrank.streams.validation import (
    MAX_TS,
    MIN_TS,
    Limits,
    Rejection,
    parse_identifier,
    parse_json_object,
)

log = logging.getLogger(__name__)

MAX_TAGS = 64
MAX_BOOST = 1_000.0  # boosts add to relevances in [0, 1]: larger ones are mistakes


@dataclass(frozen=True, slots=True)
class ItemInfo:
    """One catalogue entry. Items absent from the catalogue count as available."""

    item_id: str
    available: bool = True
    category: str | None = None
    tags: tuple[str, ...] = ()
    boost: float = 0.0  # added to the item's relevance (business rule)
    created_at: int | None = None  # epoch ms; drives freshness and exploration

    def to_json(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "available": self.available,
            "category": self.category,
            "tags": list(self.tags),
            "boost": self.boost,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ItemInfo:
        return cls(
            item_id=data["item_id"],
            available=data.get("available", True),
            category=data.get("category"),
            tags=tuple(data.get("tags") or ()),
            boost=float(data.get("boost") or 0.0),
            created_at=data.get("created_at"),
        )


def parse_item(
    key: bytes | None, value: bytes, limits: Limits, now_ms: int | None = None
) -> ItemInfo | Rejection:
    """Validate one record of the items topic (tombstones are handled by the caller).

    ``item_id`` is required (string or integer); ``available`` is required (a boolean: an
    item whose availability is unknown must not be shown by accident); ``category`` is a
    string or null; ``tags`` a list of strings; ``boost`` a finite number;
    ``created_at`` epoch ms between 2000 and 2100, at most ``limits.max_clock_skew_ms``
    after ``now_ms`` (the wall clock by default), like an event's ``ts``: an item dated
    years ahead would stay "fresh" (boosted, explored) until then. The key, when present,
    must be the id.
    """
    obj = parse_json_object(value, limits)
    if isinstance(obj, Rejection):
        return obj
    for name in ("item_id", "available"):
        if obj.get(name) is None:
            return Rejection("missing_field", f"missing field {name!r}")
    item_id = parse_identifier("item_id", obj["item_id"], limits, allow_int=True)
    if isinstance(item_id, Rejection):
        return item_id
    if not isinstance(obj["available"], bool):
        return Rejection("wrong_type", "available must be true or false")
    category = obj.get("category")
    if category is not None:
        category = parse_identifier("category", category, limits, allow_int=False)
        if isinstance(category, Rejection):
            return category
    tags = obj.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return Rejection("wrong_type", "tags must be a list of strings")
    if len(tags) > MAX_TAGS:
        return Rejection("too_many_tags", f"{len(tags)} tags > {MAX_TAGS}")
    boost = obj.get("boost", 0.0)
    if boost is None:
        boost = 0.0
    if isinstance(boost, bool) or not isinstance(boost, int | float) or not math.isfinite(boost):
        return Rejection("wrong_type", "boost must be a finite number")
    if abs(boost) > MAX_BOOST:
        return Rejection("boost_out_of_range", f"|boost| {boost} > {MAX_BOOST}")
    created_at = obj.get("created_at")
    if created_at is not None:
        if isinstance(created_at, bool) or not isinstance(created_at, int):
            return Rejection("wrong_type", "created_at must be integral epoch milliseconds")
        if not MIN_TS <= created_at < MAX_TS:
            return Rejection("ts_out_of_range", f"created_at {created_at} is outside 2000..2100")
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if created_at - now_ms > limits.max_clock_skew_ms:
            return Rejection(
                "ts_in_future",
                f"created_at {created_at} is {created_at - now_ms} ms ahead of the clock "
                f"(more than {limits.max_clock_skew_ms} ms)",
            )
    if key is not None and key.decode("utf-8", "replace") != item_id:
        return Rejection("key_mismatch", "record key is not the item_id")
    return ItemInfo(item_id, obj["available"], category, tuple(tags), float(boost), created_at)


INDEX_BUCKET_MS = 24 * 3600 * 1000  # the dated items' index groups them by day of creation


@dataclass
class Catalogue:
    """Read side of the catalogue: item_id -> `ItemInfo`, from entries in their JSON form
    (``ItemInfo.to_json()``, as the worker's table holds them).

    The model process keeps one, its copy of the worker's catalogue; changes come in
    through `apply` only, and are parsed there, once: the re-rank stage looks up every
    candidate of every list. `fresh` finds the young items through an index of the dated
    items by day of creation, which `apply` keeps: it reads the days within the fresh age,
    not the catalogue, whose scan took 0.2-0.3 s at a million items (docs/benchmarks.md,
    "A catalogue of a million items"). A fresh list is made again at once when an applied
    change touches an item young enough to be in it, and otherwise every
    ``fresh_cache_s``, for the items that aged out of it meanwhile. ``boosted`` counts
    the items with a boost: while there are none, a list needs no lookup of the
    candidates it does not show (`rtrank.streams.scorer.rerank.plain_list`).
    """

    entries: InitVar[Mapping[str, Mapping[str, Any]] | None] = None
    fresh_cache_s: float = 10.0
    items: dict[str, ItemInfo] = field(default_factory=dict, init=False)
    boosted: int = field(default=0, init=False)  # items whose boost is not 0
    _by_day: dict[int, set[str]] = field(default_factory=dict, init=False)  # day -> items
    # max_age_ms -> (made at, monotonic s; now_ms it was made for; the list)
    _fresh: dict[int, tuple[float, int, list[ItemInfo]]] = field(default_factory=dict, init=False)

    def __post_init__(self, entries: Mapping[str, Mapping[str, Any]] | None) -> None:
        self.apply(entries or {})

    def get(self, item_id: str) -> ItemInfo | None:
        return self.items.get(item_id)

    def fresh(self, now_ms: int, max_age_ms: int) -> list[ItemInfo]:
        """Available items created within ``max_age_ms`` before ``now_ms`` (or after it),
        newest first (then by id)."""
        made = self._fresh.get(max_age_ms)
        if made is not None and time.monotonic() - made[0] < self.fresh_cache_s:
            if abs(now_ms - made[1]) < self.fresh_cache_s * 1000:
                return made[2]
        since = now_ms - max_age_ms
        first_day = since // INDEX_BUCKET_MS
        out = []
        items = self.items
        for day, ids in self._by_day.items():
            if day >= first_day:
                for item_id in ids:
                    info = items[item_id]
                    if info.available and info.created_at >= since:
                        out.append(info)
        out.sort(key=lambda i: (-i.created_at, i.item_id))
        self._fresh[max_age_ms] = (time.monotonic(), now_ms, out)
        return out

    def apply(self, changes: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Take ``changes`` (item_id -> new entry, None = removed) into ``items``."""
        renew = False
        for item_id, raw in changes.items():
            old = self.items.pop(item_id, None)
            if old is not None:
                self._unindex(old)
                renew = renew or self._in_a_fresh_list(old)
            if raw is not None:
                info = ItemInfo.from_json(raw)
                self.items[item_id] = info
                self._index(info)
                renew = renew or self._in_a_fresh_list(info)
        if renew:
            self._fresh.clear()

    def _index(self, info: ItemInfo) -> None:
        self.boosted += info.boost != 0
        if info.created_at is not None:
            self._by_day.setdefault(info.created_at // INDEX_BUCKET_MS, set()).add(info.item_id)

    def _unindex(self, info: ItemInfo) -> None:
        self.boosted -= info.boost != 0
        if info.created_at is not None:
            day = info.created_at // INDEX_BUCKET_MS
            ids = self._by_day.get(day, set())
            ids.discard(info.item_id)
            if not ids:
                self._by_day.pop(day, None)

    def _in_a_fresh_list(self, info: ItemInfo) -> bool:
        """Whether an item so dated is young enough for a fresh list made (kept) now."""
        created = info.created_at
        return created is not None and any(
            created >= now_ms - max_age for max_age, (_, now_ms, _) in self._fresh.items()
        )


class ChangedItems(dict):
    """The worker's catalogue dict (the ``item_to_info`` table's memory store) that
    remembers which items changed, however they changed: the catalogue agent's writes and
    the table's changelog recovery (other workers' writes) both go through it.

    `take_changes` hands the changes since the last call to the model process, which
    keeps its own copy of the catalogue (`Catalogue.apply`); a new dict starts with every
    item changed, so the first hand-over is the whole catalogue.

    It holds at most ``max_items`` items (None: no bound): items are kept in the order
    they were last written, and a new item beyond the bound removes the one least recently
    written (a change like any removal, so the model process's copy drops it too;
    ``evicted`` counts them).
    """

    def __init__(self, *args: Any, max_items: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_items = max_items
        self.evicted = 0
        self._changed: set[str] = set(self)

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self:
            super().__delitem__(key)  # written now: the newest
        elif self.max_items is not None and len(self) >= self.max_items:
            oldest = next(iter(self))
            super().__delitem__(oldest)
            self._changed.add(oldest)
            if not self.evicted:
                log.warning(
                    "the catalogue copy is full (RTRANK_CATALOGUE_MAX_ITEMS=%d): the items "
                    "least recently written leave it",
                    self.max_items,
                )
            self.evicted += 1
        super().__setitem__(key, value)
        self._changed.add(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed.add(key)

    def pop(self, key: str, *default: Any) -> Any:
        self._changed.add(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        key, value = super().popitem()
        self._changed.add(key)
        return key, value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        self._changed.update(self)
        super().clear()

    @property
    def pending(self) -> int:
        """Items changed since they were last taken (`take_changes`)."""
        return len(self._changed)

    def take_changes(self, limit: int | None = None) -> dict[str, Any]:
        """item_id -> its entry now (None when removed), for every item changed since it
        was last taken, or for ``limit`` of them (the others are left for the next call)."""
        if limit is None or len(self._changed) <= limit:
            changed, self._changed = self._changed, set()
        else:
            changed = set(itertools.islice(self._changed, limit))
            self._changed -= changed
        return {key: self.get(key) for key in changed}
