"""What a micro-batch answers: one list per user, from that user's latest state."""

from __future__ import annotations

from streams.agents import Pending, requests_for
from streams.records import Event
from streams.state import UserState


def pending(user: str, item: str, history: list[str]) -> Pending:
    state = UserState(history=history, seen=history)
    return Pending(None, None, Event(user, item, "view", 1_700_000_000_000), state, 0.0)


def test_one_request_per_user_from_their_latest_event() -> None:
    batch = [
        pending("a", "1", ["1"]),
        pending("b", "7", ["7"]),
        pending("a", "2", ["1", "2"]),
        Pending(None, None, None, None, 0.0),
    ]
    answered, requests = requests_for(batch, allow_repeats=False)
    assert [p.parsed.user_id for p in answered] == ["b", "a"]
    assert [r.history for r in requests] == [["7"], ["1", "2"]]
    assert [r.exclude for r in requests] == [["7"], ["1", "2"]]


def test_allowing_repeats_excludes_nothing() -> None:
    _, requests = requests_for([pending("a", "1", ["1"])], allow_repeats=True)
    assert requests[0].exclude == []
