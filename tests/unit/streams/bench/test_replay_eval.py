"""Judging a replayed run in stream order: which list tests which event."""

from __future__ import annotations

import math

import pytest

from rtrank.streams.bench.replay_eval import (
    EmittedList,
    Judged,
    Run,
    judge,
    paired_difference,
    quality,
)


def one_user_run(items: list[str], lists: list[EmittedList], trained=None) -> Run:
    """User "u"'s events (each event's training example at partition 0, its position)."""
    return Run(
        items={"u": items},
        examples={"u": [(0, n) for n in range(len(items))]},
        lists={"u": lists},
        trained=trained or {},
    )


def test_an_event_is_tested_against_the_list_emitted_for_its_users_previous_event():
    run = one_user_run(
        ["a", "b", "c"],
        [EmittedList(0, 1, ("x", "b")), EmittedList(1, 1, ("c", "y")), EmittedList(2, 1, ("z",))],
    )
    judged = judge(run, {"u": 1})
    assert judged.gains == {("u", 1): (1.0, 1 / math.log2(3)), ("u", 2): (1.0, 1.0)}


def test_events_answered_together_are_tested_against_the_list_before_them():
    run = one_user_run(["a", "b", "c"], [EmittedList(0, 1, ("b", "c")), EmittedList(2, 1, ())])
    assert judge(run, {"u": 1}).gains == {("u", 1): (1.0, 1.0), ("u", 2): (1.0, 1 / math.log2(3))}


def test_a_list_from_a_version_trained_on_the_event_is_passed_over_for_an_older_one():
    run = one_user_run(
        ["a", "b", "c"],
        [EmittedList(0, 1, ("x",)), EmittedList(1, 2, ("c",))],
        trained={2: {0: 3}},  # version 2 had consumed the examples at offsets 0, 1 and 2
    )
    judged = judge(run, {"u": 2})
    assert judged.gains == {("u", 2): (0.0, 0.0)}
    assert judged.skipped_trained == 1


def test_a_version_trained_only_on_earlier_events_may_make_the_tested_list():
    run = one_user_run(["a", "b", "c"], [EmittedList(1, 2, ("c",))], trained={2: {0: 2}})
    judged = judge(run, {"u": 2})
    assert judged.gains == {("u", 2): (1.0, 1.0)} and judged.skipped_trained == 0


def test_offsets_of_other_partitions_do_not_count_as_training_on_the_event():
    run = one_user_run(["a", "b"], [EmittedList(0, 2, ("b",))], trained={2: {1: 100}})
    assert judge(run, {"u": 1}).gains == {("u", 1): (1.0, 1.0)}


def test_events_before_the_measured_ones_are_not_tested_and_events_without_a_list_are_counted():
    run = one_user_run(["a", "b", "c"], [EmittedList(1, 1, ("c",))])
    judged = judge(run, {"u": 1})
    assert judged.gains == {("u", 2): (1.0, 1.0)}
    assert judged.untested == 1


def test_quality_is_the_mean_over_judged_events_with_a_binomial_standard_error():
    judged = Judged({("u", n): (float(n < 5), float(n < 5) / 2) for n in range(100)}, 3, 1)
    q = quality(judged)
    assert (q["hit@10"], q["ndcg@10"], q["tested"]) == (0.05, 0.025, 100)
    assert q["hit@10_se"] == pytest.approx(math.sqrt(0.05 * 0.95 / 100), abs=1e-4)
    assert (q["untested"], q["skipped_trained"]) == (3, 1)


def test_the_paired_difference_is_over_events_both_runs_judged():
    frozen = Judged({("u", 0): (0.0, 0.0), ("u", 1): (1.0, 1.0), ("u", 2): (0.0, 0.0)}, 0, 0)
    online = Judged({("u", 0): (1.0, 1.0), ("u", 1): (1.0, 1.0), ("v", 0): (1.0, 1.0)}, 0, 0)
    diff = paired_difference(frozen, online)
    assert (diff["hit@10"], diff["events"]) == (0.5, 2)
    assert diff["se"] == pytest.approx(0.5)  # differences 1 and 0: sd 0.707, over sqrt(2)


def test_models_that_agree_on_every_event_differ_by_zero_with_zero_error():
    same = Judged({("u", n): (float(n % 7 == 0), 0.0) for n in range(50)}, 0, 0)
    assert paired_difference(same, same) == {"hit@10": 0.0, "se": 0.0, "events": 50}
