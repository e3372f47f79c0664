"""The consumer group as an operator sees it, in the worker's metrics: rebalances, how long
a takeover kept partitions unserved, and how far each partition of ``events`` is from
answered.

- ``rtrank_rebalances_total``: partition assignments this worker received (Faust's
  ``on_partitions_assigned`` signal; one per rebalance of the group).
- ``rtrank_takeover_seconds``: from the start of a rebalance (Faust's
  ``on_partitions_revoked``, sent once this worker has drained what it was processing; or
  the assignment, when no revocation came first) to ``on_rebalance_complete`` (stores opened,
  tables recovered, streams about to resume): the pause in this worker's answers, less the
  time the group took to notice a departure (up to the session timeout). A rebalance that a
  newer one interrupts keeps its start: the histogram counts the whole pause.
- ``rtrank_consumer_lag{partition}``: the group's lag as the broker holds it, i.e. the end
  offset minus the committed offset, read every `LAG_EVERY_S` with an admin client. Events
  are committed only once answered, so this counts the events still waiting for their list
  (plus at most a commit interval's worth). The broker's view rather than this worker's: a
  partition whose owner just died shows its growing lag too, and every worker reports every
  partition alike (a dashboard takes the max per partition).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import faust
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec

from rtrank.streams.kafka_security import client_config
from rtrank.streams.settings import Settings
from rtrank.streams.worker.metrics import Metrics

log = logging.getLogger(__name__)

LAG_EVERY_S = 10.0  # under Prometheus's usual 15 s scrape: every scrape sees a fresh reading
LAG_TIMEOUT_S = 5.0  # a reading against an unreachable broker gives up after this


@dataclass
class Takeovers:
    """Counts assignments and times each rebalance from its start (revocation, else
    assignment) to the worker serving again."""

    metrics: Metrics
    clock: Callable[[], float] = time.monotonic
    pending_since: float | None = None

    def revoked(self) -> None:
        self._start()

    def assigned(self) -> None:
        self.metrics.rebalances.inc()
        self._start()

    def recovered(self) -> None:
        if self.pending_since is not None:
            self.metrics.takeover_seconds.observe(self.clock() - self.pending_since)
            self.pending_since = None

    def _start(self) -> None:
        if self.pending_since is None:
            self.pending_since = self.clock()


def partition_lags(
    ends: Mapping[int, int], committed: Mapping[int, int], starts: Mapping[int, int]
) -> dict[int, int]:
    """Events after the committed offset, per partition (``ends``: the offset the next event
    will get). A partition the group never committed is read from its first offset still
    kept (``starts``), as the worker does (``auto.offset.reset=earliest``)."""
    return {p: max(0, end - committed.get(p, starts.get(p, 0))) for p, end in ends.items()}


class Admin(Protocol):
    def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]: ...

    def list_partition_offsets(self, specs: dict[TopicPartition, OffsetSpec]) -> dict: ...

    def list_group_offsets(self, group_specs: dict[str, list[TopicPartition]]) -> dict: ...


@dataclass
class GroupLag:
    """Reads the group's lag on one topic from the broker (blocking: run it in a thread).

    The admin client is made on first use and kept; after a failed reading it is closed and
    made again on the next one.
    """

    group: str
    topic: str
    connect: Callable[[], Admin]
    admin: Admin | None = field(default=None, repr=False)

    def read(self) -> dict[int, int]:
        """Partition -> events after the group's committed offset."""
        if self.admin is None:
            self.admin = self.connect()
        try:
            return self._read(self.admin)
        except Exception:
            self.close()
            raise

    def _read(self, admin: Admin) -> dict[int, int]:
        (described,) = admin.describe_topics([self.topic])
        tps = [TopicPartition(self.topic, p["partition_index"]) for p in described["partitions"]]
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        offsets = admin.list_group_offsets({self.group: tps}).get(self.group, {})
        committed = {tp.partition: o.offset for tp, o in offsets.items() if o.offset >= 0}
        never = [tp for tp in tps if tp.partition not in committed]
        starts = (
            admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in never}) if never else {}
        )
        return partition_lags(
            {tp.partition: o.offset for tp, o in ends.items()},
            committed,
            {tp.partition: o.offset for tp, o in starts.items()},
        )

    def close(self) -> None:
        if self.admin is not None:
            admin, self.admin = self.admin, None
            admin.close()


def set_lags(metrics: Metrics, lags: Mapping[int, int] | None) -> None:
    """Replace every partition's lag; None (a failed reading) leaves no value rather than
    a stale one."""
    metrics.consumer_lag.clear()
    for partition, lag in sorted((lags or {}).items()):
        metrics.consumer_lag.labels(partition=str(partition)).set(lag)


def admin_for(settings: Settings) -> Callable[[], KafkaAdminClient]:
    def connect() -> KafkaAdminClient:
        return KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.app_id}-lag",
            request_timeout_ms=int(LAG_TIMEOUT_S * 1000),
            bootstrap_timeout_ms=int(LAG_TIMEOUT_S * 1000),
            **client_config(settings),
        )

    return connect


def register_group_metrics(app: faust.App, settings: Settings, metrics: Metrics) -> Takeovers:
    """Keep the rebalance, takeover and lag metrics of ``app``'s group up to date."""
    takeovers = Takeovers(metrics)

    @app.on_partitions_revoked.connect
    def on_revoked(sender: faust.App, revoked: set, **kwargs: Any) -> None:
        takeovers.revoked()

    @app.on_partitions_assigned.connect
    def on_assigned(sender: faust.App, assigned: set, **kwargs: Any) -> None:
        takeovers.assigned()

    @app.on_rebalance_complete.connect
    def on_rebalance_complete(sender: faust.App, **kwargs: Any) -> None:
        takeovers.recovered()

    if settings.broker.startswith("memory://"):
        return takeovers
    lag = GroupLag(settings.app_id, settings.events_topic, admin_for(settings))

    @app.timer(LAG_EVERY_S)
    async def read_consumer_lag() -> None:
        await refresh_lags(lag, metrics)

    return takeovers


async def refresh_lags(lag: GroupLag, metrics: Metrics) -> None:
    """One reading, in a thread so the event loop never waits on the broker."""
    try:
        lags = await asyncio.to_thread(lag.read)
    except Exception as e:  # the broker away or slow: no reading this time, retried later
        log.warning("consumer lag not read: %s", e)
        lags = None
    set_lags(metrics, lags)
