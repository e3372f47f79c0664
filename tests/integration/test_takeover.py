"""Takeover after SIGKILL against a real broker: workers of one group killed, restarted,
joining and leaving during a keyed replay lose no answer and no state update.

The test prints each kill's takeover pause: the longest a killed worker's events
partitions went without a list after the kill.

"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.topic_reader import read_topic
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from tests.integration.conftest import SYNTHETIC_ITEMS, kill_and_show_log, latest_by_key, wait_for

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

    events = sorted(
        read_topic(settings, settings.events_topic), key=lambda r: (r.partition, r.offset)
    )
    assert len(events) == EVENTS
    sent: dict[str, list[tuple[int, str]]] = defaultdict(list)  # user -> (offset, item)
    for record in events:
        sent[record.key.decode()].append((record.offset, replay_item(record.value)))

    def lists_by_user() -> dict[str, list[dict]]:
        by_user: dict[str, list[dict]] = defaultdict(list)
        for record in read_topic(settings, settings.recommendations_topic):
            by_user[record.key.decode()].append(json.loads(record.value))
        return by_user

    partition_of = {record.key.decode(): record.partition for record in events}

    def unanswered() -> list[tuple[str, int, int, int]]:
        """(user, partition, offset answered last, offset of the last event) of each user
        whose last event no list answers."""
        answered = {u: max(answers(r) for r in recs) for u, recs in lists_by_user().items()}
        return [
            (u, partition_of[u], answered.get(u, -1), evs[-1][0])
            for u, evs in sent.items()
            if answered.get(u, -1) != evs[-1][0]
        ]

    missing = settled(unanswered, timeout_s=150)
    assert not missing, f"users whose last event was never answered: {missing}"

    lists = lists_by_user()
    seen_items = [
        (user, answers(rec), sorted(repeated))
        for user, recs in lists.items()
        for rec in recs
        if (repeated := {i["item_id"] for i in rec["items"]} & seen_up_to(sent[user], rec))
    ]
    assert not seen_items, f"lists holding items seen before their event: {seen_items[:10]}"

    history_len = settings.history_len

    def misapplied() -> list[str]:
        """Users whose distinct training examples are not one per event, each with the
        history before that event: an event missing, or applied to a wrong state."""
        examples: dict[str, set[tuple[tuple[str, ...], str]]] = defaultdict(set)
        for record in read_topic(settings, settings.training_topic):
            example = json.loads(record.value)
            examples[example["user_id"]].add((tuple(example["prefix"]), example["item_id"]))
        return [u for u, evs in sent.items() if examples[u] != applied_examples(evs, history_len)]

    wrong = settled(misapplied, timeout_s=60)
    assert not wrong, f"users with an event missing or applied to a wrong state: {wrong[:10]}"

    def drifted() -> list[str]:
        """Users whose state in the table (its changelog) is not exactly their events."""
        changelog = f"{settings.app_id}-user_to_history-changelog"
        state = latest_by_key(read_topic(settings, changelog), json_keys=True)
        return [
            user
            for user, evs in sent.items()
            if [state.get(user, {}).get(k) for k in ("events", "history", "last_offset")]
            != [len(evs), [i for _, i in evs][-history_len:], evs[-1][0]]
        ]

    wrong = settled(drifted, timeout_s=60)
    assert not wrong, f"users whose table state is not their events: {wrong[:10]}"

    for killed_at, partitions in script.kills:
        print(
            f"takeover pause after the kill at {killed_at:.0f}: "
            f"{takeover_pause_s(lists, killed_at, partitions):.1f} s (partitions {partitions})"
        )


def settled(problems: Callable[[], list], timeout_s: float) -> list:
    """``problems()`` once it is empty, or as it stands after ``timeout_s``: what the
    workers deliver in the background (examples, changelog records) may lag their lists."""
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not problems(), timeout_s=timeout_s, interval_s=3)
    return problems()


def replay_item(value: bytes) -> str:
    return json.loads(value)["item_id"]


def answers(rec: dict) -> int:
    """The offset of the event a list answers."""
    return rec["based_on"]["offset"]


def seen_up_to(events: list[tuple[int, str]], rec: dict) -> set[str]:
    """Items of the user's events up to and including the one ``rec`` answers."""
    return {item for offset, item in events if offset <= answers(rec)}


def applied_examples(
    events: list[tuple[int, str]], history_len: int
) -> set[tuple[tuple[str, ...], str]]:
    """One (prefix, item) per event, the prefix being the history before it."""
    items = [i for _, i in events]
    return {(tuple(items[:k][-history_len:]), items[k]) for k in range(len(items))}


def takeover_pause_s(
    lists: dict[str, list[dict]], killed_at: float, partitions: list[int]
) -> float:
    """The longest time, over the killed worker's partitions, from the kill to the first
    list on that partition emitted after it."""
    firsts = {}
    for rec in (r for recs in lists.values() for r in recs):
        p, emitted_at = rec["based_on"]["partition"], rec["emitted_at"]
        if p in partitions and emitted_at > killed_at:
            firsts[p] = min(firsts.get(p, emitted_at), emitted_at)
    return max((firsts.get(p, float("inf")) - killed_at) / 1000 for p in partitions)

