from rtrank.streams.bench.replay_checks import (
    ReplayFindings,
    applied_examples,
    seen_up_to,
    takeover_pause_s,
)


def a_list(partition: int, offset: int, emitted_at: float, items: tuple[str, ...] = ()) -> dict:
    return {
        "based_on": {"partition": partition, "offset": offset},
        "emitted_at": emitted_at,
        "items": [{"item_id": i} for i in items],
    }


def test_each_event_is_applied_on_the_history_before_it_cut_to_the_window() -> None:
    events = [(0, "a"), (4, "b"), (9, "c")]

    assert applied_examples(events, history_len=1) == {((), "a"), (("a",), "b"), (("b",), "c")}


def test_the_items_seen_by_a_list_are_those_up_to_the_event_it_answers() -> None:
    events = [(0, "a"), (4, "b"), (9, "c")]

    assert seen_up_to(events, a_list(0, 4, 0.0)) == {"a", "b"}


def test_the_takeover_pause_is_the_slowest_partition_to_get_a_list_after_the_kill() -> None:
    lists = {
        "u1": [a_list(1, 5, 900.0), a_list(1, 6, 3_000.0)],
        "u2": [a_list(2, 7, 5_500.0), a_list(2, 8, 9_000.0)],
        "u3": [a_list(3, 1, 1_500.0)],  # a partition the killed worker did not hold
    }

    assert takeover_pause_s(lists, killed_at_ms=1_000.0, partitions=[1, 2]) == 4.5


def test_a_partition_that_never_gets_a_list_again_pauses_forever() -> None:
    lists = {"u1": [a_list(1, 5, 900.0)]}

    assert takeover_pause_s(lists, killed_at_ms=1_000.0, partitions=[1]) == float("inf")


def test_findings_are_ok_only_when_every_guarantee_held() -> None:
    clean = ReplayFindings([], [], [], [], [])
    one_uncovered = ReplayFindings([], [("u1", 3)], [], [], [])

    assert clean.ok and not one_uncovered.ok
    assert one_uncovered.counts()["uncovered"] == 1
