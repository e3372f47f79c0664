"""model-updates stays bounded against a real broker: the trainer deletes what precedes the
previous snapshot, and readers starting afterwards, or whose position was deleted, still
reach the latest version."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, NewTopic

from rtrank.model.online import Example
from rtrank.model.updates import apply_update
from rtrank.streams.bench.worker_process import TrainerProcess
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import (
    Assembler,
    parse_chunk,
    read_range,
    updates_consumer,
)
from rtrank.streams.trainer.update_feed import UpdateFeed
from rtrank.streams.worker.topics_and_tables import kept_for
from tests.integration.conftest import kill_and_show_log, read_topic, wait_for
from tests.integration.test_online import send_examples


@pytest.fixture
def online(settings: Settings, synthetic_checkpoint: Path) -> Settings:
    """A snapshot every second version, versions every 0.3 s, snapshots in several chunks."""
    return settings.replace(
        checkpoint=str(synthetic_checkpoint),
        trainer_publish_s=0.3,
        snapshot_every=2,
        update_max_bytes=64 * 1024,
        trainer_metrics_port=0,
    )


@pytest.fixture
def trimmed(online: Settings, tmp_path: Path) -> list:
    """The records of model-updates once the trainer has trimmed it and stopped; the topic
    was created beforehand as earlier versions did, kept for 7 days."""
    admin = KafkaAdminClient(bootstrap_servers=online.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(online.model_updates_topic, 1, 1, topic_configs=kept_for(7))])
    finally:
        admin.close()
    trainer = TrainerProcess(online, tmp_path / "trainer.log", checkpoint=online.checkpoint)
    stop = threading.Event()
    examples = [Example((f"item-{n % 50}",), f"item-{(n + 1) % 50}") for n in range(200)]

    def feed() -> None:
        while not stop.is_set():
            send_examples(online, examples)
            time.sleep(0.3)

    feeder = threading.Thread(target=feed, daemon=True)
    try:
        trainer.start()
        feeder.start()
        wait_for(
            lambda: first_offset(online) > 0,
            timeout_s=90,
            message="the trainer deleted nothing from model-updates",
        )
        stop.set()
        feeder.join()
        assert trainer.stop(signal.SIGTERM) == 0
        assert "trimmed" in trainer.log.read_text()
    finally:
        stop.set()
        kill_and_show_log(trainer)
    return read_topic(online.bootstrap_servers, online.model_updates_topic)


def retention(settings: Settings) -> tuple[str, str]:
    """retention.ms and retention.bytes of the model-updates topic, as the broker has them."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        configs = admin.describe_configs(
            [ConfigResource("TOPIC", settings.model_updates_topic)], config_filter="all"
        )
    finally:
        admin.close()
    topic = configs["topic"][settings.model_updates_topic]
    return topic["retention.ms"]["value"], topic["retention.bytes"]["value"]


def first_offset(settings: Settings) -> int:
    consumer, tp = updates_consumer(settings)
    try:
        return consumer.beginning_offsets([tp])[tp]
    finally:
        consumer.close()


def served_version(updates: list) -> int:
    """The version a reader serves after applying ``updates`` in order from nothing."""
    model, vocab, version = None, None, -1
    for update in updates:
        model, vocab, version = apply_update(model, vocab, version, update)
    return version


def assembled(records: list) -> list:
    assembler = Assembler()
    return [u for r in records for u in [assembler.add(parse_chunk(r.value))] if u is not None]


def test_the_topic_begins_at_the_previous_snapshot_and_holds_every_version_after_it(
    trimmed,
) -> None:
    headers = [parse_chunk(r.value).header for r in trimmed]
    assert trimmed[0].offset > 0
    assert (headers[0]["kind"], headers[0]["chunk"]) == ("snapshot", 0)
    snapshots = sorted({h["version"] for h in headers if h["kind"] == "snapshot"})
    versions = sorted({h["version"] for h in headers})
    assert snapshots == [versions[0], snapshots[-1]] and len(snapshots) == 2
    assert versions == list(range(versions[0], versions[-1] + 1))


def test_an_update_feed_started_afterwards_serves_the_latest_version(online, trimmed) -> None:
    latest = max(parse_chunk(r.value).header["version"] for r in trimmed)
    rejected: list[str] = []
    feed = UpdateFeed(online, lambda reason, detail: rejected.append(detail))
    feed.start()
    try:
        assert feed.caught_up.wait(60), "the feed did not catch up"
        assert served_version(feed.drain()) == latest
    finally:
        feed.stop()
    assert rejected == []


def test_a_reader_whose_position_was_deleted_goes_on_from_the_previous_snapshot(
    online, trimmed
) -> None:
    consumer, tp = updates_consumer(online)
    try:
        end = consumer.end_offsets([tp])[tp]
        records = read_range(consumer, tp, 0, end)  # offset 0 is gone: reset to the beginning
    finally:
        consumer.close()
    assert [r.offset for r in records] == [r.offset for r in trimmed]
    updates = assembled(records)
    assert served_version(updates) == max(parse_chunk(r.value).header["version"] for r in trimmed)


def test_a_topic_created_with_a_retention_by_age_has_it_turned_off(online, trimmed) -> None:
    assert retention(online) == ("-1", "-1")
