"""rtrank on a local three-node KRaft cluster: topics replicated three times with two in
sync, and a worker that loses nothing while one broker of three is killed and restarted."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.worker_metrics import metric_value
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import (
    changelog,
    ensure_topics,
    topic_names,
    topic_specs,
)
from tests.integration.conftest import kill_and_show_log, latest_by_key, read_topic, wait_for


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_kafka.Cluster]:
    cluster = local_kafka.new_cluster(tmp_path_factory.mktemp("kafka-cluster"), 3)
    local_kafka.up(cluster, wait_s=120)
    try:
        yield cluster
    finally:
        # Stopped all at once, the last nodes wait for a controller quorum that is gone;
        # the cluster's data is thrown away, so there is nothing to wait for.
        local_kafka.down(cluster, wait_s=3)


@pytest.fixture
def cluster_settings(kafka_cluster: local_kafka.Cluster, tmp_path: Path) -> Settings:
    """An isolated pipeline on the cluster, every topic replicated 3 times, 2 in sync."""
    broker = ";".join(f"kafka://{node.bootstrap}" for node in kafka_cluster.nodes)
    return Settings(broker=broker).isolated(
        f"test-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "worker",
        web_port=local_kafka.free_port(),
        partitions=4,
        replication_factor=3,
        min_insync_replicas=2,
        standby_replicas=0,
        session_timeout_s=10.0,
        batch_max_ms=20.0,
    )


@pytest.fixture
def cluster_worker(cluster_settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker on the cluster, not yet started; the end of its log printed at teardown."""
    proc = WorkerProcess(cluster_settings, tmp_path / "worker.log")
    try:
        yield proc
    finally:
        kill_and_show_log(proc)


def test_kafka_status_finds_the_cluster_in_its_data_dir_and_every_node_serving(
    kafka_cluster,
) -> None:
    data_dir = kafka_cluster.nodes[0].data_dir.parent
    done = subprocess.run(
        [sys.executable, "-m", "rtrank.streams", "kafka", "status", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 of 3 nodes running" in done.stdout
    assert done.stdout.count(": serving;") == 3


def _admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)


def test_every_topic_is_created_with_three_replicas_and_two_in_sync(cluster_settings) -> None:
    ensure_topics(cluster_settings)
    names = topic_names(cluster_settings)
    # `ensure_topics` returns once the broker it asked lists the new topics; another broker
    # of the cluster learns of them from the controller a moment later, and until then
    # answers for each with no partitions and no configs. The layout asserted is the first
    # read in which the brokers asked knew every topic.
    layout: tuple[dict[str, set[int]], dict[str, str | None]] = ({}, {})

    def every_topic_known() -> bool:
        nonlocal layout
        layout = _layout(cluster_settings, names)
        replicas, min_isr = layout
        return all(replicas.get(name) and min_isr[name] for name in names)

    wait_for(every_topic_known, timeout_s=30, interval_s=0.2, message="topics not listed")
    replicas, min_isr = layout
    assert replicas == {name: {3} for name in names}
    assert min_isr == {name: "2" for name in names}


def _layout(
    settings: Settings, names: list[str]
) -> tuple[dict[str, set[int]], dict[str, str | None]]:
    """Per topic, its partitions' replica counts and its ``min.insync.replicas`` (None when
    the broker asked has no configs for it)."""
    admin = _admin(settings)
    try:
        described = admin.describe_topics(names)
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        ).get("topic", {})
    finally:
        admin.close()
    replicas = {d["name"]: {len(p["replica_nodes"]) for p in d["partitions"]} for d in described}
    min_isr = {
        name: configs.get(name, {}).get("min.insync.replicas", {}).get("value") for name in names
    }
    return replicas, min_isr


def test_topics_are_created_right_after_a_broker_died(kafka_cluster, cluster_settings) -> None:
    """The dead broker is still listed as alive for seconds; creating must not fail there."""
    victim = kafka_cluster.nodes[0]
    os.kill(local_kafka.running_pid(victim), signal.SIGKILL)
    try:
        counts = ensure_topics(cluster_settings)
    finally:
        local_kafka.up(kafka_cluster, wait_s=120)
    assert counts == {spec.name: spec.partitions for spec in topic_specs(cluster_settings)}


def _leader_of_partition_0(settings: Settings, cluster: local_kafka.Cluster) -> local_kafka.Broker:
    admin = _admin(settings)
    try:
        [described] = admin.describe_topics([settings.events_topic])
    finally:
        admin.close()
    leader = next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == 0)
    return next(node for node in cluster.nodes if node.node_id == leader)


def _answered(worker: WorkerProcess) -> float:
    return metric_value(worker.metrics(), "rtrank_answer_seconds_count")


def _every_partition_fully_in_sync(settings: Settings) -> bool:
    admin = _admin(settings)
    try:
        described = admin.describe_topics(topic_names(settings))
    finally:
        admin.close()
    return all(len(p["isr_nodes"]) == 3 for d in described for p in d["partitions"])


def test_a_broker_killed_mid_replay_and_restarted_loses_nothing(
    kafka_cluster, cluster_settings, cluster_worker
) -> None:
    settings = cluster_settings
    cluster_worker.start()
    replay = synthetic_replay(users=300, items=500, events=4000, seed=12)
    producer = threading.Thread(target=send_events, args=(settings, replay.events, 150.0, False))
    producer.start()
    try:
        wait_for(
            lambda: _answered(cluster_worker) >= 500,
            timeout_s=120,
            message="the worker answered too little of the replay to kill a broker mid-replay",
        )
        victim = _leader_of_partition_0(settings, kafka_cluster)
        answered_at_kill = _answered(cluster_worker)
        os.kill(local_kafka.running_pid(victim), signal.SIGKILL)
        wait_for(
            lambda: _answered(cluster_worker) >= answered_at_kill + 500,
            timeout_s=120,
            message="the worker stopped answering with one broker of three dead",
        )
        running, described = local_kafka.status(kafka_cluster)
        assert not running
        assert f"node {victim.node_id} on {victim.bootstrap}: not running" in described
        local_kafka.up(kafka_cluster, wait_s=120)
    finally:
        producer.join()

    events = read_topic(settings.bootstrap_servers, settings.events_topic, expected=4000)
    assert len(events) == 4000
    last_offset = {}
    for record in sorted(events, key=lambda r: (r.partition, r.offset)):
        last_offset[record.key.decode()] = (record.partition, record.offset)

    def every_last_event_answered() -> bool:
        lists = read_topic(settings.bootstrap_servers, settings.recommendations_topic)
        latest = latest_by_key(lists)
        return len(latest) == len(last_offset) and all(
            (rec["based_on"]["partition"], rec["based_on"]["offset"]) == last_offset[user]
            for user, rec in latest.items()
        )

    wait_for(
        every_last_event_answered,
        timeout_s=120,
        interval_s=3,
        message="not every user's last event was answered after the broker's kill and restart",
    )

    expected: dict[str, list[str]] = {}
    for e in replay.events:
        expected.setdefault(e["user_id"], []).append(e["item_id"])
    user_changelog = changelog(settings, "user_to_history")
    with contextlib.suppress(AssertionError):  # the checks below say what is wrong
        wait_for(
            lambda: (
                {
                    user: s["events"]
                    for user, s in latest_by_key(
                        read_topic(settings.bootstrap_servers, user_changelog), json_keys=True
                    ).items()
                }
                == {user: len(items) for user, items in expected.items()}
            ),
            timeout_s=60,
            interval_s=3,
        )
    state = latest_by_key(read_topic(settings.bootstrap_servers, user_changelog), json_keys=True)
    assert sorted(state) == sorted(expected)
    miscounted = {
        user: (state[user]["events"], len(items))
        for user, items in expected.items()
        if state[user]["events"] != len(items)
    }
    assert not miscounted, f"(events applied, events sent) per user: {miscounted}"
    for user, items in expected.items():
        assert state[user]["history"] == items[-settings.history_len :], user

    wait_for(
        lambda: _every_partition_fully_in_sync(settings),
        timeout_s=90,
        message="the restarted broker did not rejoin every partition's in-sync replicas",
    )
    assert cluster_worker.running
