"""Every malformed event is rejected with its own reason; good events pass with extras kept."""

from __future__ import annotations

import json

import pytest

from rtrank.streams.records import Event
from rtrank.streams.settings import Settings
from rtrank.streams.validation import Limits, Rejection, parse_event

LIMITS = Limits(max_id_bytes=32, max_event_bytes=1024)
GOOD = {"user_id": "u1", "item_id": "i1", "event_type": "view", "ts": 1_700_000_000_000}


def encode(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_valid_event_is_parsed_and_extra_fields_are_kept() -> None:
    event = parse_event(b"u1", encode({**GOOD, "price": 9.5, "ctx": {"page": "home"}}), LIMITS)
    assert event == Event(
        "u1", "i1", "view", 1_700_000_000_000, {"price": 9.5, "ctx": {"page": "home"}}
    )


def test_integer_ids_become_strings() -> None:
    event = parse_event(None, encode({**GOOD, "user_id": 7, "item_id": 42}), LIMITS)
    assert (event.user_id, event.item_id) == ("7", "42")


def test_integral_float_timestamp_is_accepted() -> None:
    assert parse_event(None, encode({**GOOD, "ts": 1.7e12}), LIMITS).ts == 1_700_000_000_000


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        (None, None, "empty"),
        (None, b"x" * 2000, "too_large"),
        (None, b"\xff\xfe{}", "not_utf8"),
        (None, b"{not json", "not_json"),
        (None, b"[1, 2]", "not_object"),
        (None, encode({k: v for k, v in GOOD.items() if k != "item_id"}), "missing_field"),
        (None, encode({**GOOD, "ts": None}), "null_field"),
        (None, encode({**GOOD, "user_id": ["u1"]}), "wrong_type"),
        (None, encode({**GOOD, "item_id": True}), "wrong_type"),
        (None, encode({**GOOD, "event_type": 3}), "wrong_type"),
        (None, encode({**GOOD, "ts": "yesterday"}), "wrong_type"),
        (None, encode({**GOOD, "ts": 1.5e12 + 0.5}), "wrong_type"),
        (None, encode({**GOOD, "ts": 1_700_000_000}), "ts_out_of_range"),
        (None, encode({**GOOD, "item_id": "x" * 33}), "id_too_long"),
        (None, encode({**GOOD, "user_id": "  "}), "empty_id"),
        (None, encode({**GOOD, "item_id": "a\u0000b"}), "bad_characters"),
        (None, encode({**GOOD, "junk": [[[[[[[[[[1]]]]]]]]]]}), "too_nested"),
        (None, b"[" * 5000 + b"]" * 5000, "too_large"),
        (b"\xff", encode(GOOD), "key_not_utf8"),
        (b"someone-else", encode(GOOD), "key_mismatch"),
    ],
)
def test_malformed_event_is_rejected_with_its_reason(key, value, code) -> None:
    result = parse_event(key, value, LIMITS)
    assert isinstance(result, Rejection)
    assert result.code == code
    assert result.detail


def test_deep_json_within_size_limit_is_rejected_not_crashing() -> None:
    deep = b"[" * 3000 + b"]" * 3000
    result = parse_event(None, deep, Limits(max_event_bytes=10_000))
    assert isinstance(result, Rejection)
    assert result.code in ("not_json", "not_object")


def test_an_event_dated_more_than_the_allowed_skew_ahead_of_the_clock_is_rejected() -> None:
    now = 1_700_000_000_000
    limits = Limits(max_clock_skew_ms=300_000)
    result = parse_event(None, encode({**GOOD, "ts": now + 300_001}), limits, now_ms=now)
    assert isinstance(result, Rejection)
    assert result.code == "ts_in_future"


def test_an_event_dated_within_the_allowed_skew_ahead_of_the_clock_is_accepted() -> None:
    now = 1_700_000_000_000
    limits = Limits(max_clock_skew_ms=300_000)
    event = parse_event(None, encode({**GOOD, "ts": now + 300_000}), limits, now_ms=now)
    assert event.ts == now + 300_000


def test_an_event_dated_2099_is_rejected_against_the_wall_clock() -> None:
    result = parse_event(None, encode({**GOOD, "ts": 4_070_908_800_000}), LIMITS)
    assert isinstance(result, Rejection)
    assert result.code == "ts_in_future"


def test_the_limits_follow_the_settings() -> None:
    limits = Limits.from_settings(
        Settings(max_id_bytes=9, max_event_bytes=99, max_clock_skew_s=1.5)
    )
    assert limits == Limits(max_id_bytes=9, max_event_bytes=99, max_clock_skew_ms=1500)
