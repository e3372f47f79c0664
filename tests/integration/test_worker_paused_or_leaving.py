"""A worker of two that stands still past its session, or stops, in the middle of a keyed
replay against a real broker, while events keep coming; its partitions go to the other
worker. Whatever it held (queued events, a batch being answered, states and records not yet
written) must neither be lost nor land on partitions it no longer owns: every guarantee of
the replay holds (`check_replay`)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.replay_checks import check_replay, sent_events
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from tests.integration.conftest import SYNTHETIC_ITEMS, two_workers_started

USERS, EVENTS = 300, 4000
PAUSE_PAST_SESSION_S = 6.0  # paused this long after the session timeout


@pytest.fixture
def workers(
    settings: Settings, synthetic_checkpoint: Path, tmp_path: Path
) -> Iterator[list[WorkerProcess]]:
    """Two workers of one group (`two_workers_started`). A model call may take far longer than
    a pause (a call in flight when the worker stopped is not taken for a hung model)."""
    with two_workers_started(
        settings, synthetic_checkpoint, tmp_path, model_call_timeout_s=300.0
    ) as procs:
        yield procs


def replay_with(worker: WorkerProcess, rate: float, seed: int, fault: Callable[[], None]) -> None:
    """A quarter of a keyed replay, then the rest sent while ``fault()`` happens to
    ``worker``; every guarantee of the replay is then checked."""
    settings = worker.settings
    replay = synthetic_replay(users=USERS, items=SYNTHETIC_ITEMS, events=EVENTS, seed=seed)
    first, rest = replay.events[: EVENTS // 4], replay.events[EVENTS // 4 :]
    send_events(settings, first, rate, progress=False)
    assert worker.health()["events_partitions"], "the worker serves no partition"
    sender = threading.Thread(target=send_events, args=(settings, rest, rate, False))
    sender.start()
    try:
        fault()
    finally:
        sender.join()
    sent = sent_events(settings)
    assert sum(map(len, sent.values())) == EVENTS
    findings = check_replay(settings, sent)
    assert findings.ok, f"broken guarantees: {findings.counts()}: {findings}"


def test_a_worker_paused_past_its_session_and_resumed_loses_and_overwrites_nothing(
    workers: list[WorkerProcess],
) -> None:
    paused, _ = workers

    def pause() -> None:
        os.kill(paused.process.pid, signal.SIGSTOP)
        time.sleep(paused.settings.session_timeout_s + PAUSE_PAST_SESSION_S)
        os.kill(paused.process.pid, signal.SIGCONT)

    replay_with(paused, rate=200.0, seed=29, fault=pause)
    # It carries on, unless its producer held records when it learnt it was expelled:
    # then it ended at once without sending them (`faust_patches.GroupLease`).
    log = paused.log.read_text(errors="replace")
    assert paused.running or (
        paused.process.returncode == 1 and "expelled from the group" in log
    ), f"the resumed worker stopped with {paused.process.returncode}"


def test_a_worker_leaving_mid_replay_loses_and_overwrites_nothing(
    workers: list[WorkerProcess],
) -> None:
    leaving, _ = workers

    def leave() -> None:
        assert leaving.stop(signal.SIGTERM) is not None, "the worker did not stop"

    replay_with(leaving, rate=500.0, seed=31, fault=leave)
