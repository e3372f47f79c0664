"""The trainer reads training examples defensively: a bad record is skipped, never fatal."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from rtrank.model.online import Example, ReplayBuffer
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.online_trainer import Trainer, forgotten_user, parse_example


def record(**fields: object) -> bytes:
    return json.dumps({"prefix": ["a", "b"], "item_id": "c", "ts": 5, **fields}).encode()


def test_an_example_keeps_its_prefix_item_time_and_weight() -> None:
    assert parse_example(record(weight=8)) == Example(("a", "b"), "c", 5, 8.0)


def test_an_example_without_a_weight_counts_once() -> None:
    assert parse_example(record()).weight == 1.0


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[1, 2]",
        None,
        record(prefix="a b"),
        record(item_id=""),
        record(ts="now"),
        record(weight=0),
        record(weight=-1),
        record(weight="heavy"),
        record(weight=True),
    ],
)
def test_a_malformed_example_is_skipped(value: bytes | None) -> None:
    assert parse_example(value) is None


def test_an_example_keeps_its_user() -> None:
    assert parse_example(record(user_id="u1")).user_id == "u1"


def test_an_example_whose_user_is_not_a_string_is_skipped() -> None:
    assert parse_example(record(user_id=7)) is None


def test_a_tombstone_forgets_the_user_of_its_key() -> None:
    assert forgotten_user(SimpleNamespace(key=b"u1", value=None)) == "u1"


def test_an_example_or_a_keyless_record_forgets_nobody() -> None:
    assert forgotten_user(SimpleNamespace(key=b"u1", value=record())) is None
    assert forgotten_user(SimpleNamespace(key=None, value=None)) is None


def test_the_trainer_removes_a_forgotten_users_examples_from_its_buffer_and_counts_it() -> None:
    trainer = Trainer(Settings())
    trainer.learner = SimpleNamespace(buffer=ReplayBuffer(10, 10))
    trainer.learner.buffer.add(Example(("a",), "b", 0, 1.0, "u1"))
    trainer.learner.buffer.add(Example(("a",), "c", 0, 1.0, "u2"))
    trainer._forget("u1")
    assert [e.user_id for e in trainer.learner.buffer.recent] == ["u2"]
    assert trainer.metrics.registry.get_sample_value("rtrank_trainer_users_forgotten_total") == 1
