"""Fuzzing the events parser: every input is an `Event` or a `Rejection`, nothing raises."""

from __future__ import annotations

import json

from hypothesis import given

from rtrank.streams.records import Event, compact_json
from rtrank.streams.validation import Limits, Rejection, parse_event
from tests.unit.streams.fuzz_inputs import (
    FUZZ,
    assert_rejected_with_a_reason,
    assert_writable_id,
    raw_keys,
    raw_values,
)

GOOD = {"user_id": "u1", "item_id": "i1", "event_type": "view", "ts": 1_700_000_000_000}
NOW = 1_700_000_100_000


@FUZZ
@given(key=raw_keys, value=raw_values(GOOD))
def test_every_event_record_is_accepted_or_rejected_with_a_reason(key, value) -> None:
    result = parse_event(key, value, Limits(), now_ms=NOW)
    if isinstance(result, Rejection):
        assert_rejected_with_a_reason(result)
        return
    assert isinstance(result, Event)
    for name in ("user_id", "item_id", "event_type"):
        assert_writable_id(getattr(result, name))
    assert 946_684_800_000 <= result.ts <= NOW + Limits().max_clock_skew_ms
    compact_json(result.extra)  # extra fields are plain JSON again


# The corpus: inputs the fuzzing found (or the issue named), each kept as a plain test.


def reason(value: bytes, key: bytes | None = None) -> str:
    result = parse_event(key, value, Limits(), now_ms=NOW)
    assert isinstance(result, Rejection), result
    return result.code


def with_field(name: str, json_text: str) -> bytes:
    fields = {k: json.dumps(v) for k, v in GOOD.items()} | {name: json_text}
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


def test_an_event_holding_a_5000_digit_integer_is_rejected_not_raised() -> None:
    assert reason(with_field("extra", "9" * 5000)) == "number_too_large"


def test_an_event_whose_whole_value_is_a_4301_digit_integer_is_rejected() -> None:
    assert reason(b"9" * 4301) == "number_too_large"


def test_an_event_with_a_nan_literal_is_rejected() -> None:
    assert reason(with_field("price", "NaN")) == "non_finite_number"


def test_an_event_with_an_infinity_literal_is_rejected() -> None:
    assert reason(with_field("price", "-Infinity")) == "non_finite_number"


def test_an_event_with_a_number_beyond_float_range_is_rejected() -> None:
    assert reason(with_field("ts", "1e999")) == "non_finite_number"


def test_an_event_with_a_repeated_key_is_rejected() -> None:
    assert reason(with_field("ts", '1700000000000,"user_id":"someone-else"')) == "duplicate_key"


def test_an_event_nested_deeper_than_the_decoder_goes_is_rejected() -> None:
    assert reason(b"[" * 3000 + b"]" * 3000) == "not_json"


def test_an_event_with_a_tab_in_its_item_id_is_rejected() -> None:
    assert reason(with_field("item_id", '"a\\tb"')) == "bad_characters"


def test_an_event_with_a_c1_control_character_in_its_user_id_is_rejected() -> None:
    assert reason(with_field("user_id", '"u\\u0085"')) == "bad_characters"


def test_an_event_with_a_lone_surrogate_in_its_event_type_is_rejected() -> None:
    assert reason(with_field("event_type", '"\\udfff"')) == "bad_characters"
