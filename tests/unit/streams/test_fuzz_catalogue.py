"""Fuzzing the catalogue parser: every record is an `ItemInfo` or a `Rejection`."""

from __future__ import annotations

import math

from hypothesis import given

from rtrank.streams.catalogue import ItemInfo, parse_item
from rtrank.streams.validation import Limits, Rejection
from tests.unit.streams.fuzz_inputs import (
    FUZZ,
    assert_rejected_with_a_reason,
    assert_writable_id,
    raw_keys,
    raw_values,
)

GOOD = {"item_id": "i1", "available": True, "category": "c", "tags": ["t"], "boost": 0.5}


@FUZZ
@given(key=raw_keys, value=raw_values(GOOD))
def test_every_catalogue_record_is_accepted_or_rejected_with_a_reason(key, value) -> None:
    result = parse_item(key, value, Limits())
    if isinstance(result, Rejection):
        assert_rejected_with_a_reason(result)
        return
    assert isinstance(result, ItemInfo)
    assert_writable_id(result.item_id)
    assert math.isfinite(result.boost)
    assert ItemInfo.from_json(result.to_json()) == result


# The corpus: inputs the fuzzing found, each kept as a plain test.


def test_a_catalogue_record_whose_item_id_has_4301_digits_is_rejected_not_raised() -> None:
    value = b'{"item_id":-' + b"1" * 4301 + b',"available":true}'
    result = parse_item(None, value, Limits())
    assert isinstance(result, Rejection) and result.code == "number_too_large"


def test_a_catalogue_record_that_is_one_4301_digit_integer_is_rejected_not_raised() -> None:
    result = parse_item(None, b"-" + b"1" * 4301, Limits())
    assert isinstance(result, Rejection) and result.code == "number_too_large"


def test_a_catalogue_record_with_an_infinite_boost_literal_is_rejected() -> None:
    result = parse_item(None, b'{"item_id":"i","available":true,"boost":Infinity}', Limits())
    assert isinstance(result, Rejection) and result.code == "non_finite_number"
