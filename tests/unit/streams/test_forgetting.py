"""The forget request's wire format: what marks it, and the user it names."""

from __future__ import annotations

import json

from rtrank.streams.forgetting import Forget, forget_record, is_forget, parse_forget
from rtrank.streams.validation import Limits, Rejection


def test_a_request_is_keyed_by_the_user_and_marked_by_its_header() -> None:
    key, value, headers = forget_record("u1", now_ms=1_700_000_000_000)
    assert key == b"u1"
    assert json.loads(value) == {"user_id": "u1", "requested_at": 1_700_000_000_000}
    assert is_forget(headers)


def test_a_record_without_the_header_is_no_request() -> None:
    assert not is_forget(None)
    assert not is_forget([])
    assert not is_forget([("rtrank-request", b"something-else"), ("other", b"forget")])


def test_the_header_is_read_from_a_mapping_too() -> None:
    assert is_forget({"rtrank-request": b"forget"})


def test_the_request_names_the_user_of_its_key() -> None:
    assert parse_forget(b"u1", Limits()) == Forget("u1")


def test_a_request_without_a_key_is_rejected() -> None:
    rejection = parse_forget(None, Limits())
    assert isinstance(rejection, Rejection) and rejection.code == "missing_key"


def test_a_request_whose_key_is_not_utf8_is_rejected() -> None:
    assert parse_forget(b"\xff", Limits()).code == "key_not_utf8"


def test_a_request_whose_key_is_no_valid_user_id_is_rejected() -> None:
    assert parse_forget(b"u\x001", Limits()).code == "bad_characters"
    assert parse_forget(b"x" * 300, Limits(max_id_bytes=256)).code == "id_too_long"
