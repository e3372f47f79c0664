"""Sends outside the worker are checked against a real broker that refuses every write:
`send_events` says how many events were not delivered, and the trainer stops rather than
count a version as published."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from rtrank.streams.bench.worker_process import TrainerProcess
from rtrank.streams.cli.produce import DeliveryError, send_events
from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import ensure_topics


def create_refusing(settings: Settings, topic: str) -> None:
    """``topic`` with a largest message smaller than any record: each write is refused."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "64"})])
    finally:
        admin.close()


def test_events_the_broker_refuses_are_reported_as_not_delivered(settings: Settings) -> None:
    create_refusing(settings, settings.events_topic)
    events = [{"user_id": f"u{n}", "item_id": "i", "event_type": "view"} for n in range(20)]
    with pytest.raises(DeliveryError, match=r"20 of 20 events were not delivered") as e:
        send_events(settings, events, progress=False)
    assert "TooLarge" in str(e.value)


def test_a_trainer_whose_version_is_refused_stops_without_counting_it_published(
    settings: Settings, tmp_path: Path
) -> None:
    create_refusing(settings, settings.model_updates_topic)
    ensure_topics(settings)
    trainer = TrainerProcess(settings.replace(trainer_metrics_port=0), tmp_path / "trainer.log")
    with pytest.raises(RuntimeError, match="exited with 1"):
        trainer.start(timeout_s=120)
    log = trainer.log.read_text()
    assert "Error: version 1 not published: 1 of 1 message(s) not delivered" in log
    assert "published version" not in log
