"""Takeover after SIGKILL against a real broker: workers of one group killed, restarted,
joining and leaving during a keyed replay lose no answer and no state update.

The test prints each kill's takeover pause: the longest a killed worker's events
partitions went without a list after the kill.

"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.replay_checks import (
    check_replay,
    lists_by_user,
    sent_events,
    takeover_pause_s,
)
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from tests.integration.conftest import SYNTHETIC_ITEMS, kill_and_show_log

USERS, EVENTS, RATE = 400, 8000, 200.0
CHUNK = 250  # events sent between two steps of the script below


@pytest.fixture
def workers(
    settings: Settings, synthetic_checkpoint: Path, tmp_path: Path
) -> Iterator[list[WorkerProcess]]:
    """Four workers of one group (standby replicas 1), each with its own data dir and web
    port, not yet started; all stopped at the end, the end of each log printed."""
    base = settings.replace(checkpoint=str(synthetic_checkpoint), standby_replicas=1)
    procs = [
        WorkerProcess(
            base.replace(data_dir=tmp_path / f"w{n}", web_port=local_kafka.free_port()),
            tmp_path / f"w{n}.log",
        )
        for n in range(4)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            kill_and_show_log(proc, lines=60)


class Script:
    """Kills, restarts, joins and leaves, each run at its step of the replay; restarts and
    joins in threads of their own, so the replay goes on while a worker starts."""

    def __init__(self, workers: list[WorkerProcess]) -> None:
        self.workers = workers
        self.starting: list[threading.Thread] = []
        self.kills: list[tuple[float, list[int]]] = []  # (epoch ms, the victim's partitions)

    def start(self, n: int) -> None:
        thread = threading.Thread(target=self.workers[n].start, kwargs={"timeout_s": 180})
        thread.start()
        self.starting.append(thread)

    def kill(self, n: int) -> None:
        """SIGKILL worker ``n`` once it serves (it may still be starting)."""
        self.wait_started()
        partitions = self.workers[n].health()["events_partitions"]
        self.workers[n].stop(signal.SIGKILL)
        self.kills.append((time.time() * 1000, partitions))

    def wait_started(self) -> None:
        for thread in self.starting:
            thread.join()
        self.starting.clear()
        assert all(w.healthy() for w in self.workers if w.running), "a worker did not start"


def test_workers_killed_restarted_joining_and_leaving_lose_no_answer_and_no_state(
    settings: Settings, workers: list[WorkerProcess]
) -> None:
    settings = workers[0].settings
    replay = synthetic_replay(users=USERS, items=SYNTHETIC_ITEMS, events=EVENTS, seed=26)
    script = Script(workers)
    for n in range(3):
        script.start(n)
    script.wait_started()
    steps = {
        4: lambda: script.kill(0),
        7: lambda: script.start(0),  # restarted
        10: lambda: script.start(3),  # joins
        13: lambda: (script.kill(1), script.start(1)),  # killed and restarted at once
        18: lambda: workers[2].stop(signal.SIGTERM),  # leaves
        22: lambda: (script.kill(0), script.start(0)),
    }
    for step, first in enumerate(range(0, EVENTS, CHUNK)):
        if step in steps:
            steps[step]()
        send_events(settings, replay.events[first : first + CHUNK], RATE, progress=False)
    script.wait_started()

    sent = sent_events(settings)
    assert sum(map(len, sent.values())) == EVENTS

    findings = check_replay(settings, sent)
    assert findings.ok, f"broken guarantees: {findings}"

    lists = lists_by_user(settings)
    for killed_at, partitions in script.kills:
        print(
            f"takeover pause after the kill at {killed_at:.0f}: "
            f"{takeover_pause_s(lists, killed_at, partitions):.1f} s (partitions {partitions})"
        )
