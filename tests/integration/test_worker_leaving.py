"""A worker told to stop (SIGTERM) in the middle of a keyed replay against a real broker: it
leaves the group while events are still coming, and its partitions go to the other worker.
Nothing it answered is lost, and nothing it held is written after it left: every guarantee of
the replay holds."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.replay_checks import check_replay, sent_events
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from tests.integration.conftest import SYNTHETIC_ITEMS, kill_and_show_log

USERS, EVENTS, RATE = 300, 6000, 500.0


@pytest.fixture
def workers(
    settings: Settings, synthetic_checkpoint: Path, tmp_path: Path
) -> Iterator[list[WorkerProcess]]:
    """Two workers of one group (standby replicas 1), started at once; stopped at the end,
    their logs printed."""
    base = settings.replace(checkpoint=str(synthetic_checkpoint), standby_replicas=1)
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
            kill_and_show_log(proc, lines=60)


def test_a_worker_leaving_mid_replay_loses_and_overwrites_nothing(
    workers: list[WorkerProcess],
) -> None:
    leaving, _ = workers
    settings = leaving.settings
    replay = synthetic_replay(users=USERS, items=SYNTHETIC_ITEMS, events=EVENTS, seed=31)
    first, rest = replay.events[: EVENTS // 3], replay.events[EVENTS // 3 :]
    send_events(settings, first, RATE, progress=False)
    assert leaving.health()["events_partitions"], "the worker to stop serves no partition"

    sender = threading.Thread(target=send_events, args=(settings, rest, RATE, False))
    sender.start()
    try:
        assert leaving.stop(signal.SIGTERM) is not None, "the worker did not stop"
    finally:
        sender.join()

    sent = sent_events(settings)
    assert sum(map(len, sent.values())) == EVENTS
    findings = check_replay(settings, sent)
    assert findings.ok, f"broken guarantees: {findings.counts()}: {findings}"
