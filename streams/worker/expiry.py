"""Users idle for ``RTRANK_STATE_TTL_S`` leave the ``user_to_history`` table: a tombstone in
its changelog, so the table's size follows the users active within the TTL instead of every
user ever seen.

Idle is measured by the broker's clock: a state's ``seen_at`` is the log-append time of the
user's last event (`rtrank.streams.worker.state`), and "now" is the newest log-append time
the worker has read (`rtrank.streams.worker.dataflow.Dataflow.broker_ms`). A producer's ``ts``
plays no part, so a wrong or hostile producer clock neither keeps a user forever nor expires
one early. A worker that reads no event has no "now" and expires nobody (nor does its table
grow); after a restart the clock starts again with its first event.

Expiry runs on a timer (`register_expiry`): each tick reads at most ``SCAN_PER_TICK`` states
in all, shared evenly by the events partitions the worker owns, each in key order from where
its last tick stopped, and deletes the idle ones; a partition's pass then starts again at
its first key. Where each partition's pass stands is kept per partition and dropped when
the partition is revoked. A tick does nothing while the group rebalances, a table recovers
or the group's lease on this worker has lapsed (`faust_patches.GroupLease`), and it never
awaits, so no revocation lands inside it: a tombstone is written only for a partition this
worker owns and has recovered. A user with an event applied but not yet written
(``Dataflow.unwritten``) is never expired.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

import faust

from rtrank.streams.settings import Settings
from rtrank.streams.worker.faust_patches import as_current_event
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.state import is_expired, last_active_ms

log = logging.getLogger(__name__)

# States read per tick by one worker, all its partitions together: bounds the time a tick
# takes from the event loop whatever the table's size (each state is read, and its times
# found in it without decoding the rest: `last_active_ms`), so ticks are small and frequent
# rather than one long pause a second (docs/decisions.md, "Idle users expire ..."). A worker
# holding 1M users sweeps them all in 10,000 ticks (about 17 minutes), far within any
# sensible TTL.
SCAN_PER_TICK = 100
TICK_S = 0.1


class Items(Protocol):
    """A partition's store as RocksDB (rocksdict, raw mode) offers it."""

    def items(self, from_key: bytes | None = None) -> Iterable[tuple[bytes, bytes]]:
        """(key, value) pairs in key order, from ``from_key`` (inclusive) on."""


def scan(
    db: Items, after: bytes | None, limit: int, skip: Container[bytes] = ()
) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
    """Up to ``limit`` (key, value) pairs of ``db`` in key order, after the key ``after``
    (from the first when None), leaving out the keys in ``skip``; and the key the next scan
    goes on after (None: this one reached the end)."""
    found: list[tuple[bytes, bytes]] = []
    for key, value in db.items(from_key=after):
        if key == after or key in skip:
            continue
        found.append((key, value))
        if len(found) == limit:
            return found, key
    return found, None


def idle_users(
    stored: Iterable[tuple[bytes, bytes]],
    now_ms: int,
    ttl_ms: int,
    busy: Container[str],
    decode_key: Callable[[bytes], str] = json.loads,
) -> list[str]:
    """The users among ``stored`` (key, state as JSON) idle for more than ``ttl_ms`` at
    ``now_ms`` (`rtrank.streams.worker.state.is_expired`), leaving out those in ``busy``;
    ``decode_key`` turns a stored key into the user id (Faust stores it JSON-encoded)."""
    idle = []
    for key, value in stored:
        if is_expired(last_active_ms(value), now_ms, ttl_ms):
            user = decode_key(key)
            if user not in busy:
                idle.append(user)
    return idle


@dataclass
class Expiry:
    """Where the sweep of each partition this worker owns goes on (the key read last; None:
    from the first), for partitions assigned and not revoked since; ``per_tick`` states
    are read per tick, shared evenly by those partitions."""

    ttl_ms: int
    per_tick: int = SCAN_PER_TICK
    skip: frozenset[bytes] = frozenset()  # keys of the store that are no user (Faust's offset)
    decode_key: Callable[[bytes], str] = json.loads  # stored key -> user id
    cursors: dict[int, bytes | None] = field(default_factory=dict)

    def assigned(self, partitions: Iterable[int]) -> None:
        """The partitions owned now: a new one is swept from its first key, a kept one goes
        on where it stood, any other is forgotten."""
        owned = set(partitions)
        self.cursors = {p: self.cursors.get(p) for p in owned}

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget ``partitions``: nothing of them is swept until they are assigned again."""
        for partition in partitions:
            self.cursors.pop(partition, None)

    def sweep(self, partition: int, db: Items, now_ms: int, busy: Container[str]) -> list[str]:
        """The next states of ``partition`` (in ``db``), its share of ``per_tick``: the users
        among them to expire at ``now_ms``. Nothing for a partition not owned."""
        if partition not in self.cursors:
            return []
        share = max(1, self.per_tick // len(self.cursors))
        stored, self.cursors[partition] = scan(db, self.cursors[partition], share, self.skip)
        return idle_users(stored, now_ms, self.ttl_ms, busy, self.decode_key)


def register_expiry(
    app: faust.App, settings: Settings, table: faust.Table, flow: Any, metrics: Metrics
) -> Expiry | None:
    """Expire idle users of ``table`` (the user table, in RocksDB) on a timer; ``flow`` is
    the worker's `rtrank.streams.worker.dataflow.Dataflow` (its broker clock and unwritten
    states). Nothing when ``state_ttl_s`` is 0 or the store is not RocksDB."""
    if settings.state_ttl_s <= 0 or not settings.store.startswith("rocksdb:"):
        return None
    store = table.data
    expiry = Expiry(
        int(settings.state_ttl_s * 1000),
        skip=frozenset({store.offset_key}),
        decode_key=store._decode_key,  # as the table's store encodes its keys
    )
    events = settings.events_topic

    def of_events(tps: Iterable[Any]) -> list[int]:
        return [tp.partition for tp in tps if tp.topic == events]

    @app.on_partitions_revoked.connect
    async def stop_expiring(app: faust.App, revoked: set, **kwargs: Any) -> None:
        expiry.revoke(of_events(revoked))

    @app.on_partitions_assigned.connect
    async def start_expiring(app: faust.App, assigned: set, **kwargs: Any) -> None:
        expiry.assigned(of_events(assigned))

    @app.timer(TICK_S)
    async def expire_idle_users() -> None:
        """Never awaits: a revocation cannot land between a partition's check and its
        tombstones. Nothing while the group's lease on this worker has lapsed."""
        now = flow.broker_ms
        if not now or app.rebalancing or app.in_recovery or not app.group_lease.held():
            return
        expired = 0
        for partition in list(expiry.cursors):
            db = store._dbs.get(partition)  # Faust's open RocksDB of the partition, if any
            if db is None:
                continue
            users = expiry.sweep(partition, db, now, flow.unwritten)
            with as_current_event(_in_partition(events, partition)):
                for user in users:
                    del table[user]  # Faust deletes it and writes the tombstone
            expired += len(users)
        if expired:
            metrics.users_expired.inc(expired)
            log.debug("%d idle users expired", expired)

    return expiry


class _PartitionEvent(SimpleNamespace):
    """Enough of a Faust event for a table write to land in ``message.partition``."""


def _in_partition(topic: str, partition: int) -> _PartitionEvent:
    return _PartitionEvent(message=SimpleNamespace(topic=topic, partition=partition))
