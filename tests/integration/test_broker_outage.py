"""The broker unreachable for a while: workers and the trainer carry on by themselves
afterwards, losing nothing and applying nothing twice; a worker told to stop meanwhile
stops within its shutdown timeout.

These tests stop and restart a broker of their own (same port, same data dir), so the
session broker the other tests share is never stopped.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.deploy.kafka.processes import port_taken
from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.replay_checks import check_replay, lists_by_user, sent_events
from rtrank.streams.bench.worker_metrics import metric_value
from rtrank.streams.bench.worker_process import TrainerProcess, WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from rtrank.streams.worker.local_state import RUNNING_MARK
from tests.integration.conftest import SYNTHETIC_ITEMS, kill_and_show_log, wait_for

OUTAGE_S = 30.0  # the outage
USERS, EVENTS, RATE = 200, 2400, 200.0
SHUTDOWN_TIMEOUT_S = 10.0
EXIT_MARGIN_S = 20.0  # for a busy machine: the process is gone this long after its deadline


def listen_port() -> int:
    """A free port below Linux's ephemeral range: while the broker is down, no client's
    outgoing connection can take its port, so it restarts on the same one."""
    while True:
        port = random.randrange(20_000, 32_000)
        if not port_taken(port):
            return port


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_kafka.Broker]:
    broker = local_kafka.Broker(listen_port(), tmp_path_factory.mktemp("outage-kafka"))
    try:
        yield broker
    finally:
        local_kafka.down(broker)


@pytest.fixture
def broker(own_broker: local_kafka.Broker) -> local_kafka.Broker:
    """The module's broker, running (a test before may have left it stopped)."""
    local_kafka.up(own_broker)
    return own_broker


@pytest.fixture
def outage_settings(
    broker: local_kafka.Broker, synthetic_checkpoint: Path, tmp_path: Path
) -> Settings:
    return Settings(broker=f"kafka://{broker.bootstrap}").isolated(
        f"test-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "worker",
        web_port=local_kafka.free_port(),
        partitions=8,
        standby_replicas=1,
        session_timeout_s=10.0,
        batch_max_ms=20.0,
        checkpoint=str(synthetic_checkpoint),
        trainer_publish_s=1.0,
        trainer_metrics_port=local_kafka.free_port(),
        shutdown_timeout_s=SHUTDOWN_TIMEOUT_S,
    )


@pytest.fixture
def workers(outage_settings: Settings, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Two workers of one group, each with its own data dir and web port, not yet started;
    stopped at the end, the end of each log printed."""
    procs = [
        WorkerProcess(
            outage_settings.replace(data_dir=tmp_path / f"w{n}", web_port=local_kafka.free_port()),
            tmp_path / f"w{n}.log",
        )
        for n in range(2)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            kill_and_show_log(proc, lines=60)


@pytest.fixture
def trainer(outage_settings: Settings, tmp_path: Path) -> Iterator[TrainerProcess]:
    proc = TrainerProcess(
        outage_settings, tmp_path / "trainer.log", checkpoint=outage_settings.checkpoint
    )
    try:
        yield proc
    finally:
        if proc.running:
            proc.stop(signal.SIGKILL)
        if proc.log.exists():
            print("--- the last lines of the trainer's log ---")
            print("\n".join(proc.log.read_text(errors="replace").splitlines()[-40:]))


def start_side_by_side(*procs: WorkerProcess | TrainerProcess) -> None:
    """Start ``procs`` at once and return once each is ready."""
    threads = [threading.Thread(target=p.start, kwargs={"timeout_s": 180}) for p in procs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(p.running for p in procs), "a worker or the trainer did not start"


def published_version(settings: Settings) -> float:
    """The last version the trainer published, from its /metrics."""
    url = f"http://127.0.0.1:{settings.trainer_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return metric_value(response.read().decode(), "rtrank_trainer_published_version")


def kill_broker(broker: local_kafka.Broker) -> None:
    os.kill(local_kafka.running_pid(broker), signal.SIGKILL)
    wait_for(lambda: local_kafka.running_pid(broker) is None, timeout_s=30)


def test_after_a_30_s_broker_outage_mid_replay_nothing_is_lost_or_applied_twice(
    broker: local_kafka.Broker,
    outage_settings: Settings,
    workers: list[WorkerProcess],
    trainer: TrainerProcess,
) -> None:
    settings = outage_settings
    # The workers' and the trainer's producers retry what they could not deliver meanwhile.
    assert settings.producer_delivery_timeout_s > OUTAGE_S
    replay = synthetic_replay(users=USERS, items=SYNTHETIC_ITEMS, events=EVENTS, seed=30)
    start_side_by_side(*workers, trainer)
    half = EVENTS // 2
    send_events(settings, replay.events[:half], RATE, progress=False)
    published_before = published_version(settings)

    kill_broker(broker)
    threading.Event().wait(OUTAGE_S)  # the outage: nothing is sent meanwhile
    local_kafka.up(broker)
    restarted_ms = time.time() * 1000
    send_events(settings, replay.events[half:], RATE, progress=False)

    sent = sent_events(settings)
    assert sum(map(len, sent.values())) == EVENTS
    findings = check_replay(settings, sent)
    assert findings.ok, f"broken guarantees: {findings}"
    assert all(w.running and w.healthy() for w in workers), "a worker did not carry on"
    first_after = min(
        rec["emitted_at"]
        for recs in lists_by_user(settings).values()
        for rec in recs
        if rec["emitted_at"] > restarted_ms
    )
    print(f"first list {(first_after - restarted_ms) / 1000:.1f} s after the broker restarted")
    wait_for(
        lambda: (
            published_version(settings) > published_before
            and all(w.health()["model_version"] > published_before for w in workers)
        ),
        timeout_s=90,
        message=f"no version after {published_before:.0f} published and served after the outage",
    )
    assert trainer.running


def test_a_worker_whose_broker_is_gone_stops_within_its_shutdown_timeout(
    broker: local_kafka.Broker, outage_settings: Settings, workers: list[WorkerProcess]
) -> None:
    """Its stop cannot finish (its lists cannot be delivered, its consumer cannot leave the
    group): the deadline ends it with exit 1, and its local tables stay marked as not
    stopped cleanly, so its next start recovers them from their changelogs."""
    worker = workers[0]
    worker.settings = outage_settings.replace(standby_replicas=0)
    worker.start()
    replay = synthetic_replay(users=USERS, items=SYNTHETIC_ITEMS, events=EVENTS, seed=31)
    send_events(worker.settings, replay.events, progress=False)
    wait_for(
        lambda: metric_value(worker.metrics(), "rtrank_answer_seconds_count") > 0,
        message="the worker answered nothing",
    )

    kill_broker(broker)
    code = exit_code_after_sigterm(worker.process)
    assert code == 1
    assert "did not stop within 10 s (RTRANK_SHUTDOWN_TIMEOUT_S)" in worker.log.read_text()
    assert list(worker.settings.data_dir.rglob(RUNNING_MARK))


def test_a_trainer_whose_broker_is_gone_stops_within_its_shutdown_timeout(
    broker: local_kafka.Broker, outage_settings: Settings, trainer: TrainerProcess
) -> None:
    """Its clients may wait on the broker as it stops: it ends by its deadline all the same,
    on its own (exit 0) or cut short by the deadline (exit 1, with the deadline's line)."""
    trainer.start()
    kill_broker(broker)
    code = exit_code_after_sigterm(trainer.process)
    deadline_line = "the trainer did not stop within 10 s (RTRANK_SHUTDOWN_TIMEOUT_S)"
    assert code == 0 or (code == 1 and deadline_line in trainer.log.read_text())


def exit_code_after_sigterm(process: subprocess.Popen) -> int:
    """SIGTERM ``process`` and return its exit code; the test fails when it is still
    running ``SHUTDOWN_TIMEOUT_S`` (and a margin) later."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(SHUTDOWN_TIMEOUT_S + EXIT_MARGIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {SHUTDOWN_TIMEOUT_S + EXIT_MARGIN_S:.0f} s after SIGTERM")
