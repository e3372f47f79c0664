"""Fuzzing the training-examples parser: every record is an `Example` or None (skipped)."""

from __future__ import annotations

import math

from hypothesis import given

from rtrank.model.online import Example
from rtrank.streams.trainer.online_trainer import parse_example
from tests.unit.streams.fuzz_inputs import FUZZ, raw_values

GOOD = {"user_id": "u1", "prefix": ["a", "b"], "item_id": "c", "ts": 1_700_000_000_000}


@FUZZ
@given(value=raw_values(GOOD))
def test_every_training_example_record_is_parsed_or_skipped(value) -> None:
    result = parse_example(value)
    if result is None:
        return
    assert isinstance(result, Example)
    assert all(isinstance(i, str) and i for i in result.prefix)
    assert isinstance(result.item_id, str) and result.item_id
    assert 0 < result.weight < math.inf


# The corpus: inputs the fuzzing found, each kept as a plain test.


def test_a_training_example_nested_3000_deep_is_skipped_not_raised() -> None:
    assert parse_example(b"[" * 3000 + b"]" * 3000) is None


def test_a_training_example_with_a_5000_digit_integer_is_skipped() -> None:
    assert parse_example(b'{"prefix":[],"item_id":"i","ts":' + b"9" * 5000 + b"}") is None
