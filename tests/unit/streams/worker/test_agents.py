"""What a micro-batch answers (one list per user, from that user's latest state), and how
the answered state reaches the table."""

from __future__ import annotations

from rtrank.streams.records import Event
from rtrank.streams.worker.agents import Pending, events_behind, requests_for, write_state
from rtrank.streams.worker.state import UserState


class FakeEvent:
    """Stands for the Faust event whose partition a table write goes to."""


def pending(user: str, item: str, history: list[str]) -> Pending:
    state = UserState(history=history, seen=history)
    return Pending(None, FakeEvent(), Event(user, item, "view", 1_700_000_000_000), state, 0.0)


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


def test_the_answered_state_is_written_with_its_list_and_leaves_the_unwritten_ones() -> None:
    table: dict = {}
    answered = pending("a", "2", ["1", "2"])
    unwritten = {"a": answered.state}
    write_state(table, unwritten, answered, ["9", "8"], version=3)
    assert table["a"]["history"] == ["1", "2"]
    assert (table["a"]["last_list"], table["a"]["last_list_version"]) == (["9", "8"], 3)
    assert unwritten == {}


def test_a_state_ingested_after_the_answered_one_stays_unwritten_and_learns_the_list() -> None:
    table: dict = {}
    answered = pending("a", "2", ["1", "2"])
    newer = UserState(history=["1", "2", "3"], seen=["1", "2", "3"])
    unwritten = {"a": newer}
    write_state(table, unwritten, answered, ["9"], version=3)
    assert table["a"]["history"] == ["1", "2"]
    assert unwritten["a"] is newer and newer.last_list == ["9"]


class Consumer:
    """Stands for Faust's consumer: the partitions it holds and their highwater offsets."""

    def __init__(self, highwaters: dict[str, int | None]) -> None:
        self.highwaters = highwaters

    def assignment(self) -> set[str]:
        return set(self.highwaters)

    def highwater(self, tp: str) -> int | None:
        return self.highwaters[tp]


def test_events_behind_counts_what_follows_the_last_offset_read_per_partition() -> None:
    consumer = Consumer({"events/0": 100, "events/1": 10, "events/2": None})
    read_up_to = {"events/0": 89, "events/1": 9, "events/2": 5}
    assert events_behind(consumer, read_up_to) == 10  # offsets 90..99; none after 9; unknown


def test_events_behind_forgets_partitions_no_longer_assigned() -> None:
    read_up_to = {"events/0": 0, "events/3": 0}
    assert events_behind(Consumer({"events/0": 5}), read_up_to) == 4
    assert read_up_to == {"events/0": 0}
