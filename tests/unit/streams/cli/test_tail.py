"""`rtrank tail` shows each kind of record readably."""

from __future__ import annotations

import json

from rtrank.streams.cli.tail import render

REC = {
    "user_id": "u1",
    "items": [{"item_id": f"i{n}", "score": 1.0 - n / 10} for n in range(7)],
    "model_version": 4,
    "based_on": {"topic": "events", "partition": 2, "offset": 17, "ts": 1},
    "emitted_at": 2,
    "timings": {"queued": 1.5, "inference": 3.0, "total": 9.0},
    "batch_size": 3,
}


def test_a_recommendation_shows_user_version_top_items_and_source() -> None:
    line = render(b"u1", json.dumps(REC).encode(), {}, as_json=False)
    assert line.startswith("u1")
    assert "v4" in line
    assert "i0 1.00, i1 0.90" in line and "+2" in line
    assert "events/2@17" in line


def test_a_dead_letter_shows_its_reason() -> None:
    line = render(b"k", b"{oops", {"rtrank-reason": b"not_json: value is not JSON"}, as_json=False)
    assert line.startswith("DLQ  not_json")


def test_json_mode_prints_the_record_as_one_json_object() -> None:
    assert json.loads(render(b"u1", json.dumps(REC).encode(), {}, as_json=True)) == REC


def test_json_mode_keeps_a_dead_letters_bytes_and_reason() -> None:
    out = json.loads(render(b"k", b"\xff", {"rtrank-reason": b"not_utf8: x"}, as_json=True))
    assert out == {"key": "k", "value": "\ufffd", "reason": "not_utf8: x"}
