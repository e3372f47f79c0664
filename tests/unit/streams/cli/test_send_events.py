"""`send_events` waits for every event's acknowledgement and says how many were not
delivered; `rtrank produce` then ends with one line and exit 1."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka.errors import KafkaTimeoutError, NotEnoughReplicasError
from kafka.future import Future

from rtrank.streams.cli import produce as produce_module
from rtrank.streams.cli.produce import DeliveryError, produce, send_all
from rtrank.streams.settings import Settings


class ResolvingProducer:
    """Stands for a KafkaProducer: resolves each send's future at ``flush``, failing the
    sends numbered in ``fail``; ``send`` itself refuses from send number ``refuse_from``."""

    def __init__(
        self,
        fail: set[int] = frozenset(),
        refuse_from: int | None = None,
        metadata_wait_s: float = 0.0,
    ) -> None:
        self.fail, self.refuse_from = fail, refuse_from
        self.metadata_wait_s = metadata_wait_s
        self.futures: list[Future] = []
        self.flushed = False

    def partitions_for(self, topic: str) -> set[int]:
        if self.metadata_wait_s < 0:
            raise KafkaTimeoutError(f"no metadata for {topic!r}")
        time.sleep(self.metadata_wait_s)
        return {0}

    def send(self, topic: str, key: str, value: dict) -> Future:
        if len(self.futures) == self.refuse_from:
            raise KafkaTimeoutError("no metadata for the topic")
        self.futures.append(Future())
        return self.futures[-1]

    def flush(self) -> None:
        self.flushed = True
        for n, future in enumerate(self.futures):
            if n in self.fail:
                future.failure(NotEnoughReplicasError())
            else:
                future.success(object())


def events(n: int) -> list[dict]:
    return [{"user_id": f"u{i}", "item_id": "i", "event_type": "view", "ts": i} for i in range(n)]


def test_every_event_acknowledged_is_a_success() -> None:
    producer = ResolvingProducer()
    send_all(producer, "events", events(5))
    assert producer.flushed and len(producer.futures) == 5


def test_events_not_acknowledged_are_counted_in_the_error() -> None:
    with pytest.raises(DeliveryError, match=r"2 of 5 events were not delivered to 'events'") as e:
        send_all(ResolvingProducer(fail={1, 3}), "events", events(5))
    assert "NotEnoughReplicas" in str(e.value)


def test_a_send_refused_stops_the_replay_and_counts_what_was_not_delivered() -> None:
    producer = ResolvingProducer(refuse_from=2)
    with pytest.raises(DeliveryError, match=r"3 of 5 events were not delivered") as e:
        send_all(producer, "events", events(5))
    assert "no metadata for the topic" in str(e.value)
    assert producer.flushed  # the two sent were still waited for


def test_the_pace_starts_once_the_producer_knows_the_topics_partitions() -> None:
    producer = ResolvingProducer(metadata_wait_s=0.5)
    seconds = send_all(producer, "events", events(3), rate=1000.0)
    assert len(producer.futures) == 3
    assert seconds < 0.5  # the metadata wait is before the pace's clock, not in it


def test_a_topic_whose_partitions_cannot_be_learnt_delivers_nothing() -> None:
    producer = ResolvingProducer(metadata_wait_s=-1)
    with pytest.raises(DeliveryError, match=r"5 of 5 events were not delivered") as e:
        send_all(producer, "events", events(5))
    assert "no metadata for 'events'" in str(e.value) and producer.futures == []


def test_produce_reports_undelivered_events_in_one_line_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def undelivered(settings: Settings, stream: list[dict], rate: float) -> tuple[int, float]:
        raise DeliveryError(f"{len(stream)} of {len(stream)} events were not delivered")

    monkeypatch.setattr(produce_module, "check_connection", lambda settings: None)
    monkeypatch.setattr(produce_module, "ensure_topics", lambda settings: {})
    monkeypatch.setattr(produce_module, "send_events", undelivered)
    path = tmp_path / "pairs.txt"
    path.write_text("1 2\n1 3\n")
    result = CliRunner().invoke(produce, [str(path), "--format", "pairs"], obj=Settings())
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == ("Error: 2 of 2 events were not delivered")
    assert "Traceback" not in result.output
