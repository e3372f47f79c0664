"""A hung model process against a real broker: the worker whose model process was stopped
(SIGSTOP: alive, never answering) fails ``/health``, exits non-zero and leaves its partitions
to the other worker of its group, which answers every event of a keyed replay."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.replay_checks import check_replay, sent_events
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from tests.integration.conftest import (
    SYNTHETIC_ITEMS,
    child_pids,
    two_workers_started,
    wait_for,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

USERS, EVENTS, RATE = 200, 3000, 200.0
HEALTH_FAILS_WITHIN_S = 30.0  # the bound, from the SIGSTOP


@pytest.fixture
def workers(
    settings: Settings, synthetic_checkpoint: Path, tmp_path: Path
) -> Iterator[list[WorkerProcess]]:
    """Two workers of one group, model calls bounded at 5 s (`two_workers_started`)."""
    with two_workers_started(
        settings, synthetic_checkpoint, tmp_path, model_call_timeout_s=5.0
    ) as procs:
        yield procs


def model_process_pid(worker: WorkerProcess) -> int:
    """The worker's model process: its child started by multiprocessing's spawn (its other
    child is multiprocessing's resource tracker)."""
    (pid,) = (
        pid
        for pid in child_pids(worker.process.pid)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    return pid


def health_answer(worker: WorkerProcess) -> tuple[int | None, dict | None]:
    """The status and body of ``/health``; (None, None) when the worker does not answer."""
    url = f"http://127.0.0.1:{worker.settings.web_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return None, None


def test_a_stopped_model_process_fails_health_and_another_worker_takes_its_partitions(
    workers: list[WorkerProcess],
) -> None:
    hung, other = workers
    settings = hung.settings
    replay = synthetic_replay(users=USERS, items=SYNTHETIC_ITEMS, events=EVENTS, seed=26)
    first, rest = replay.events[: EVENTS // 3], replay.events[EVENTS // 3 :]
    send_events(settings, first, RATE, progress=False)
    assert hung.health()["events_partitions"], "the worker to hang serves no partition"

    sender = threading.Thread(target=send_events, args=(settings, rest, RATE, False))
    sender.start()
    answers: list[tuple[float, int | None, dict | None]] = []  # (s after SIGSTOP, status, body)

    def health_failing() -> bool:
        answers.append((time.monotonic() - stopped_at, *health_answer(hung)))
        return answers[-1][1] != 200

    def exited() -> bool:
        health_failing()  # the answers on the way out
        return not hung.running

    try:
        stopped_at = time.monotonic()
        os.kill(model_process_pid(hung), signal.SIGSTOP)
        wait_for(health_failing, timeout_s=60, interval_s=0.05)
        wait_for(exited, timeout_s=60, interval_s=0.05, message="the hung worker did not exit")
        assert hung.process.returncode != 0
        every_partition = list(range(settings.partitions))
        wait_for(
            lambda: other.healthy() and other.health()["events_partitions"] == every_partition,
            timeout_s=60,
            message="the other worker did not take every events partition",
        )
        took_over = time.monotonic() - stopped_at
    finally:
        sender.join()
    failed_after = next(since for since, status, _ in answers if status != 200)
    failing = [(round(since, 1), body) for since, status, body in answers if status == 503]
    print(f"/health failed {failed_after:.1f} s after the SIGSTOP; its 503s: {failing}")
    print(
        f"the hung worker exited with {hung.process.returncode}; the other served every "
        f"partition {took_over:.1f} s after the SIGSTOP"
    )
    assert failed_after < HEALTH_FAILS_WITHIN_S
    assert all(
        body["status"] == "failing" and "model process" in body["reason"]
        for _, status, body in answers
        if status == 503
    ), answers

    sent = sent_events(settings)
    assert sum(map(len, sent.values())) == EVENTS
    findings = check_replay(settings, sent)
    assert findings.ok, f"broken guarantees: {findings}"
