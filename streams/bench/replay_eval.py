"""Prequential quality of a replayed run, judged in stream order from the topics it wrote.

    run = read_run(settings, trained=versions.trained)   # after the worker has answered
    judged = judge(run, measured_from={"u1": 3, ...})     # each user's first measured event
    quality(judged)                                       # {"hit@10": ..., "ndcg@10": ...}
    paired_difference(frozen_judged, online_judged)       # {"hit@10": ..., "se": ...}

Each measured event is tested against the newest list the run emitted for an earlier event
of its user: what that user had been shown had the worker kept up with the replay. The
worker's own evaluation (`rtrank.streams.worker.online_eval`) tests an event when it is
read, and a backlogged worker reads up to four batches ahead of what it has answered, so an
event whose user's previous event is still in flight is tested against an older list. How
many are depends on the machine's load of the hour, by more than online learning adds, so
the difference of the worker's figures for two runs measured the two runs' load as much as
the two models (docs/decisions.md, "`bench online` judges in replay order").

Test before train still holds: a list emitted by a version that had already trained on the
event tested (whose published offsets cover the event's training example) is never used;
the newest earlier list from a version that had not is (counted in ``skipped_trained``).

A run's training examples are matched to its events by position: the worker writes one
example per event, keyed by user like the event, so the example of the event at
(partition p, offset o) is the training topic's (p, o). `read_run` checks that both topics
hold as many records per partition and refuses the run otherwise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from kafka.consumer.fetcher import ConsumerRecord

from rtrank.streams.bench.topic_reader import end_offsets, read_topic
from rtrank.streams.forgetting import is_forget
from rtrank.streams.settings import Settings
from rtrank.streams.worker.online_eval import gains, rank_of


@dataclass(frozen=True)
class EmittedList:
    """A list the run emitted for a user: after the user's ``n``-th event (0-based)."""

    n: int
    version: int
    items: tuple[str, ...]
    variant: str = ""  # the experiment variant it carries ("": none)
    teams: tuple[str, ...] = ()  # per item, the variant that placed it (interleaving)


@dataclass
class Run:
    """What a replayed run wrote, per user, in each user's order."""

    items: dict[str, list[str]] = field(default_factory=dict)  # item of each event
    examples: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # (partition, offset)
    lists: dict[str, list[EmittedList]] = field(default_factory=dict)
    trained: dict[int, dict[int, int]] = field(default_factory=dict)  # version -> next offsets
    times: dict[str, list[int]] = field(default_factory=dict)  # ts of each event
    frozen: frozenset[str] = frozenset()  # variants whose versions are not the trainer's


@dataclass
class Judged:
    """Per measured event (user, n) that had an earlier list: its (hit, ndcg) at K=10."""

    gains: dict[tuple[str, int], tuple[float, float]]
    untested: int  # measured events with no earlier list (from a version not trained on them)
    skipped_trained: int  # events whose newest earlier list came from a version trained on them
    tested: dict[tuple[str, int], EmittedList] = field(default_factory=dict)  # the list of each


def judge(run: Run, measured_from: Mapping[str, int]) -> Judged:
    """Tests each user's events from ``measured_from[user]`` on (users not in it: none)."""
    out: dict[tuple[str, int], tuple[float, float]] = {}
    lists_tested: dict[tuple[str, int], EmittedList] = {}
    untested = skipped = 0
    for user, first in measured_from.items():
        items, lists = run.items.get(user, []), run.lists.get(user, [])
        examples = run.examples.get(user, [])
        newest = 0  # lists answering an event before n: lists[:newest]
        for n in range(first, len(items)):
            while newest < len(lists) and lists[newest].n < n:
                newest += 1
            tested = next(
                (
                    lists[k]
                    for k in range(newest - 1, -1, -1)
                    if lists[k].variant in run.frozen
                    or not _trained_on(run.trained.get(lists[k].version, {}), examples[n])
                ),
                None,
            )
            if newest and tested is not lists[newest - 1]:
                skipped += 1
            if tested is None:
                untested += 1
                continue
            out[(user, n)] = gains(rank_of(list(tested.items), items[n]))
            lists_tested[(user, n)] = tested
    return Judged(out, untested, skipped, lists_tested)


def _trained_on(next_offsets: Mapping[int, int], example: tuple[int, int]) -> bool:
    partition, offset = example
    return next_offsets.get(partition, 0) > offset


def quality(judged: Judged) -> dict:
    """Hit@10 (with its binomial standard error) and NDCG@10 over the judged events."""
    n = len(judged.gains)
    hit = sum(h for h, _ in judged.gains.values()) / n if n else float("nan")
    ndcg = sum(g for _, g in judged.gains.values()) / n if n else float("nan")
    return {
        "hit@10": round(hit, 4),
        "hit@10_se": round(math.sqrt(hit * (1 - hit) / n), 4) if n else float("nan"),
        "ndcg@10": round(ndcg, 4),
        "tested": n,
        "untested": judged.untested,
        "skipped_trained": judged.skipped_trained,
    }


def paired_difference(frozen: Judged, online: Judged) -> dict:
    """Online minus frozen Hit@10 over the events both judged, with the standard error of
    that mean difference: both runs replay the same events, so most events are misses (or
    hits) under both models and only the events they disagree on carry noise."""
    common = frozen.gains.keys() & online.gains.keys()
    n = len(common)
    if n < 2:
        return {"hit@10": float("nan"), "se": float("nan"), "events": n}
    diffs = [online.gains[key][0] - frozen.gains[key][0] for key in common]
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return {"hit@10": round(mean, 4), "se": round(math.sqrt(var / n), 4), "events": n}


def read_run(
    settings: Settings, trained: Mapping[int, Mapping[int, int]], check_examples: bool = True
) -> Run:
    """The run on ``settings``' topics as written so far; ``trained``: each published
    version's next training offsets (empty when the worker served no published version).
    ``check_examples=False`` when no list is tested against ``trained`` (every experiment
    variant frozen, `Run.frozen`): the training topic is then not needed.

    Raises:
        RuntimeError: the training topic does not hold one example per event.
    """
    run = Run(trained={v: dict(offsets) for v, offsets in trained.items()})
    events = read_topic(settings, settings.events_topic)
    examples = end_offsets(settings, settings.training_topic)
    if check_examples and examples != end_offsets(settings, settings.events_topic):
        raise RuntimeError(
            f"{settings.training_topic} does not hold one example per event of "
            f"{settings.events_topic} (records per partition {examples}): cannot tell which "
            "version had trained on which event"
        )
    position: dict[tuple[int, int], tuple[str, int]] = {}
    for record in sorted(events, key=lambda r: (r.partition, r.offset)):
        event = _event(record)
        if event is None:  # dead-lettered, or a request (forget a user): no list answers it
            continue
        user = record.key.decode()
        seen = run.items.setdefault(user, [])
        position[(record.partition, record.offset)] = (user, len(seen))
        seen.append(event["item_id"])
        run.times.setdefault(user, []).append(event.get("ts") or record.timestamp)
        run.examples.setdefault(user, []).append((record.partition, record.offset))
    for record in sorted(
        read_topic(settings, settings.recommendations_topic), key=lambda r: (r.partition, r.offset)
    ):
        if record.value is None:  # a forgotten user's tombstone
            continue
        rec = json.loads(record.value)
        source = rec["based_on"]
        user, n = position[(source["partition"], source["offset"])]
        items = tuple(i["item_id"] for i in rec["items"])
        variant = rec.get("experiment", {}).get("variant", "")
        teams = tuple(i.get("team", "") for i in rec["items"]) if variant else ()
        run.lists.setdefault(user, []).append(
            EmittedList(n, rec["model_version"], items, variant, teams)
        )
    return run


def _event(record: ConsumerRecord) -> dict | None:
    """The event ``record`` holds; None for any other record of the events topic (one the
    worker dead-lettered, a forget request), which no list answers."""
    if record.key is None or is_forget(record.headers):
        return None
    try:
        event = json.loads(record.value)
    except (TypeError, ValueError):
        return None
    ok = isinstance(event, dict) and isinstance(event.get("item_id"), str | int)
    return {**event, "item_id": str(event["item_id"])} if ok else None
