"""A user's state: bounded history, seen items, and redeliveries recognised by offset."""

from __future__ import annotations

from rtrank.streams.records import Event
from rtrank.streams.worker.state import UserState, apply_event, is_applied, is_expired


def event(item: str, ts: int = 1_700_000_000_000) -> Event:
    return Event("u", item, "view", ts)


def test_history_keeps_only_the_latest_items_in_order() -> None:
    state = UserState()
    for offset, item in enumerate("abcdef"):
        state = apply_event(state, event(item), offset, history_len=3, seen_len=10)
    assert state.history == ["d", "e", "f"]
    assert state.events == 6


def test_seen_items_are_distinct_and_bounded() -> None:
    state = UserState()
    for offset, item in enumerate(["a", "b", "a", "c", "d"]):
        state = apply_event(state, event(item), offset, history_len=10, seen_len=3)
    assert state.seen == ["a", "c", "d"]


def test_an_event_at_or_below_the_last_applied_offset_is_a_redelivery() -> None:
    state = apply_event(UserState(), event("a"), 41, history_len=5, seen_len=5)
    assert is_applied(state, 41)
    assert is_applied(state, 3)
    assert not is_applied(state, 42)


def test_state_round_trips_through_json() -> None:
    state = apply_event(UserState(), event("a", 5), 7, history_len=5, seen_len=5)
    assert UserState.from_json(state.to_json()) == state


def test_applying_leaves_the_previous_state_unchanged() -> None:
    before = UserState(history=["a"], seen=["a"], events=1, last_offset=0)
    apply_event(before, event("b"), 1, history_len=5, seen_len=5)
    assert before.history == ["a"]


def test_the_last_emitted_list_survives_later_events_and_a_json_round_trip() -> None:
    state = UserState(last_list=["x", "y"], last_list_version=7)
    state = apply_event(state, event("a"), 1, history_len=5, seen_len=5)
    again = UserState.from_json(state.to_json())
    assert (again.last_list, again.last_list_version) == (["x", "y"], 7)


def test_state_written_before_online_evaluation_existed_still_loads() -> None:
    old = {"history": ["a"], "seen": ["a"], "events": 1, "last_offset": 3, "last_ts": 5}
    assert UserState.from_json(old).last_list == []


def test_a_state_keeps_the_broker_time_of_its_last_event_across_a_json_round_trip() -> None:
    state = apply_event(UserState(), event("a", ts=5), 1, history_len=5, seen_len=5, seen_at=9)
    again = apply_event(state, event("b", ts=6), 2, history_len=5, seen_len=5)  # time unknown
    assert UserState.from_json(again.to_json()).seen_at == 9


def test_a_user_is_expired_once_idle_longer_than_the_ttl_and_never_with_a_ttl_of_zero() -> None:
    state = UserState(seen_at=1_000).to_json()
    assert not is_expired(state, now_ms=1_500, ttl_ms=500)
    assert is_expired(state, now_ms=1_501, ttl_ms=500)
    assert not is_expired(state, now_ms=10**12, ttl_ms=0)
