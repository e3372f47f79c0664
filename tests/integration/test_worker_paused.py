"""A worker paused past its session against a real broker: SIGSTOPped for longer than the
session timeout during a keyed replay (a long GC pause, a starved VM), so the group hands its
partitions to the other worker, then resumed. Whatever the paused worker held when it
stopped (queued events, a batch being answered, states not yet written) must not land on
partitions it no longer owns, nor be lost: every guarantee of the replay holds. The resumed
worker carries on, or, when its producer held records as it learnt it was expelled, ends
at once without sending them."""

from __future__ import annotations

import os
import signal
import threading
import time
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

USERS, EVENTS, RATE = 300, 4000, 200.0
PAUSE_PAST_SESSION_S = 6.0  # paused this long after the session timeout


@pytest.fixture
def workers(
    settings: Settings, synthetic_checkpoint: Path, tmp_path: Path
) -> Iterator[list[WorkerProcess]]:
    """Two workers of one group (standby replicas 1), started at once; stopped at the end,
    their logs printed. A model call may take far longer than the pause (a call in flight
    when the worker stopped is not taken for a hung model process)."""
    base = settings.replace(
        checkpoint=str(synthetic_checkpoint), standby_replicas=1, model_call_timeout_s=300.0
    )
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
            if proc.running:
                os.kill(proc.process.pid, signal.SIGCONT)
            kill_and_show_log(proc, lines=80)


def test_a_worker_paused_past_its_session_and_resumed_loses_and_overwrites_nothing(
    workers: list[WorkerProcess],
) -> None:
    paused, _ = workers
    settings = paused.settings
    replay = synthetic_replay(users=USERS, items=SYNTHETIC_ITEMS, events=EVENTS, seed=29)
    first, rest = replay.events[: EVENTS // 4], replay.events[EVENTS // 4 :]
    send_events(settings, first, RATE, progress=False)
    assert paused.health()["events_partitions"], "the worker to pause serves no partition"

    sender = threading.Thread(target=send_events, args=(settings, rest, RATE, False))
    sender.start()
    try:
        os.kill(paused.process.pid, signal.SIGSTOP)
        time.sleep(settings.session_timeout_s + PAUSE_PAST_SESSION_S)
        os.kill(paused.process.pid, signal.SIGCONT)
    finally:
        sender.join()

    sent = sent_events(settings)
    assert sum(map(len, sent.values())) == EVENTS
    findings = check_replay(settings, sent)
    assert findings.ok, f"broken guarantees: {findings.counts()}: {findings}"
    # It carries on, unless its producer held records when it learnt it was expelled:
    # then it ended at once without sending them (`faust_patches.GroupLease`).
    log = paused.log.read_text(errors="replace")
    assert paused.running or (
        paused.process.returncode == 1 and "expelled from the group" in log
    ), f"the resumed worker stopped with {paused.process.returncode}"
