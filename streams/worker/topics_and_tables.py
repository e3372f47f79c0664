"""Every topic and table rtrank uses, declared once, in order: topics, then tables.

    specs = topic_specs(settings)           # the one list: names, partitions, configs
    topics = declare_topics(app, settings)  # on the Faust app, from that list
    tables = declare_tables(app, settings)  # user_to_history, item_to_info
    ensure_topics(settings)                 # on the broker, from that list, before any agent

Creating every topic explicitly, with the configured partition counts, is what keeps the
``events`` topic and the user table co-partitioned: the broker never auto-creates a
one-partition topic behind our back (local brokers run with auto-creation off).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import faust
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import (
    InvalidReplicationFactorError,
    KafkaConnectionError,
    TopicAlreadyExistsError,
)

from rtrank.streams.catalogue import ChangedItems
from rtrank.streams.kafka_security import client_config
from rtrank.streams.settings import Settings
from rtrank.streams.worker.faust_patches import keep_in_memory

RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
DAY_MS = 24 * 3600 * 1000
T = TypeVar("T")


def compacted() -> dict[str, str]:
    """The latest record per key is the record: kept for as long as the topic lives."""
    return {"cleanup.policy": "compact"}


def kept_for(days: int) -> dict[str, str]:
    """Records older than ``days`` are deleted, whole segments at a time."""
    return {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS)}


def stamped_by_broker() -> dict[str, str]:
    """Each record's timestamp is the broker's, when it appended it (not the producer's):
    the clock the user table's expiry goes by (`rtrank.streams.worker.expiry`)."""
    return {"message.timestamp.type": "LogAppendTime"}


def trimmed_by_writer() -> dict[str, str]:
    """Never deleted by age or size: the writer deletes what it no longer needs."""
    return {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


# -- Topics ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicSpec:
    """One topic: ``role`` names it in `Topics`; ``declared`` False for a topic Faust
    declares itself (a table's changelog, the assignor's leader topic) that rtrank still
    creates up front; ``configs`` are its topic configs (retention, min.insync.replicas)."""

    role: str
    name: str
    partitions: int
    replicas: int
    configs: Mapping[str, str] = field(default_factory=dict)
    declared: bool = True


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic rtrank reads or writes, in the order they are declared and created.

    Every topic carries raw bytes: events as producers wrote them, the rest as JSON that
    `rtrank.streams.records` serialises. Model updates have one partition: a version must
    follow its base. Every topic has ``RTRANK_REPLICATION_FACTOR`` replicas and
    ``RTRANK_MIN_INSYNC_REPLICAS``, and a stated retention:

    | topic | retention | why |
    |---|---|---|
    | events | 7 days | a worker down for days resumes from its committed offsets |
    | recommendations | 1 day | a list is superseded by the user's next one |
    | events.dlq, items.dlq | 30 days | dead letters wait for a person to look |
    | training-examples | 7 days | a trainer down for days resumes where its version was |
    | model-updates | the latest two snapshots and the deltas after them | below |
    | items, item_to_info changelog | compacted | the latest record per item is the item |
    | rank-requests, rank-responses | 1 day | an answer is only useful to its caller, now |
    | user_to_history changelog | compacted | the latest state per user is the state |
    | the assignor's leader topic | 1 day | Faust never writes it; it elects a leader |

    ``events`` records carry the broker's log-append time (`stamped_by_broker`): idle users
    expire by it. An events topic created before that keeps the producers' times until it is
    altered (``kafka-configs.sh --alter --entity-type topics --entity-name events
    --add-config message.timestamp.type=LogAppendTime``).

    ``model-updates`` is neither compacted nor deleted by age: its key is the version,
    shared by every chunk of one update, so compaction would keep a snapshot's last chunk
    only; and by age, a trainer quiet for longer than the retention would let its latest
    snapshot expire (late starters would find no base) while a busy one kept the whole
    period. Instead the trainer, once a new snapshot is acknowledged, deletes the records
    before the previous one (`rtrank.streams.trainer.model_updates.delete_before`): the
    topic holds the latest snapshot, the one before it (a late starter may be reading it)
    and the deltas after them, about ``2 * snapshot_every`` versions whatever the age.
    A topic created earlier with 7 days gets this retention from the trainer at its start
    (`rtrank.streams.trainer.model_updates.keep_until_deleted`).

    The changelogs and the leader topic are Faust's; creating them here gives them the same
    replication and configs (Faust would give them its own). The catalogue's changelog was
    also, left to Faust, created during the first rebalance, missing from the metadata the
    assignor read, and the worker hung in recovery (seen under load).
    """
    n, r = settings.partitions, settings.replication_factor

    def spec(role: str, name: str, partitions: int, retention: dict[str, str], **kw) -> TopicSpec:
        configs = {**retention, "min.insync.replicas": str(settings.min_insync_replicas)}
        return TopicSpec(role, name, partitions, r, configs, **kw)

    return [
        spec("events", settings.events_topic, n, {**kept_for(7), **stamped_by_broker()}),
        spec("recommendations", settings.recommendations_topic, n, kept_for(1)),
        spec("dlq", settings.dlq_topic, n, kept_for(30)),
        spec("training", settings.training_topic, n, kept_for(7)),
        spec("model_updates", settings.model_updates_topic, 1, trimmed_by_writer()),
        spec("items", settings.items_topic, n, compacted()),
        spec("items_dlq", settings.items_dlq_topic, n, kept_for(30)),
        spec("rank_requests", settings.rank_requests_topic, n, kept_for(1)),
        spec("rank_responses", settings.rank_responses_topic, n, kept_for(1)),
        spec("item_to_info_changelog", changelog(settings, "item_to_info"), n, compacted(),
             declared=False),
        spec("user_to_history_changelog", changelog(settings, "user_to_history"), n,
             compacted(), declared=False),
        spec("leader", leader_topic(settings), 1, kept_for(1), declared=False),
    ]  # fmt: skip


def topic_spec(settings: Settings, role: str) -> TopicSpec:
    """The spec of ``role`` in `topic_specs`."""
    return next(spec for spec in topic_specs(settings) if spec.role == role)


def topic_names(settings: Settings) -> list[str]:
    """The names of `topic_specs`, in their order."""
    return [spec.name for spec in topic_specs(settings)]


def changelog(settings: Settings, table: str) -> str:
    """The changelog of ``table`` (Faust's naming)."""
    return f"{settings.app_id}-{table}-changelog"


def catalogue_changelog(settings: Settings) -> str:
    """The changelog of the ``item_to_info`` GlobalTable."""
    return changelog(settings, "item_to_info")


def leader_topic(settings: Settings) -> str:
    """The topic Faust's assignor assigns to one worker to elect the group's leader."""
    return f"{settings.app_id}-__assignor-__leader"


@dataclass(frozen=True)
class Topics:
    """The app's topics, one per declared `TopicSpec`, by role."""

    events: faust.TopicT
    recommendations: faust.TopicT
    dlq: faust.TopicT
    training: faust.TopicT
    model_updates: faust.TopicT
    items: faust.TopicT
    items_dlq: faust.TopicT
    rank_requests: faust.TopicT
    rank_responses: faust.TopicT


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    """Declare every topic of `topic_specs` that Faust does not declare itself on ``app``."""
    return Topics(
        **{
            spec.role: app.topic(
                spec.name,
                partitions=spec.partitions,
                replicas=spec.replicas,
                config=dict(spec.configs),
                **RAW,
            )
            for spec in topic_specs(settings)
            if spec.declared
        }
    )


# -- Tables ----------------------------------------------------------------------------------


def json_table_schema() -> faust.Schema:
    """Tables keyed by a UTF-8 id (user or item) whose values are JSON objects."""
    return faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")


@dataclass(frozen=True)
class Tables:
    """The app's tables; ``items`` is ``item_to_info``'s dict (`keep_in_memory`)."""

    user_to_history: faust.Table
    item_to_info: faust.GlobalTable
    items: ChangedItems


def declare_tables(app: faust.App, settings: Settings) -> Tables:
    """Declare the tables on ``app``.

    ``user_to_history`` is partitioned like ``events`` (co-partitioned: a user's state
    lives where the user's events are read), in the app's store. ``item_to_info`` is a
    GlobalTable (every worker holds the whole catalogue), kept in memory and recovered from
    its changelog at start: it is small, and copied to the model process; its dict, a
    `ChangedItems`, remembers what changed for the model process's next call. Their
    changelogs get the configs of their `topic_specs` (Faust adds compaction).
    """
    user_to_history = app.Table(
        "user_to_history",
        default=None,
        partitions=settings.partitions,
        schema=json_table_schema(),
        extra_topic_configs=dict(topic_spec(settings, "user_to_history_changelog").configs),
        help="user_id -> UserState (recent items, seen items, last applied offset)",
    )
    item_to_info = app.GlobalTable(
        "item_to_info",
        default=None,
        partitions=settings.partitions,
        schema=json_table_schema(),
        extra_topic_configs=dict(topic_spec(settings, "item_to_info_changelog").configs),
        help="item_id -> ItemInfo (availability, category, tags, boost, created_at)",
    )
    items = ChangedItems(max_items=settings.catalogue_max_items)
    keep_in_memory(item_to_info, items)
    return Tables(user_to_history, item_to_info, items)


# -- On the broker ---------------------------------------------------------------------------


class TopicLayoutError(RuntimeError):
    """The topics cannot be laid out as configured: an existing topic's partition count
    would break co-partitioning, or the cluster has fewer brokers than replicas asked."""


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> dict[str, int]:
    """Create the missing topics of `topic_specs`; return name -> partitions.

    Raises:
        TopicLayoutError: ``events`` exists with another partition count than configured,
            or ``RTRANK_REPLICATION_FACTOR`` exceeds the brokers registered.
    """
    counts = _retrying(lambda: _create_missing(settings, timeout_s), timeout_s)
    if counts.get(settings.events_topic, settings.partitions) != settings.partitions:
        raise TopicLayoutError(
            f"topic {settings.events_topic!r} has {counts[settings.events_topic]} partitions but "
            f"RTRANK_PARTITIONS={settings.partitions}; the user table must be co-partitioned "
            "with it: set RTRANK_PARTITIONS to match or recreate the topic"
        )
    return counts


def _retrying(action: Callable[[], T], timeout_s: float) -> T:
    """``action()``, again while it fails to connect, for up to ``timeout_s``.

    For seconds after a broker of a cluster dies, the cluster still lists it as alive
    (until its session with the controller times out); kafka-python's admin client may send
    to it and fail at once instead of asking another broker.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return action()
        except KafkaConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _create_missing(settings: Settings, timeout_s: float) -> dict[str, int]:
    admin = _admin(settings, timeout_s)
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in topic_specs(settings) if spec.name not in existing]
        if missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            spec.partitions,
                            spec.replicas,
                            topic_configs=dict(spec.configs),
                        )
                        for spec in missing
                    ],
                    timeout_ms=int(timeout_s * 1000),
                )
            except TopicAlreadyExistsError:
                pass  # another process created them in between: fine
            except InvalidReplicationFactorError:
                brokers = len(admin.describe_cluster()["brokers"])
                raise TopicLayoutError(
                    f"RTRANK_REPLICATION_FACTOR={settings.replication_factor} but the cluster "
                    f"at {settings.bootstrap_servers} has {brokers} broker(s) registered"
                ) from None
        return _partition_counts(admin, topic_names(settings), timeout_s)
    finally:
        admin.close()


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
        **client_config(settings),
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
