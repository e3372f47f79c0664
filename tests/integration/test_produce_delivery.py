"""`send_events` against a real broker that refuses every write: it says how many events
were not delivered instead of returning as if they were."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from rtrank.streams.cli.produce import DeliveryError, send_events
from rtrank.streams.settings import Settings


def test_events_the_broker_refuses_are_reported_as_not_delivered(settings: Settings) -> None:
    # A topic whose largest message is smaller than any event: the broker refuses each batch.
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        admin.create_topics(
            [NewTopic(settings.events_topic, 1, 1, topic_configs={"max.message.bytes": "64"})]
        )
    finally:
        admin.close()
    events = [{"user_id": f"u{n}", "item_id": "i", "event_type": "view"} for n in range(20)]
    with pytest.raises(DeliveryError, match=r"20 of 20 events were not delivered") as e:
        send_events(settings, events, progress=False)
    assert "TooLarge" in str(e.value)
