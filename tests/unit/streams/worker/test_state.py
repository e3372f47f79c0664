"""A user's state: bounded history, seen items, and redeliveries recognised by offset."""

from __future__ import annotations

import json

import pytest

from rtrank.streams.records import Event
from rtrank.streams.worker.state import (
    UserState,
    apply_event,
    is_applied,
    is_expired,
    last_active_ms,
)


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
    assert not is_expired(1_000, now_ms=1_500, ttl_ms=500)
    assert is_expired(1_000, now_ms=1_501, ttl_ms=500)
    assert not is_expired(1_000, now_ms=10**12, ttl_ms=0)


def stored(state: dict, **dumps: object) -> bytes:
    return json.dumps(state, **dumps).encode()


def test_a_stored_state_was_last_active_at_the_broker_time_of_its_last_event() -> None:
    state = UserState(history=["a"], seen=["a"], last_ts=5_000, seen_at=9_000).to_json()
    assert last_active_ms(stored(state)) == 9_000


def test_a_stored_state_without_a_broker_time_was_last_active_at_its_event_time() -> None:
    state = UserState(history=["a"], seen=["a"], last_ts=5_000).to_json()
    unknown = {**state, "seen_at": 0}
    written_before_it_was_kept = {k: v for k, v in state.items() if k != "seen_at"}
    assert last_active_ms(stored(unknown)) == 5_000
    assert last_active_ms(stored(written_before_it_was_kept)) == 5_000
    assert last_active_ms(stored({"seen_at": None, "last_ts": 5_000})) == 5_000
    assert last_active_ms(stored({"history": []})) == 0


@pytest.mark.parametrize(
    "items",
    [
        ["seen_at", "12345", "last_ts", "678"],
        ['"seen_at": 1', '"last_ts": 2'],
        ['x"seen_at":3', '\\"seen_at\\": 4', "seen_at:5"],
    ],
)
@pytest.mark.parametrize(
    "dumps", [{}, {"separators": (",", ":")}, {"sort_keys": True}, {"indent": 1}]
)
def test_item_ids_that_spell_a_time_key_never_pass_for_the_stored_time(
    items: list[str], dumps: dict
) -> None:
    state = UserState(
        history=items, seen=items, last_ts=5_000, last_list=items, seen_at=9_000
    ).to_json()
    times_first = {"seen_at": 9_000, "last_ts": 5_000, **state}  # the items after them
    for kept in (state, times_first):
        assert last_active_ms(stored(kept, **dumps)) == 9_000
        assert last_active_ms(stored({**kept, "seen_at": 0}, **dumps)) == 5_000
