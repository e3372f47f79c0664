"""Every topic and table, declared once: which topics rtrank creates up front, with which
partitions, replication, retention and cleanup policy, and what the app declares from the
same list."""

from __future__ import annotations

from rtrank.streams.catalogue import ChangedItems
from rtrank.streams.settings import Settings
from rtrank.streams.worker.app import RtrankApp
from rtrank.streams.worker.topics_and_tables import (
    DAY_MS,
    catalogue_changelog,
    changelog,
    declare_tables,
    declare_topics,
    leader_topic,
    topic_names,
    topic_spec,
    topic_specs,
)


def test_every_configured_topic_and_fausts_own_are_created_up_front() -> None:
    settings = Settings()
    configured = {value for name, value in vars(settings).items() if name.endswith("_topic")}
    fausts = {
        catalogue_changelog(settings),
        changelog(settings, "user_to_history"),
        leader_topic(settings),
    }
    assert configured | fausts == set(topic_names(settings))


def test_only_the_catalogue_and_the_tables_changelogs_are_compacted() -> None:
    settings = Settings()
    compacted = {s.name for s in topic_specs(settings) if s.configs["cleanup.policy"] == "compact"}
    assert compacted == {
        settings.items_topic,
        catalogue_changelog(settings),
        changelog(settings, "user_to_history"),
    }
    kept = [s.configs for s in topic_specs(settings) if s.name in compacted]
    assert all("retention.ms" not in configs for configs in kept)


def test_every_other_topic_but_model_updates_is_deleted_by_age_after_its_stated_days() -> None:
    settings = Settings()
    days = {
        s.role: int(s.configs["retention.ms"]) / DAY_MS
        for s in topic_specs(settings)
        if s.configs["cleanup.policy"] == "delete" and s.role != "model_updates"
    }
    assert days == {
        "events": 7,
        "recommendations": 1,
        "dlq": 30,
        "training": 7,
        "items_dlq": 30,
        "rank_requests": 1,
        "rank_responses": 1,
        "leader": 1,
    }


def test_model_updates_is_never_deleted_by_age_or_size_only_trimmed_by_the_trainer() -> None:
    configs = topic_spec(Settings(), "model_updates").configs
    assert (configs["cleanup.policy"], configs["retention.ms"], configs["retention.bytes"]) == (
        "delete",
        "-1",
        "-1",
    )


def test_every_topic_has_the_configured_replication_and_min_insync_replicas() -> None:
    settings = Settings(replication_factor=3, min_insync_replicas=2)
    assert {s.replicas for s in topic_specs(settings)} == {3}
    assert {s.configs["min.insync.replicas"] for s in topic_specs(settings)} == {"2"}


def test_by_default_topics_fit_one_broker() -> None:
    specs = topic_specs(Settings())
    assert {(s.replicas, s.configs["min.insync.replicas"]) for s in specs} == {(1, "1")}


def test_model_updates_and_the_leader_topic_have_one_partition_the_rest_the_configured_count() -> (
    None
):
    settings = Settings(partitions=6)
    counts = {s.name: s.partitions for s in topic_specs(settings)}
    assert counts.pop(settings.model_updates_topic) == 1
    assert counts.pop(leader_topic(settings)) == 1
    assert set(counts.values()) == {6}


def _app(tmp_path, **changes: object) -> RtrankApp:  # noqa: ANN001 - pytest's tmp_path
    return RtrankApp(Settings(broker="memory://", store="memory://", data_dir=tmp_path, **changes))


def test_the_app_declares_every_created_topic_but_those_faust_declares(tmp_path) -> None:
    app = _app(tmp_path)
    topics = declare_topics(app, app.settings)
    declared = {t.get_topic_name() for t in vars(topics).values()}
    assert declared == set(topic_names(app.settings)) - {
        catalogue_changelog(app.settings),
        changelog(app.settings, "user_to_history"),
        leader_topic(app.settings),
    }


def test_declared_topics_have_the_partitions_replicas_and_configs_they_are_created_with(
    tmp_path,
) -> None:
    app = _app(tmp_path, partitions=6, replication_factor=3, min_insync_replicas=2)
    topics = declare_topics(app, app.settings)
    specs = {s.name: s for s in topic_specs(app.settings)}
    for topic in vars(topics).values():
        spec = specs[topic.get_topic_name()]
        assert (topic.partitions, topic.replicas, dict(topic.config or {})) == (
            spec.partitions,
            spec.replicas,
            spec.configs,
        )


def test_fausts_own_topics_get_the_configured_replication(tmp_path) -> None:
    app = _app(tmp_path, replication_factor=3, min_insync_replicas=2)
    assert app.conf.topic_replication_factor == 3


def test_the_tables_changelogs_get_the_configs_they_are_created_with(tmp_path) -> None:
    app = _app(tmp_path, replication_factor=3, min_insync_replicas=2)
    tables = declare_tables(app, app.settings)
    specs = {s.name: s for s in topic_specs(app.settings)}
    for table in (tables.user_to_history, tables.item_to_info):
        topic = table.changelog_topic
        assert dict(topic.config) == specs[topic.get_topic_name()].configs


def test_the_user_tables_changelog_created_up_front_is_the_one_faust_uses(tmp_path) -> None:
    app = _app(tmp_path)
    tables = declare_tables(app, app.settings)
    changelog_name = tables.user_to_history.changelog_topic.get_topic_name()
    assert changelog_name == changelog(app.settings, "user_to_history")


def test_the_leader_topic_created_up_front_is_the_one_fausts_assignor_uses(tmp_path) -> None:
    app = _app(tmp_path, replication_factor=3, min_insync_replicas=2)
    topic = app._leader_assignor._leader_topic
    assert (topic.get_topic_name(), topic.partitions, topic.replicas) == (
        leader_topic(app.settings),
        1,
        3,
    )


def test_the_catalogue_changelog_created_up_front_is_the_one_faust_uses(tmp_path) -> None:
    app = _app(tmp_path)
    tables = declare_tables(app, app.settings)
    changelog = tables.item_to_info.changelog_topic.get_topic_name()
    assert changelog == catalogue_changelog(app.settings)


def test_the_user_table_is_partitioned_like_the_events_topic(tmp_path) -> None:
    app = _app(tmp_path, partitions=6)
    tables = declare_tables(app, app.settings)
    assert tables.user_to_history.partitions == 6
    assert tables.user_to_history.name == "user_to_history"


def test_the_catalogue_table_reads_the_dict_the_model_process_is_fed_from(tmp_path) -> None:
    app = _app(tmp_path)
    tables = declare_tables(app, app.settings)
    assert isinstance(tables.items, ChangedItems)
    tables.items["i1"] = {"available": True}
    assert tables.item_to_info.get("i1") == {"available": True}


def test_the_catalogue_copy_is_bounded_by_its_setting(tmp_path) -> None:
    app = _app(tmp_path, catalogue_max_items=7)
    assert declare_tables(app, app.settings).items.max_items == 7


def test_events_carry_the_brokers_append_time_the_user_table_expires_by() -> None:
    configs = topic_spec(Settings(), "events").configs
    assert configs["message.timestamp.type"] == "LogAppendTime"
