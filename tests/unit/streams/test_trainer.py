"""The trainer reads training examples defensively (a bad record is skipped, never fatal)
and steps on full batches."""

from __future__ import annotations

import json

import pytest

from model.online import Example
from streams.trainer import PendingExamples, parse_example


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


def example(item: str) -> Example:
    return Example(("a",), item, 1, 1.0)


def test_pending_examples_wait_for_a_full_batch():
    pending = PendingExamples()
    for offset in range(3):
        pending.add(0, offset + 1, example(f"i{offset}"))
    assert not pending.ready(batch=4, max_wait_s=60)
    pending.add(1, 1, example("j"))
    assert pending.ready(batch=4, max_wait_s=60)


def test_pending_examples_step_on_fewer_once_the_oldest_has_waited():
    pending = PendingExamples()
    pending.add(0, 1, example("i"))
    assert pending.ready(batch=256, max_wait_s=0.0)


def test_taking_a_batch_frees_only_the_offsets_it_took_malformed_records_included():
    pending = PendingExamples()
    pending.add(0, 1, example("a"))
    pending.add(0, 2, None)
    pending.add(1, 7, example("b"))
    pending.add(0, 3, example("c"))
    taken, offsets = pending.take(2)
    assert [e.item_id for e in taken] == ["a", "b"]
    assert offsets == {0: 2, 1: 7}
    assert pending.examples == 1 and len(pending.entries) == 1
