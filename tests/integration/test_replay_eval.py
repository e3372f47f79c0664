"""Reading a replayed run back from a real worker's topics (`rtrank.streams.bench.replay_eval`)."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaProducer

from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.replay_eval import read_run
from rtrank.streams.cli.produce import send_events
from tests.integration.conftest import SYNTHETIC_ITEMS, read_topic, wait_delivered


def replayed(settings, worker, checkpoint, events: int) -> list[dict]:
    """Replay ``events`` through ``worker``; return them once their examples and lists are
    all on the broker (what `read_run` reads).

    The worker serves ``checkpoint``, which knows every item from the start: a worker with
    no checkpoint learns items from the stream, so how long its first lists are would
    depend on how many events its first batches held.
    """
    worker.settings = settings.replace(checkpoint=str(checkpoint))
    worker.start()
    replay = synthetic_replay(users=50, items=SYNTHETIC_ITEMS, events=events, seed=9)
    send_events(settings, replay.events, progress=False)
    worker.drain(events)
    wait_delivered(settings, worker)
    return replay.events


def test_a_run_reads_back_each_users_events_examples_and_lists_in_order(
    settings, worker, synthetic_checkpoint
):
    events = replayed(settings, worker, synthetic_checkpoint, 600)
    run = read_run(settings, {})
    sent: dict[str, list[str]] = {}
    for e in events:
        sent.setdefault(e["user_id"], []).append(e["item_id"])
    assert run.items == sent
    examples = {
        (r.partition, r.offset): json.loads(r.value)
        for r in read_topic(settings.bootstrap_servers, settings.training_topic)
    }
    for user, items in run.items.items():
        found = [examples[at] for at in run.examples[user]]
        assert [(x["user_id"], x["item_id"]) for x in found] == [(user, i) for i in items]
    answered = [e for lists in run.lists.values() for e in lists]
    assert answered and all(len(e.items) == settings.top_k for e in answered)
    for user, lists in run.lists.items():
        assert [e.n for e in lists] == sorted({e.n for e in lists}), user
        assert lists[-1].n == len(run.items[user]) - 1, user  # every user's last event answered


def test_a_run_whose_examples_do_not_match_its_events_is_refused(
    settings, worker, synthetic_checkpoint
):
    replayed(settings, worker, synthetic_checkpoint, 100)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    producer.send(settings.training_topic, key=b"stray", value=b"{}", partition=0)
    producer.flush()
    producer.close()
    with pytest.raises(RuntimeError, match="one example per event"):
        read_run(settings, {})
