"""Which topics rtrank creates up front, with which partitions and cleanup policy."""

from __future__ import annotations

from dataclasses import fields

from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import (
    catalogue_changelog,
    configs_of,
    partitions_of,
    topic_names,
)


def test_every_configured_topic_is_created_up_front() -> None:
    settings = Settings()
    configured = {getattr(settings, f.name) for f in fields(settings) if f.name.endswith("_topic")}
    assert configured | {catalogue_changelog(settings)} == set(topic_names(settings))


def test_only_the_catalogue_and_its_changelog_are_compacted() -> None:
    settings = Settings()
    compacted = {n for n in topic_names(settings) if configs_of(settings, n)}
    assert compacted == {settings.items_topic, catalogue_changelog(settings)}


def test_model_updates_have_one_partition_and_the_rest_the_configured_count() -> None:
    settings = Settings(partitions=6)
    counts = {n: partitions_of(settings, n) for n in topic_names(settings)}
    assert counts.pop(settings.model_updates_topic) == 1
    assert set(counts.values()) == {6}
