"""One run of `rtrank bench scale`: N workers of one group, a keyed replay, kills.

    result = one_run(settings, tmp, workers=3, standby=1, options=RunOptions(), say=print)

The steps and what each figure means are in `rtrank.streams.bench.scale_bench`.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtrank.deploy.kafka.broker import free_port
from rtrank.streams.bench.recommendation_reader import RecommendationReader
from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.replay_checks import (
    check_replay,
    lists_by_user,
    sent_events,
    takeover_pause_s,
)
from rtrank.streams.bench.worker_metrics import metric_value
from rtrank.streams.bench.worker_process import TrainerProcess, WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import delete_run_topics, ensure_topics


@dataclass(frozen=True)
class RunOptions:
    events: int = 8_000  # per run, burst included
    burst: int = 5_000  # sent first, unpaced: events/s answered
    rate: float = 100.0  # offered events/s of the rest: latency, takeover pauses
    kills: int = 2
    users: int = 400
    items: int = 300
    trainer: bool = False


def plan(workers: list[int], standby: list[int]) -> list[tuple[int, int]]:
    """The (workers, standby replicas) runs: every standby count below the worker count
    (a standby replica lives on another worker than its partition's owner)."""
    return [(n, s) for n in workers for s in standby if s < n]


@dataclass
class Killer:
    """SIGKILLs workers round robin and restarts each at once, in a thread of its own, so
    the replay goes on while it starts; records each kill's time and partitions."""

    workers: list[WorkerProcess]
    starting: list[threading.Thread] = field(default_factory=list)
    kills: list[tuple[float, list[int]]] = field(default_factory=list)  # (epoch ms, partitions)

    def start_all(self) -> None:
        for worker in self.workers:
            self.start(worker)
        self.wait_started()

    def start(self, worker: WorkerProcess) -> None:
        thread = threading.Thread(target=worker.start, kwargs={"timeout_s": 180})
        thread.start()
        self.starting.append(thread)

    def join_starts(self) -> None:
        """Wait for the workers being started (started or failed), so that none starts
        after the run stopped them."""
        for thread in self.starting:
            thread.join()
        self.starting.clear()

    def wait_started(self, timeout_s: float = 180.0) -> None:
        """Return once every worker serves and owns partitions (a fresh worker answers
        /health before its first assignment, and a kill must know its partitions).

        Raises:
            RuntimeError: a worker exited, or one owned no partition within ``timeout_s``.
        """
        self.join_starts()
        deadline = time.monotonic() + timeout_s
        while not all(w.running and w.health().get("events_partitions") for w in self.workers):
            if not all(w.running for w in self.workers):
                raise RuntimeError(f"a worker exited; see {[str(w.log) for w in self.workers]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"a worker owned no partition after {timeout_s:.0f}s")
            time.sleep(0.5)

    def kill_and_restart(self, n: int) -> list[int]:
        """SIGKILL worker ``n`` (modulo the count) and start it again; its partitions."""
        self.wait_started()
        victim = self.workers[n % len(self.workers)]
        partitions = victim.health()["events_partitions"]
        victim.stop(signal.SIGKILL)
        self.kills.append((time.time() * 1000, partitions))
        self.start(victim)
        return partitions


def answered(workers: list[WorkerProcess]) -> float:
    """Events answered so far by all ``workers`` (their answer counters summed)."""
    return sum(metric_value(w.metrics(), "rtrank_answer_seconds_count") for w in workers)


def burst_rate(
    settings: Settings, workers: list[WorkerProcess], events: list[dict], timeout_s: float = 300
) -> float:
    """Events/s answered for ``events`` sent as fast as the replay can, from the first
    sent to the last answered (the counters polled every 0.2 s).

    Raises:
        RuntimeError: not all answered within ``timeout_s``.
    """
    target = answered(workers) + len(events)
    started = time.monotonic()
    send_events(settings, events, progress=False)
    while answered(workers) < target:
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"the workers did not answer a burst of {len(events)} events")
        time.sleep(0.2)  # a scrape renders every metric on the worker's event loop
    return len(events) / (time.monotonic() - started)


def replay_with_kills(
    settings: Settings,
    killer: Killer,
    events: list[dict],
    rate: float,
    kills: int,
    say: Callable[[str], None],
) -> list[float]:
    """Send ``events`` at ``rate`` with ``kills`` kills evenly spread between them; the
    event -> list milliseconds of every list received meanwhile. Interrupted (Ctrl-C), it
    stops before the next kill."""
    errors: list[Exception] = []
    stopping = threading.Event()

    def script() -> None:
        try:
            bounds = np.linspace(0, len(events), kills + 2).astype(int)
            for n, (first, end) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
                if stopping.is_set():
                    return
                if n:
                    partitions = killer.kill_and_restart(n - 1)
                    say(f"kill {n}/{kills}: a worker of partitions {partitions}")
                send_events(settings, events[first:end], rate, progress=False)
            killer.wait_started()
        except Exception as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=script)
    try:
        with RecommendationReader(settings) as reader:
            thread.start()
            latencies = reader.collect_while(thread.is_alive)
    finally:
        stopping.set()
        thread.join()
    if errors:
        raise errors[0]
    return latencies


def one_run(
    base: Settings,
    tmp: Path,
    workers: int,
    standby: int,
    options: RunOptions,
    say: Callable[[str], None],
) -> dict:
    """One run of the plan on fresh topics; its figures and `check_replay` counts. The
    run's topics are deleted when every check holds; its logs stay under ``tmp``."""
    run = f"scale-{uuid.uuid4().hex[:6]}-w{workers}s{standby}"
    settings = base.isolated(run, standby_replicas=standby)
    ensure_topics(settings)
    procs = [
        WorkerProcess(
            settings.replace(data_dir=tmp / run / f"w{n}", web_port=free_port()),
            tmp / run / f"w{n}.log",
        )
        for n in range(workers)
    ]
    trainer = TrainerProcess(settings, tmp / run / "trainer.log", checkpoint=settings.checkpoint)
    killer = Killer(procs)
    events = synthetic_replay(options.users, options.items, options.events, seed=26).events
    burst, paced = events[: options.burst], events[options.burst :]
    try:
        say(f"starting {workers} worker(s), standby {standby}, trainer: {options.trainer}")
        if options.trainer:  # beside the workers, as they start
            killer.starting.append(threading.Thread(target=trainer.start))
            killer.starting[-1].start()
        killer.start_all()
        if options.trainer and not trainer.running:
            raise RuntimeError(f"the trainer did not start; see {trainer.log}")
        say(f"burst of {len(burst)} events")
        eps = burst_rate(settings, procs, burst)
        say(f"{len(paced)} events at {options.rate:.0f}/s, {options.kills} kill(s)")
        latencies = replay_with_kills(settings, killer, paced, options.rate, options.kills, say)
        say("checking the replay")
        findings = check_replay(settings, sent_events(settings), settle_s=120)
        for name, found in vars(findings).items():
            if found:
                say(f"broken: {len(found)} {name}, e.g. {found[:3]}; topics {run}.*")
        lists = lists_by_user(settings)
    finally:
        killer.join_starts()
        trainer.stop()
        for proc in procs:
            proc.stop()
    if findings.ok:  # else kept, with the logs, to look at
        delete_run_topics(settings, run)
    return {
        "workers": workers,
        "standby": standby,
        "trainer": options.trainer,
        "events": len(events),
        "answered_eps": round(eps, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(latencies, 50)), 1),
            "p99": round(float(np.percentile(latencies, 99)), 1),
            "lists": len(latencies),
        },
        "takeover_pause_s": [round(takeover_pause_s(lists, *kill), 2) for kill in killer.kills],
        "checks": findings.counts(),
    }
