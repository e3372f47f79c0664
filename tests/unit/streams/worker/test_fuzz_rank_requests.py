"""Fuzzing the rank-request parser: every request is parsed or gets an error response."""

from __future__ import annotations

import json

from hypothesis import given

from rtrank.streams.validation import Limits, Rejection
from rtrank.streams.worker.rank_requests import (
    RankRequest,
    error_response,
    parse_rank_request,
    request_id_of,
)
from tests.unit.streams.fuzz_inputs import (
    FUZZ,
    assert_rejected_with_a_reason,
    assert_writable_id,
    raw_keys,
    raw_values,
)

GOOD = {"request_id": "r1", "user_id": "u1", "candidates": ["a", 2], "k": 1, "context": {}}


@FUZZ
@given(key=raw_keys, value=raw_values(GOOD))
def test_every_rank_request_is_parsed_or_answered_with_an_error(key, value) -> None:
    result = parse_rank_request(value, Limits())
    if isinstance(result, Rejection):
        assert_rejected_with_a_reason(result)
        rid = request_id_of(value, key)
        response = json.loads(error_response(rid, result))
        assert response["error"]["code"] == result.code
        if rid is not None:
            rid.encode("utf-8")  # the response's key
        return
    assert isinstance(result, RankRequest)
    for name in ("request_id", "user_id"):
        assert_writable_id(getattr(result, name))
    for candidate in result.candidates:
        assert_writable_id(candidate)
    assert all(isinstance(i, str) for i in result.history)


# The corpus: inputs the fuzzing found, each kept as a plain test.


def test_a_request_whose_request_id_has_4301_digits_is_answered_with_an_error() -> None:
    value = b'{"request_id":-' + b"1" * 4301 + b',"user_id":"u","candidates":[]}'
    result = parse_rank_request(value, Limits())
    assert isinstance(result, Rejection) and result.code == "number_too_large"
    assert request_id_of(value, b"k1") == "k1"


def test_a_request_that_is_one_5000_digit_integer_is_answered_with_an_error() -> None:
    result = parse_rank_request(b"9" * 5000, Limits())
    assert isinstance(result, Rejection) and result.code == "number_too_large"


def test_an_error_response_never_carries_a_request_id_that_cannot_be_a_key() -> None:
    value = b'{"request_id":"\\ud800","candidates":"x"}'
    assert request_id_of(value, b"k1") == "k1"


def test_an_error_response_for_an_oversized_key_has_no_request_id() -> None:
    assert request_id_of(b"garbage", b"k" * 10_000) is None
