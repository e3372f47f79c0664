"""A worker whose lists the broker refuses stops before committing their events (real broker,
real worker process), so that the next owner of its partitions reads them again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from rtrank.streams.bench.replay_checks import answers, lists_by_user
from rtrank.streams.bench.topic_reader import read_topic
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from rtrank.streams.worker.delivery import EXIT_UNDELIVERABLE
from tests.integration.conftest import (
    committed_offsets,
    serve_half_a_replay,
    wait_for,
)

TINY = "64"  # bytes: smaller than any list, a non-retriable MESSAGE_TOO_LARGE for each


@pytest.fixture
def admin(settings: Settings) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        yield client
    finally:
        client.close()


def topic_config(admin: KafkaAdminClient, topic: str, name: str) -> str:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource], config_filter="all")
    return configs["topic"][topic][name]["value"]


def set_topic_config(admin: KafkaAdminClient, topic: str, name: str, value: str) -> None:
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={name: value})])
    wait_for(lambda: topic_config(admin, topic, name) == value, 30, message="config not applied")


def refuse_lists(admin: KafkaAdminClient, topic: str) -> None:
    set_topic_config(admin, topic, "max.message.bytes", TINY)


def first_unanswered(settings: Settings) -> dict[int, int]:
    """Partition of the events topic -> the offset of its first event that no list of its
    user answers at or after it."""
    answered = {u: max(map(answers, recs)) for u, recs in lists_by_user(settings).items()}
    first: dict[int, int] = {}
    for record in read_topic(settings, settings.events_topic):
        if answered.get(record.key.decode(), -1) < record.offset:
            first[record.partition] = min(first.get(record.partition, record.offset), record.offset)
    return first


def test_a_worker_whose_lists_are_refused_stops_with_their_events_uncommitted(
    settings, worker, synthetic_checkpoint, admin
) -> None:
    settings = settings.replace(checkpoint=str(synthetic_checkpoint))
    after = serve_half_a_replay(settings, worker)

    refuse_lists(admin, settings.recommendations_topic)
    send_events(settings, after, progress=False)
    wait_for(lambda: not worker.running, 90, message="the worker did not stop")
    assert worker.process.returncode == EXIT_UNDELIVERABLE
    log = worker.log.read_text(errors="replace")
    [line] = [x for x in log.splitlines() if "could not be delivered" in x]
    assert "ERROR" in line and settings.recommendations_topic in line
    assert "MessageSizeTooLarge" in line and "partitions move to another worker" in line
    unanswered = first_unanswered(settings)
    assert unanswered, "the worker stopped, yet every event has its list"
    now_committed = committed_offsets(settings)
    assert all(now_committed.get(p, 0) <= offset for p, offset in unanswered.items())
