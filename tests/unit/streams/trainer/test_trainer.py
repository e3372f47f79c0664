"""The trainer reads training examples defensively: a bad record is skipped, never fatal."""

from __future__ import annotations

import json

import pytest

from rtrank.model.online import Example
from rtrank.streams.trainer.online_trainer import parse_example


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
