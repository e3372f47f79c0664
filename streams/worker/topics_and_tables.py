"""rtrank's topics: declared on the Faust app, and created up front with kafka-python.

Creating every topic explicitly, with the configured partition counts, is what keeps the
``events`` topic and the user table co-partitioned: the broker never auto-creates a
one-partition topic behind our back (local brokers run with auto-creation off).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import faust
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from rtrank.streams.settings import Settings

RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def json_table_schema() -> faust.Schema:
    """Tables keyed by a UTF-8 id (user or item) whose values are JSON objects."""
    return faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")


class TopicLayoutError(RuntimeError):
    """An existing topic has a partition count that would break co-partitioning."""


@dataclass(frozen=True)
class Topics:
    events: faust.TopicT
    recommendations: faust.TopicT
    dlq: faust.TopicT
    training: faust.TopicT


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    """Every topic carries raw bytes: events as producers wrote them, the rest as JSON
    that `rtrank.streams.records` serialises."""
    return Topics(
        events=app.topic(settings.events_topic, partitions=settings.partitions, **RAW),
        recommendations=app.topic(
            settings.recommendations_topic, partitions=settings.partitions, **RAW
        ),
        dlq=app.topic(settings.dlq_topic, partitions=settings.partitions, **RAW),
        training=app.topic(settings.training_topic, partitions=settings.partitions, **RAW),
    )


def catalogue_changelog(settings: Settings) -> str:
    """The changelog of the ``item_to_info`` GlobalTable (Faust's naming)."""
    return f"{settings.app_id}-item_to_info-changelog"


def topic_names(settings: Settings) -> list[str]:
    """Every topic rtrank reads or writes, created up front by `ensure_topics`.

    The catalogue's changelog is among them: left to Faust, it was created during the first
    rebalance, missing from the metadata the assignor read, and the worker hung in recovery
    (seen under load).
    """
    return [
        settings.events_topic,
        settings.recommendations_topic,
        settings.dlq_topic,
        settings.training_topic,
        settings.model_updates_topic,
        settings.items_topic,
        settings.items_dlq_topic,
        settings.rank_requests_topic,
        settings.rank_responses_topic,
        catalogue_changelog(settings),
    ]


def partitions_of(settings: Settings, name: str) -> int:
    """Model updates have one partition: a version must follow its base."""
    return 1 if name == settings.model_updates_topic else settings.partitions


def configs_of(settings: Settings, name: str) -> dict[str, str]:
    """The catalogue and its changelog are compacted: the latest record per item is the item."""
    compacted = {settings.items_topic, catalogue_changelog(settings)}
    return {"cleanup.policy": "compact"} if name in compacted else {}


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> dict[str, int]:
    """Create the missing topics with ``settings.partitions``; return name -> partitions.

    Raises:
        TopicLayoutError: ``events`` exists with another partition count than configured.
    """
    admin = _admin(settings, timeout_s)
    try:
        existing = set(admin.list_topics())
        missing = [name for name in topic_names(settings) if name not in existing]
        if missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            partitions_of(settings, name),
                            1,
                            topic_configs=configs_of(settings, name),
                        )
                        for name in missing
                    ],
                    timeout_ms=int(timeout_s * 1000),
                )
            except TopicAlreadyExistsError:
                pass  # another process created them in between: fine
        counts = _partition_counts(admin, topic_names(settings), timeout_s)
    finally:
        admin.close()
    if counts.get(settings.events_topic, settings.partitions) != settings.partitions:
        raise TopicLayoutError(
            f"topic {settings.events_topic!r} has {counts[settings.events_topic]} partitions but "
            f"RTRANK_PARTITIONS={settings.partitions}; the user table must be co-partitioned "
            "with it: set RTRANK_PARTITIONS to match or recreate the topic"
        )
    return counts


def delete_run_topics(settings: Settings, run: str, timeout_s: float = 30.0) -> list[str]:
    """Delete every topic of the isolated run ``run`` (`Settings.isolated`): rtrank's own,
    named ``run.…``, and Faust's, named after the app id, which carries ``run`` too.

    Benchmarks create a fresh set per run; left behind, they pile up on the broker (a
    day's benchmarking left ~10,000 partitions on the local one, and slowed it). Returns
    the names deleted; the broker removes them shortly after it answers.
    """
    admin = _admin(settings, timeout_s)
    try:
        names = sorted(name for name in admin.list_topics() if run in name)
        if names:
            admin.delete_topics(names, timeout_ms=int(timeout_s * 1000))
        return names
    finally:
        admin.close()


def _admin(settings: Settings, timeout_s: float) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.app_id}-admin",
        request_timeout_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
    )


def _partition_counts(
    admin: KafkaAdminClient, names: list[str], timeout_s: float
) -> dict[str, int]:
    """name -> partitions, waiting while a topic just created still shows none (the
    broker answers create before its metadata lists the new partitions)."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = {d["name"]: len(d["partitions"]) for d in admin.describe_topics(names)}
        if all(counts.get(n) for n in names) or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)
