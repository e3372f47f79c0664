"""The local broker is real Kafka: keyed delivery, wire compatibility, and the launcher CLI."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.streams.worker.topics_and_tables import TopicLayoutError, ensure_topics


def _create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def test_keyed_messages_arrive_once_each_in_per_key_order(kafka_broker) -> None:
    topic, keys, total = "roundtrip-10k", 100, 10_000
    _create(kafka_broker.bootstrap, topic, partitions=8)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    for n in range(total):
        producer.send(topic, key=f"k{n % keys}".encode(), value=f"{n}".encode())
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_broker.bootstrap,
        group_id="roundtrip-readers",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        consumer_timeout_ms=15_000,
    )
    seen: dict[str, list[int]] = defaultdict(list)
    partitions_used = set()
    received = 0
    for message in consumer:
        seen[message.key.decode()].append(int(message.value))
        partitions_used.add(message.partition)
        received += 1
        if received == total:
            break
    consumer.close()

    assert received == total
    assert sorted(n for values in seen.values() for n in values) == list(range(total))
    assert all(values == sorted(values) for values in seen.values())
    assert partitions_used == set(range(8))


def test_librdkafka_client_reads_what_kafka_python_wrote(kafka_broker) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient

    topic = "wire-compat"
    _create(kafka_broker.bootstrap, topic, partitions=3)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    sent = {f"{n}".encode() for n in range(50)}
    for value in sent:
        producer.send(topic, key=b"key-" + value, value=value)
    producer.flush()
    producer.close()

    metadata = AdminClient({"bootstrap.servers": kafka_broker.bootstrap}).list_topics(timeout=10)
    assert len(metadata.topics[topic].partitions) == 3

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap,
            "group.id": "librdkafka-readers",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    received = set()
    for _ in range(200):
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            received.add(message.value())
            assert message.key() == b"key-" + message.value()
        if received == sent:
            break
    consumer.close()
    assert received == sent


def test_more_replicas_than_brokers_is_refused_in_one_line(settings) -> None:
    three = settings.replace(replication_factor=3, min_insync_replicas=2)
    with pytest.raises(TopicLayoutError) as refused:
        ensure_topics(three)
    assert str(refused.value) == (
        f"RTRANK_REPLICATION_FACTOR=3 but the cluster at {settings.bootstrap_servers} "
        "has 1 broker(s) registered"
    )


def _rtrank(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rtrank.streams", *args], capture_output=True, text=True, timeout=180
    )


def test_kafka_commands_up_twice_status_down_twice(tmp_path: Path) -> None:
    port = str(local_kafka.free_port())
    where = ["--port", port, "--data-dir", str(tmp_path / "kafka")]
    try:
        first = _rtrank("kafka", "up", *where)
        assert first.returncode == 0, first.stderr
        assert "is up" in first.stdout

        second = _rtrank("kafka", "up", *where)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout

        running = _rtrank("kafka", "status", *where)
        assert running.returncode == 0
        assert "answering" in running.stdout
    finally:
        stopped = _rtrank("kafka", "down", *where)
    assert stopped.returncode == 0
    assert "stopped" in stopped.stdout

    again = _rtrank("kafka", "down", *where)
    assert again.returncode == 0
    assert "not running" in again.stdout

    after = _rtrank("kafka", "status", *where)
    assert after.returncode == 1
    assert "not running" in after.stdout


def test_kafka_up_on_a_taken_port_says_so(tmp_path: Path, kafka_broker) -> None:
    taken = _rtrank("kafka", "up", "--port", str(kafka_broker.port), "--data-dir", str(tmp_path))
    assert taken.returncode != 0
    assert f"port {kafka_broker.port} is already in use" in taken.stderr


def test_kafka_up_without_java_says_what_is_missing(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path / "empty-bin"), "HOME": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtrank.streams",
            "kafka",
            "up",
            "--port",
            str(local_kafka.free_port()),
            "--data-dir",
            str(tmp_path / "kafka"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode != 0
    assert "java not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_broker_that_fails_to_start_points_to_its_log(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    (data_dir / "kraft").mkdir(parents=True)
    (data_dir / "kraft" / "meta.properties").write_text("this is not a KRaft meta file\n")
    failed = _rtrank(
        "kafka", "up", "--port", str(local_kafka.free_port()), "--data-dir", str(data_dir)
    )
    assert failed.returncode != 0
    assert str(data_dir / "broker.log") in failed.stderr
