"""A version counts as published only once every message is acknowledged; each new snapshot
deletes what precedes the previous one, so model-updates stays bounded."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError, NotEnoughReplicasError, UnknownError
from kafka.future import Future

from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import (
    PublishError,
    flush,
    keep_until_deleted,
    send_update,
)
from rtrank.streams.trainer.online_trainer import Trainer

MESSAGES = [(b"7", b"chunk-0"), (b"7", b"chunk-1"), (b"7", b"chunk-2")]


class ResolvingProducer:
    """Stands for a KafkaProducer: at ``flush`` message n lands at offset ``first + n``, or
    fails when n is in ``fail``; ``send`` itself refuses from message ``refuse_from``."""

    def __init__(self, first: int = 100, fail: set[int] = frozenset(), refuse_from=None) -> None:
        self.first, self.fail, self.refuse_from = first, fail, refuse_from
        self.futures: list[Future] = []

    def send(self, topic: str, key: bytes, value: bytes, partition: int) -> Future:
        if len(self.futures) == self.refuse_from:
            raise KafkaTimeoutError("no metadata for the topic")
        self.futures.append(Future())
        return self.futures[-1]

    def flush(self) -> None:
        for n, future in enumerate(self.futures):
            if n in self.fail:
                future.failure(NotEnoughReplicasError())
            else:
                future.success(SimpleNamespace(offset=self.first + n))


def test_an_acknowledged_update_gives_the_offsets_of_its_messages() -> None:
    assert send_update(ResolvingProducer(first=100), "model-updates", MESSAGES, 7) == [
        100,
        101,
        102,
    ]


def test_an_update_with_a_message_not_acknowledged_is_not_published() -> None:
    with pytest.raises(PublishError, match=r"version 7 not published: 1 of 3 message\(s\)"):
        send_update(ResolvingProducer(fail={2}), "model-updates", MESSAGES, 7)


def test_an_update_whose_send_is_refused_is_not_published() -> None:
    with pytest.raises(PublishError, match=r"version 7 not published: message 2 of 3"):
        send_update(ResolvingProducer(refuse_from=1), "model-updates", MESSAGES, 7)


def test_a_flush_interrupted_by_a_split_batch_is_flushed_again() -> None:
    class SplittingProducer:
        """kafka-python's flush raises while batches it split are still in flight."""

        def __init__(self) -> None:
            self.flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            if self.flushes < 3:
                raise UnknownError("Future not done")

    producer = SplittingProducer()
    flush(producer)
    assert producer.flushes == 3


class RecordingAdmin:
    """Stands for a KafkaAdminClient's delete_records; fails while ``down``."""

    def __init__(self) -> None:
        self.deleted: list[int] = []
        self.down = False

    def delete_records(self, records: dict) -> dict:
        if self.down:
            raise KafkaTimeoutError("broker unreachable")
        [(tp, offset)] = records.items()
        assert tp == TopicPartition("model-updates", 0)
        self.deleted.append(offset)
        return {tp: {"low_watermark": offset}}


@pytest.fixture
def trainer() -> Trainer:
    trainer = Trainer(Settings())
    trainer.admin = RecordingAdmin()
    trainer.snapshot_offset, trainer.first_offset = None, 0
    return trainer


def sample(trainer: Trainer, name: str) -> float | None:
    return trainer.metrics.registry.get_sample_value(name)


def test_the_first_snapshot_deletes_nothing(trainer) -> None:
    trainer._snapshot_published(0)
    assert trainer.admin.deleted == []


def test_a_new_snapshot_deletes_the_records_before_the_previous_one(trainer) -> None:
    for offset in (0, 40, 95):
        trainer._snapshot_published(offset)
    assert trainer.admin.deleted == [40]
    assert sample(trainer, "rtrank_trainer_trimmed_records_total") == 40
    assert sample(trainer, "rtrank_trainer_updates_first_offset") == 40


def test_a_resumed_trainer_deletes_before_the_snapshot_it_resumed_from(trainer) -> None:
    trainer.snapshot_offset, trainer.first_offset = 60, 20  # as `resume` found the topic
    trainer._snapshot_published(90)
    assert trainer.admin.deleted == [60]
    assert sample(trainer, "rtrank_trainer_trimmed_records_total") == 40


def test_a_failed_deletion_is_logged_and_the_next_snapshot_deletes_further(trainer, caplog) -> None:
    trainer._snapshot_published(0)
    trainer._snapshot_published(40)
    trainer.admin.down = True
    with caplog.at_level(logging.WARNING):
        trainer._snapshot_published(95)
    assert "not trimmed before offset 40" in caplog.text
    trainer.admin.down = False
    trainer._snapshot_published(150)
    assert trainer.admin.deleted == [95]
    assert sample(trainer, "rtrank_trainer_trimmed_records_total") == 95


class ConfigAdmin:
    """Stands for a KafkaAdminClient's alter_configs, answering ``outcome``."""

    def __init__(self, outcome: str) -> None:
        self.outcome, self.altered = outcome, []

    def alter_configs(self, resources: list) -> dict:
        self.altered.extend((r.name, r.configs) for r in resources)
        return {"topic": {r.name: self.outcome for r in resources}}


def test_the_topic_is_given_its_retention_settings_only() -> None:
    admin = ConfigAdmin("OK")
    configs = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
    assert keep_until_deleted(admin, "model-updates", configs)
    assert admin.altered == [("model-updates", {"retention.ms": "-1", "retention.bytes": "-1"})]


def test_a_refused_retention_change_is_logged_not_raised(caplog) -> None:
    admin = ConfigAdmin("[Error 29] TopicAuthorizationFailedError")
    with caplog.at_level(logging.WARNING):
        assert not keep_until_deleted(admin, "model-updates", {"retention.ms": "-1"})
    assert "model-updates keeps its retention (" in caplog.text
