"""Re-rank requests: parsed, or rejected with a reason that becomes an error response."""

from __future__ import annotations

import json

import pytest

from rtrank.streams.validation import Limits, Rejection
from rtrank.streams.worker.rank_requests import error_response, parse_rank_request, request_id_of

LIMITS = Limits()


def test_a_request_is_parsed_with_its_optional_fields() -> None:
    req = parse_rank_request(
        json.dumps(
            {
                "request_id": "r1",
                "user_id": 5,
                "candidates": ["a", 2],
                "k": 1,
                "context": {"history": ["x"]},
            }
        ).encode(),
        LIMITS,
    )
    assert (req.request_id, req.user_id, req.candidates, req.k) == ("r1", "5", ["a", "2"], 1)
    assert req.history == ["x"]


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b"[]",
        json.dumps({"user_id": "u", "candidates": []}).encode(),
        json.dumps({"request_id": "r", "user_id": "u"}).encode(),
        json.dumps({"request_id": "r", "user_id": "u", "candidates": [None]}).encode(),
        json.dumps({"request_id": "r", "user_id": "u", "candidates": [], "k": 0}).encode(),
        json.dumps({"request_id": "r", "user_id": "u", "candidates": [], "context": 3}).encode(),
    ],
)
def test_malformed_requests_are_rejected(body: bytes) -> None:
    assert isinstance(parse_rank_request(body, LIMITS), Rejection)


def test_an_error_response_names_the_request_and_the_reason() -> None:
    value = json.dumps({"request_id": "r9", "candidates": "x"}).encode()
    rejection = parse_rank_request(value, LIMITS)
    body = json.loads(error_response(request_id_of(value, b"key"), rejection))
    assert body["request_id"] == "r9" and body["error"]["code"] == "missing_field"


def test_without_a_request_id_the_key_identifies_the_error() -> None:
    assert request_id_of(b"garbage", b"k1") == "k1"
