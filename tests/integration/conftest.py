"""A real Apache Kafka broker for the integration tests, and real rtrank worker processes.

The broker starts once per session on a free port (``deploy/kafka``) and is always stopped,
also when tests fail. Each test gets its own topic names and consumer group, so tests share
the broker without seeing each other's data.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.topic_reader import end_offsets
from rtrank.streams.bench.worker_metrics import metric_value
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_kafka.Broker]:
    broker = local_kafka.Broker(local_kafka.free_port(), tmp_path_factory.mktemp("kafka"))
    local_kafka.up(broker)
    try:
        yield broker
    finally:
        local_kafka.down(broker)


@pytest.fixture
def settings(kafka_broker: local_kafka.Broker, tmp_path: Path) -> Settings:
    """Settings of a fresh, isolated pipeline on the session broker."""
    return isolated_settings(kafka_broker, tmp_path)


def isolated_settings(kafka_broker: local_kafka.Broker, tmp_path: Path) -> Settings:
    """Settings of a fresh, isolated pipeline on ``kafka_broker``, its state under
    ``tmp_path`` (for fixtures of a wider scope than ``settings``)."""
    tag = uuid.uuid4().hex[:8]
    return Settings(broker=f"kafka://{kafka_broker.bootstrap}").isolated(
        f"test-{tag}",
        data_dir=tmp_path / "worker",
        web_port=local_kafka.free_port(),
        partitions=8,
        standby_replicas=0,
        session_timeout_s=10.0,
        batch_max_ms=20.0,
    )


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker for ``settings``, not yet started; always stopped at the end.

    The end of its log is printed at teardown: pytest shows it when the test failed.
    """
    proc = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        yield proc
    finally:
        kill_and_show_log(proc)


@contextmanager
def two_workers_started(
    settings: Settings, checkpoint: Path, tmp_path: Path, **overrides: Any
) -> Iterator[list[WorkerProcess]]:
    """Two workers of one group serving ``checkpoint`` (standby replicas 1, and
    ``overrides`` of ``settings``), each with its own data dir and web port, started at
    once; killed at the end (SIGKILL ends a stopped one too), the end of each log printed."""
    base = settings.replace(checkpoint=str(checkpoint), standby_replicas=1, **overrides)
    procs = [
        WorkerProcess(
            base.replace(data_dir=tmp_path / f"w{n}", web_port=local_kafka.free_port()),
            tmp_path / f"w{n}.log",
        )
        for n in range(2)
    ]
    starting = [threading.Thread(target=p.start, kwargs={"timeout_s": 180}) for p in procs]
    try:
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        assert all(proc.healthy() for proc in procs), "a worker did not start"
        yield procs
    finally:
        for proc in procs:
            kill_and_show_log(proc, lines=80)


def kill_and_show_log(proc: WorkerProcess, lines: int = 150) -> None:
    """SIGKILL ``proc`` if it still runs and print the end of its log (pytest shows it when
    the test failed)."""
    if proc.running:
        proc.stop(signal.SIGKILL)
    if proc.log.exists():
        print(f"--- the last lines of {proc.log} ---")
        print("\n".join(proc.log.read_text(errors="replace").splitlines()[-lines:]))


def read_topic(
    bootstrap: str, topic: str, expected: int | None = None, timeout_s: float = 60.0
) -> list:
    """Every record of ``topic`` from the beginning; waits until ``expected`` arrived.

    Stops when ``expected`` records were read or, without ``expected``, when the topic's
    end offsets are reached.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=5000)
            for messages in batch.values():
                records.extend(messages)
            if expected is not None:
                if len(records) >= expected:
                    break
            elif not batch:
                ends = consumer.end_offsets(tps)
                if all(consumer.position(tp) >= ends[tp] for tp in tps):
                    break
        return records
    finally:
        consumer.close()


def wait_delivered(settings: Settings, worker: WorkerProcess, timeout_s: float = 60.0) -> None:
    """Wait until the records of the events ``worker`` answered are on the broker.

    ``WorkerProcess.drain`` counts events the worker has acked, but the worker's producer
    delivers their training examples and lists after that, in the background: a topic read
    right after ``drain`` can miss some. Returns once the training topic holds one example
    per event, partition by partition (every event valid and applied), and the
    recommendations topic every list the worker counted as emitted.
    """

    def delivered() -> bool:
        emitted = metric_value(worker.metrics(), "rtrank_recommendations_total")
        lists = sum(end_offsets(settings, settings.recommendations_topic).values())
        examples = end_offsets(settings, settings.training_topic)
        return lists == emitted and examples == end_offsets(settings, settings.events_topic)

    wait_for(delivered, timeout_s, message="the worker's examples and lists were not delivered")


def latest_by_key(records: list, json_keys: bool = False) -> dict[str, dict]:
    """Last JSON value per key, in offset order within each partition.

    ``json_keys``: keys are JSON strings (Faust table changelogs), not raw UTF-8.
    """
    latest: dict[str, dict] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.value is not None:
            key = json.loads(record.key) if json_keys else record.key.decode()
            latest[key] = json.loads(record.value)
    return latest


def wait_for(
    condition, timeout_s: float = 60.0, interval_s: float = 0.5, message: str = ""
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(message or f"condition not met within {timeout_s}s")


def committed_offsets(settings: Settings) -> dict[int, int]:
    """Partition of the events topic -> the group's committed offset (its next event)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        offsets = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
    finally:
        admin.close()
    return {
        tp.partition: o.offset
        for tp, o in offsets.items()
        if tp.topic == settings.events_topic and o.offset >= 0
    }


def serve_half_a_replay(settings: Settings, worker: WorkerProcess) -> list[dict]:
    """Start ``worker`` (with ``settings``), send the first half of a 600-event synthetic
    replay of 100 users and wait until the group committed every one of its events; the
    second half, not sent, is returned."""
    worker.settings = settings
    worker.start()
    replay = synthetic_replay(users=100, items=SYNTHETIC_ITEMS, events=600, seed=9)
    before, after = replay.events[:300], replay.events[300:]
    send_events(settings, before, progress=False)
    wait_for(
        lambda: committed_offsets(settings) == end_offsets(settings, settings.events_topic),
        60,
        message="the first half's events were not all committed",
    )
    return after


SYNTHETIC_ITEMS = 500


@pytest.fixture(scope="session")
def synthetic_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model briefly trained on the synthetic catalogue (real training, a few seconds)."""
    from rtrank.model import synthetic
    from rtrank.model.sasrec import SASRecConfig
    from rtrank.model.train import TrainConfig, make_dataset, train

    data = synthetic.generate(
        num_users=1000, num_items=SYNTHETIC_ITEMS, min_len=5, max_len=20, seed=11
    )
    dataset = make_dataset({u: [i for i, _ in evs] for u, evs in data.items()}, name="synthetic")
    path = tmp_path_factory.mktemp("model") / "synthetic.safetensors"
    config = SASRecConfig(num_items=len(dataset.vocab), max_len=20, dim=32, dropout=0.1)
    train(dataset, config, TrainConfig(epochs=3, max_minutes=1.0, device="cpu"), out=str(path))
    return path


def child_pids(pid: int) -> set[int]:
    tasks = Path(f"/proc/{pid}/task")
    return {int(c) for task in tasks.iterdir() for c in (task / "children").read_text().split()}


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an exited child not yet reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")
