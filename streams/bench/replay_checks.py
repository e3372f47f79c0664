"""What a keyed replay must leave on the topics, however workers and brokers failed meanwhile.

Read back from the topics after a replay (`check_replay`), each finding lists what broke one
of the pipeline's guarantees; every list is empty on a correct run:

- ``unanswered``: users whose last event no list answers;
- ``uncovered``: events with no list of their user at or after them (at-least-once broken);
- ``seen_item_lists``: lists holding an item the user had interacted with up to the event
  the list answers (the list was scored from a state that had lost events);
- ``misapplied``: users whose training examples are not one per event, each with the
  history before it (an event lost, applied twice, or applied to a wrong state);
- ``drifted``: users whose state in the table's changelog is not exactly their events.

The workers deliver examples and changelog records in the background, behind their lists,
so each check waits until it holds or its time is up (`settled`). `takeover_pause_s` is the
operators' figure: how long a killed worker's partitions went without a list.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass

from rtrank.streams.bench.topic_reader import read_topic
from rtrank.streams.settings import Settings

Sent = dict[str, list[tuple[int, str]]]  # user -> [(offset, item_id)] in offset order


@dataclass
class ReplayFindings:
    unanswered: list[tuple[str, int, int]]  # (user, offset answered last, last event's offset)
    uncovered: list[tuple[str, int]]  # (user, offset)
    seen_item_lists: list[tuple[str, int, list[str]]]  # (user, offset answered, seen items)
    misapplied: list[tuple[str, str]]  # (user, the first example that is not as expected)
    drifted: list[tuple[str, str]]  # (user, how their state differs from their events)

    @property
    def ok(self) -> bool:
        return not any(asdict(self).values())

    def counts(self) -> dict[str, int]:
        return {name: len(found) for name, found in asdict(self).items()}


def sent_events(settings: Settings) -> Sent:
    """Each user's events as the events topic holds them."""
    sent: Sent = defaultdict(list)
    records = read_topic(settings, settings.events_topic)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        sent[record.key.decode()].append((record.offset, json.loads(record.value)["item_id"]))
    return dict(sent)


def lists_by_user(settings: Settings) -> dict[str, list[dict]]:
    by_user: dict[str, list[dict]] = defaultdict(list)
    for record in read_topic(settings, settings.recommendations_topic):
        by_user[record.key.decode()].append(json.loads(record.value))
    return by_user


def answers(rec: dict) -> int:
    """The offset of the event a list answers."""
    return rec["based_on"]["offset"]


def check_replay(settings: Settings, sent: Sent, settle_s: float = 150.0) -> ReplayFindings:
    """Every guarantee above checked against the topics, each given up to ``settle_s`` to
    hold (the first waits longest: it waits for the workers to answer the replay)."""

    def unanswered() -> list[tuple[str, int, int]]:
        answered = {u: max(map(answers, recs)) for u, recs in lists_by_user(settings).items()}
        return [
            (u, answered.get(u, -1), evs[-1][0])
            for u, evs in sent.items()
            if answered.get(u, -1) != evs[-1][0]
        ]

    missing = settled(unanswered, settle_s)
    lists = lists_by_user(settings)
    answered_up_to = {u: max(map(answers, recs)) for u, recs in lists.items()}
    uncovered = [
        (u, offset)
        for u, evs in sent.items()
        for offset, _ in evs
        if answered_up_to.get(u, -1) < offset
    ]
    seen_item_lists = [
        (user, answers(rec), sorted(repeated))
        for user, recs in lists.items()
        for rec in recs
        if (repeated := {i["item_id"] for i in rec["items"]} & seen_up_to(sent[user], rec))
    ]

    def misapplied() -> list[tuple[str, str]]:
        examples: dict[str, set[tuple[tuple[str, ...], str]]] = defaultdict(set)
        for record in read_topic(settings, settings.training_topic):
            example = json.loads(record.value)
            examples[example["user_id"]].add((tuple(example["prefix"]), example["item_id"]))
        found = []
        for u, evs in sent.items():
            expected = applied_examples(evs, settings.history_len)
            if examples[u] != expected:
                wrong = sorted(examples[u] - expected, key=lambda e: len(e[0]))
                missing = sorted(expected - examples[u], key=lambda e: len(e[0]))
                found.append((u, f"unexpected {wrong[:1]}, missing {missing[:1]}"))
        return found

    def drifted() -> list[tuple[str, str]]:
        changelog = f"{settings.app_id}-user_to_history-changelog"
        state = latest_states(settings, changelog)
        found = []
        for user, evs in sent.items():
            held = state.get(user, {})
            expected = [len(evs), [i for _, i in evs][-settings.history_len :], evs[-1][0]]
            if [held.get(k) for k in ("events", "history", "last_offset")] != expected:
                lost = [(o, i) for o, i in evs if i not in (held.get("history") or [])]
                found.append(
                    (
                        user,
                        f"events {held.get('events')} of {len(evs)}, last offset "
                        f"{held.get('last_offset')} of {evs[-1][0]}, items not held {lost[:3]}",
                    )
                )
        return found

    return ReplayFindings(
        missing, uncovered, seen_item_lists, settled(misapplied, 60), settled(drifted, 60)
    )


def settled(problems: Callable[[], list], timeout_s: float, interval_s: float = 3.0) -> list:
    """``problems()`` once it is empty, or as it stands after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (found := problems()) and time.monotonic() < deadline:
        time.sleep(interval_s)
    return found


def latest_states(settings: Settings, changelog: str) -> dict[str, dict]:
    """The last value per key of a table's changelog (keys are JSON strings)."""
    latest: dict[str, dict] = {}
    for record in sorted(read_topic(settings, changelog), key=lambda r: (r.partition, r.offset)):
        key = json.loads(record.key)
        if record.value is None:
            latest.pop(key, None)
        else:
            latest[key] = json.loads(record.value)
    return latest


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
    lists: dict[str, list[dict]], killed_at_ms: float, partitions: list[int]
) -> float:
    """The longest time, over a killed worker's partitions, from the kill to the first list
    on that partition emitted after it (inf when one never got a list again)."""
    firsts: dict[int, float] = {}
    for rec in (r for recs in lists.values() for r in recs):
        p, emitted_at = rec["based_on"]["partition"], rec["emitted_at"]
        if p in partitions and emitted_at > killed_at_ms:
            firsts[p] = min(firsts.get(p, emitted_at), emitted_at)
    return max((firsts.get(p, float("inf")) - killed_at_ms) / 1000 for p in partitions)
