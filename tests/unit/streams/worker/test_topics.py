"""Every topic and table, declared once: which topics rtrank creates up front, with which
partitions and cleanup policy, and what the app declares from the same list."""

from __future__ import annotations

from rtrank.streams.catalogue import ChangedItems
from rtrank.streams.settings import Settings
from rtrank.streams.worker.app import RtrankApp
from rtrank.streams.worker.topics_and_tables import (
    catalogue_changelog,
    declare_tables,
    declare_topics,
    topic_names,
    topic_specs,
)


def test_every_configured_topic_is_created_up_front() -> None:
    settings = Settings()
    configured = {value for name, value in vars(settings).items() if name.endswith("_topic")}
    assert configured | {catalogue_changelog(settings)} == set(topic_names(settings))


def test_only_the_catalogue_and_its_changelog_are_compacted() -> None:
    settings = Settings()
    compacted = {s.name for s in topic_specs(settings) if s.configs}
    assert compacted == {settings.items_topic, catalogue_changelog(settings)}
    assert all(
        s.configs == {"cleanup.policy": "compact"} for s in topic_specs(settings) if s.configs
    )


def test_model_updates_have_one_partition_and_the_rest_the_configured_count() -> None:
    settings = Settings(partitions=6)
    counts = {s.name: s.partitions for s in topic_specs(settings)}
    assert counts.pop(settings.model_updates_topic) == 1
    assert set(counts.values()) == {6}


def _app(tmp_path, **changes: object) -> RtrankApp:  # noqa: ANN001 - pytest's tmp_path
    return RtrankApp(Settings(broker="memory://", store="memory://", data_dir=tmp_path, **changes))


def test_the_app_declares_every_created_topic_but_the_changelog_faust_declares(tmp_path) -> None:
    app = _app(tmp_path)
    topics = declare_topics(app, app.settings)
    declared = {t.get_topic_name() for t in vars(topics).values()}
    assert declared == set(topic_names(app.settings)) - {catalogue_changelog(app.settings)}


def test_declared_topics_have_the_partitions_and_configs_they_are_created_with(tmp_path) -> None:
    app = _app(tmp_path, partitions=6)
    topics = declare_topics(app, app.settings)
    specs = {s.name: s for s in topic_specs(app.settings)}
    for topic in vars(topics).values():
        spec = specs[topic.get_topic_name()]
        assert (topic.partitions, dict(topic.config or {})) == (spec.partitions, spec.configs)


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
