"""Online learning against a real broker: a trainer process publishes, worker processes serve."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
import torch
from kafka import KafkaProducer

from rtrank.model.checkpoint import load_checkpoint
from rtrank.model.online import Example, OnlineConfig, OnlineLearner
from rtrank.model.update_error import UpdateError
from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.worker_metrics import metric_value
from rtrank.streams.bench.worker_process import TrainerProcess, WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import parse_chunk, read_updates, to_messages
from tests.integration.conftest import SYNTHETIC_ITEMS, latest_by_key, read_topic, wait_for


@pytest.fixture
def online(settings: Settings, synthetic_checkpoint: Path) -> Settings:
    """Worker and trainer start from the synthetic checkpoint; versions every 0.5 s."""
    return settings.replace(
        checkpoint=str(synthetic_checkpoint),
        trainer_publish_s=0.5,
        snapshot_every=4,
        update_max_bytes=64 * 1024,  # small, so snapshots travel in several chunks
    )


@pytest.fixture
def trainer(online: Settings, tmp_path: Path):
    proc = TrainerProcess(online, tmp_path / "trainer.log", checkpoint=online.checkpoint)
    try:
        yield proc
    finally:
        if proc.running:
            proc.stop(signal.SIGKILL)


def published(settings: Settings) -> list[dict]:
    """Headers of every chunk on the model-updates topic, in order."""
    out = []
    for record in read_topic(settings.bootstrap_servers, settings.model_updates_topic):
        try:
            out.append(parse_chunk(record.value).header)
        except UpdateError:
            continue
    return out


def complete_versions(settings: Settings) -> list[dict]:
    """First-chunk headers of the updates whose every chunk is on the topic."""
    chunks: dict[str, list[dict]] = {}
    for header in published(settings):
        chunks.setdefault(header["id"], []).append(header)
    return [parts[0] for parts in chunks.values() if len(parts) == parts[0]["chunks"]]


def newest_version(settings: Settings) -> int:
    """The highest complete version on the topic (-1: none); counting versions would not
    do, since the trainer deletes those before its previous snapshot."""
    return max((h["version"] for h in complete_versions(settings)), default=-1)


def send_examples(settings: Settings, examples: list[Example]) -> None:
    """Training examples straight onto their topic (as workers would write them)."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    for n, e in enumerate(examples):
        value = {
            "user_id": f"u{n}",
            "prefix": list(e.prefix),
            "item_id": e.item_id,
            "event_type": "view",
            "ts": int(time.time() * 1000),
        }
        producer.send(
            settings.training_topic, key=f"u{n}".encode(), value=json.dumps(value).encode()
        )
    producer.flush()
    producer.close()


def recommendation_for(settings: Settings, user: str, history: list[str]) -> dict:
    """Send ``history`` as ``user``'s events; return the list that answers the last one."""
    now = int(time.time() * 1000)
    events = [
        {"user_id": user, "item_id": item, "event_type": "view", "ts": now + n}
        for n, item in enumerate(history)
    ]
    send_events(settings, events, progress=False)
    last_ts = events[-1]["ts"]
    answer: dict = {}

    def answered() -> bool:
        topic = read_topic(settings.bootstrap_servers, settings.recommendations_topic)
        rec = latest_by_key(topic).get(user)
        if rec is not None and rec["based_on"]["ts"] == last_ts:
            answer.update(rec)
            return True
        return False

    wait_for(answered, timeout_s=60, message=f"{user} got no answer to its last event")
    return answer


def rejections(worker: WorkerProcess) -> dict[str, float]:
    """Rejected model updates by reason, from the worker's metrics."""
    prefix = 'rtrank_model_update_rejections_total{reason="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in worker.metrics().splitlines()
        if line.startswith(prefix)
    }


def test_a_pattern_only_in_the_stream_is_learned_and_served_with_new_items(
    online, worker, trainer
) -> None:
    worker.settings = online
    worker.start()
    start_version = load_checkpoint(online.checkpoint).version
    trainer.start()
    tag = uuid.uuid4().hex[:4]
    new_a, new_b = f"new-a-{tag}", f"new-b-{tag}"
    planted = []
    for n in range(1500):  # "after A comes B", for two items the checkpoint never saw
        for item in (f"item-{n % SYNTHETIC_ITEMS}", new_a, new_b):
            planted.append(
                {"user_id": f"planted-{n}", "item_id": item, "event_type": "view", "ts": None}
            )
    send_events(online, planted, rate=1500, progress=False)

    def b_follows_a() -> bool:
        probe = f"probe-{uuid.uuid4().hex[:6]}"
        rec = recommendation_for(online, probe, ["item-7", new_a])
        top = [i["item_id"] for i in rec["items"]]
        return new_b in top and rec["model_version"] > start_version

    wait_for(
        b_follows_a, timeout_s=90, interval_s=2, message=f"{new_b} never recommended after {new_a}"
    )
    assert worker.running and trainer.running


def test_a_worker_started_after_several_updates_serves_the_current_version(
    online, worker, trainer
) -> None:
    trainer.start()
    replay = synthetic_replay(users=200, items=SYNTHETIC_ITEMS, events=2000, seed=4).events
    examples = []
    history: dict[str, list[str]] = {}
    for e in replay:
        prefix = history.setdefault(e["user_id"], [])
        examples.append(Example(tuple(prefix), e["item_id"]))
        prefix.append(e["item_id"])
    wait_for(lambda: complete_versions(online), message="no base snapshot")
    base = newest_version(online)
    for start in range(0, len(examples), 400):  # a version (or more) learned from each chunk
        published_so_far = newest_version(online)
        send_examples(online, examples[start : start + 400])
        wait_for(
            lambda n=published_so_far: newest_version(online) > n,
            message="the trainer published nothing after a chunk of examples",
        )
    wait_for(
        lambda: newest_version(online) >= base + 5,
        timeout_s=60,
        message="the trainer published fewer than 6 versions",
    )
    trainer.stop()
    versions = complete_versions(online)
    current = max(h["version"] for h in versions)
    assert any(h["kind"] == "snapshot" for h in versions[1:])  # a periodic one, not only the first

    worker.settings = online
    worker.start()
    rec = recommendation_for(online, "late-user", ["item-1", "item-2"])
    assert rec["model_version"] == current
    assert metric_value(worker.metrics(), "rtrank_model_update_rejections_total") == 0


def test_corrupt_and_out_of_order_updates_are_rejected_and_the_worker_keeps_serving(
    online, worker, trainer
) -> None:
    trainer.start()  # publishes its base snapshot (checkpoint version + 1)
    worker.settings = online
    worker.start()
    trainer.stop()  # no new versions from here: the served one must not change
    before = recommendation_for(online, "steady", ["item-1", "item-2"])["model_version"]

    ckpt = load_checkpoint(online.checkpoint)
    torch.manual_seed(0)
    stray = OnlineLearner(ckpt.model, ckpt.vocab, version=500, config=OnlineConfig())
    stray.step([Example(("item-1",), "item-2")])
    delta = stray.publish(501, snapshot=False)  # applies to 500: out of order for the worker
    out_of_order = to_messages(delta, online.update_max_bytes)
    *head, (key, last) = to_messages(delta, online.update_max_bytes)
    flipped = [*head, (key, last[:-5] + bytes([last[-5] ^ 0xFF]) + last[-4:])]
    producer = KafkaProducer(bootstrap_servers=online.bootstrap_servers, acks="all")
    for key, value in [(b"x", b"not an update at all"), *flipped, *out_of_order]:
        producer.send(online.model_updates_topic, key=key, value=value, partition=0)
    producer.flush()
    producer.close()

    wait_for(
        lambda: rejections(worker) == {"corrupt": 2.0, "out_of_order": 1.0},
        timeout_s=30,
        message="the bad updates were not all rejected",
    )
    after = recommendation_for(online, "steady", ["item-3"])
    assert worker.running
    assert after["model_version"] == before


def test_a_killed_trainer_resumes_its_last_version_and_reference_without_reusing_numbers(
    online, trainer
) -> None:
    trainer.start()
    stop = threading.Event()
    examples = [Example((f"item-{n % 50}",), f"item-{(n + 1) % 50}") for n in range(200)]

    def feed() -> None:
        while not stop.is_set():
            send_examples(online, examples)
            time.sleep(0.3)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        wait_for(lambda: len(complete_versions(online)) >= 4, timeout_s=60)
        trainer.stop(signal.SIGKILL)
        killed_at = max(h["version"] for h in published(online))
        last_complete = max(h["version"] for h in complete_versions(online))
        trainer.start()
        wait_for(
            lambda: max(h["version"] for h in complete_versions(online)) > killed_at + 2,
            timeout_s=60,
            message="the restarted trainer published nothing",
        )
    finally:
        stop.set()
        feeder.join()
    versions = [h["version"] for h in complete_versions(online)]
    assert versions == sorted(versions) and len(versions) == len(set(versions))
    after = [h for h in complete_versions(online) if h["version"] > killed_at]
    assert after[0]["kind"] == "delta" and after[0]["base"] == last_complete
    assert f"resuming from published version {last_complete}" in trainer.log.read_text()
    reference = load_checkpoint(online.checkpoint).meta["extra"]["held_out_outranked"]
    assert {u.meta["held_out_outranked"] for u in read_updates(online).updates} == {reference}
