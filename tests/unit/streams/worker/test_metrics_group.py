"""The consumer group's metrics: rebalances, takeover seconds, lag per partition."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from kafka import TopicPartition
from kafka.admin import OffsetSpec

from rtrank.streams.settings import Settings
from rtrank.streams.worker.app import RtrankApp
from rtrank.streams.worker.group_metrics import (
    GroupLag,
    Takeovers,
    partition_lags,
    refresh_lags,
    register_group_metrics,
    set_lags,
)
from rtrank.streams.worker.metrics import Metrics


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_lag_is_the_end_offset_minus_the_committed_offset_per_partition() -> None:
    assert partition_lags({0: 10, 1: 7}, {0: 4, 1: 7}, {}) == {0: 6, 1: 0}


def test_a_partition_never_committed_lags_from_its_first_kept_offset() -> None:
    assert partition_lags({0: 10, 1: 10}, {0: 9}, {1: 3}) == {0: 1, 1: 7}


def test_lag_is_never_negative() -> None:
    assert partition_lags({0: 5}, {0: 6}, {}) == {0: 0}


def test_every_assignment_counts_a_rebalance(clock) -> None:
    metrics = Metrics()
    takeovers = Takeovers(metrics, clock)
    takeovers.assigned()
    takeovers.recovered()
    takeovers.assigned()
    assert value(metrics, "rtrank_rebalances_total") == 2


def test_a_takeover_runs_from_the_revocation_to_the_rebalance_completing(clock) -> None:
    metrics = Metrics()
    takeovers = Takeovers(metrics, clock)
    takeovers.revoked()
    clock.now += 1.0
    takeovers.assigned()
    clock.now += 4.0
    takeovers.recovered()
    assert value(metrics, "rtrank_takeover_seconds_count") == 1
    assert value(metrics, "rtrank_takeover_seconds_sum") == 5.0


def test_without_a_revocation_a_takeover_runs_from_the_assignment(clock) -> None:
    metrics = Metrics()
    takeovers = Takeovers(metrics, clock)
    takeovers.assigned()
    clock.now += 4.0
    takeovers.recovered()
    assert value(metrics, "rtrank_takeover_seconds_sum") == 4.0


def test_a_rebalance_interrupted_by_another_is_timed_from_its_first_start(clock) -> None:
    metrics = Metrics()
    takeovers = Takeovers(metrics, clock)
    takeovers.assigned()
    clock.now += 3.0
    takeovers.assigned()
    clock.now += 2.0
    takeovers.recovered()
    assert value(metrics, "rtrank_takeover_seconds_count") == 1
    assert value(metrics, "rtrank_takeover_seconds_sum") == 5.0


def test_a_completion_without_a_pending_assignment_times_nothing(clock) -> None:
    metrics = Metrics()
    takeovers = Takeovers(metrics, clock)
    takeovers.assigned()
    takeovers.recovered()
    takeovers.recovered()
    assert value(metrics, "rtrank_takeover_seconds_count") == 1


def test_the_app_s_rebalance_signals_reach_the_metrics(tmp_path, clock) -> None:
    settings = Settings(broker="memory://", store="memory://", data_dir=tmp_path)
    app, metrics = RtrankApp(settings), Metrics()
    takeovers = register_group_metrics(app, settings, metrics)
    takeovers.clock = clock

    async def rebalance() -> None:
        await app.on_partitions_revoked.send(set())
        clock.now += 0.5
        await app.on_partitions_assigned.send({TopicPartition("events", 0)})
        clock.now += 1.5
        await app.on_rebalance_complete.send()

    asyncio.run(rebalance())
    assert value(metrics, "rtrank_rebalances_total") == 1
    assert value(metrics, "rtrank_takeover_seconds_sum") == 2.0


def offset(o: int) -> SimpleNamespace:
    return SimpleNamespace(offset=o)


class Admin:
    """A broker holding ``ends`` / ``starts`` per partition of one topic and the group's
    ``committed`` offsets (-1: never committed); ``fail`` makes the next call raise."""

    def __init__(self, topic: str, ends: dict, starts: dict, committed: dict) -> None:
        self.topic, self.ends, self.starts, self.committed = topic, ends, starts, committed
        self.fail = False
        self.closed = False

    def describe_topics(self, topics: list[str]) -> list[dict]:
        if self.fail:
            raise ConnectionError("broker gone")
        return [{"partitions": [{"partition_index": p} for p in self.ends]}]

    def list_partition_offsets(self, specs: dict) -> dict:
        return {
            tp: offset((self.ends if spec == OffsetSpec.LATEST else self.starts)[tp.partition])
            for tp, spec in specs.items()
        }

    def list_group_offsets(self, group_specs: dict) -> dict:
        return {
            group: {tp: offset(self.committed.get(tp.partition, -1)) for tp in tps}
            for group, tps in group_specs.items()
        }

    def close(self) -> None:
        self.closed = True


def test_group_lag_reads_ends_and_committed_offsets_from_the_broker() -> None:
    admin = Admin("events", ends={0: 10, 1: 8, 2: 5}, starts={2: 1}, committed={0: 7, 1: 8})
    lag = GroupLag("rtrank", "events", lambda: admin)
    assert lag.read() == {0: 3, 1: 0, 2: 4}


def test_group_lag_connects_again_after_a_failed_reading() -> None:
    admins = [Admin("events", {0: 3}, {}, {0: 1}), Admin("events", {0: 5}, {}, {0: 1})]
    connects = iter(admins)
    lag = GroupLag("rtrank", "events", lambda: next(connects))
    admins[0].fail = True
    with pytest.raises(ConnectionError):
        lag.read()
    assert admins[0].closed
    assert lag.read() == {0: 4}


def test_each_reading_replaces_every_partition_s_lag() -> None:
    metrics = Metrics()
    set_lags(metrics, {0: 5, 1: 2})
    set_lags(metrics, {1: 3})
    assert value(metrics, "rtrank_consumer_lag", partition="0") is None
    assert value(metrics, "rtrank_consumer_lag", partition="1") == 3


def test_a_failed_reading_leaves_no_stale_lag() -> None:
    metrics = Metrics()
    set_lags(metrics, {0: 5})
    admin = Admin("events", {0: 9}, {}, {})
    admin.fail = True
    asyncio.run(refresh_lags(GroupLag("rtrank", "events", lambda: admin), metrics))
    assert value(metrics, "rtrank_consumer_lag", partition="0") is None


def test_a_reading_sets_the_lag_of_every_partition() -> None:
    metrics = Metrics()
    admin = Admin("events", {0: 9, 1: 4}, {}, {0: 9, 1: 1})
    asyncio.run(refresh_lags(GroupLag("rtrank", "events", lambda: admin), metrics))
    assert value(metrics, "rtrank_consumer_lag", partition="0") == 0
    assert value(metrics, "rtrank_consumer_lag", partition="1") == 3
