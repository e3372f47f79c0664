"""A run's topics on a real broker: created with the run, deleted with it, no one else's."""

from __future__ import annotations

from kafka import KafkaAdminClient

from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import delete_run_topics, ensure_topics, topic_names
from tests.integration.conftest import wait_for


def broker_topics(settings: Settings) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_deleting_a_runs_topics_removes_them_and_keeps_other_runs_topics(settings) -> None:
    mine, other = settings.isolated("bench-aaaa1111"), settings.isolated("bench-bbbb2222")
    ensure_topics(mine)
    ensure_topics(other)
    deleted = delete_run_topics(mine, "bench-aaaa1111")
    assert set(topic_names(mine)) <= set(deleted)
    wait_for(
        lambda: not any("bench-aaaa1111" in name for name in broker_topics(mine)),
        timeout_s=30,
        message="the run's topics are still listed",
    )
    assert set(topic_names(other)) <= broker_topics(other)
