"""Team-draft interleaving: each team places its own items in its own order, the teams
take turns, and no item appears twice."""

from __future__ import annotations

import random

from rtrank.streams.experiments.interleave import team_draft

A = [f"a{n}" for n in range(10)]
B = [f"b{n}" for n in range(10)]


def test_each_team_places_its_items_in_its_own_order() -> None:
    merged = team_draft(A, B, 10, random.Random(0))
    assert [i for i, t in merged if t == 0] == A[:5]
    assert [i for i, t in merged if t == 1] == B[:5]


def test_the_teams_picks_never_differ_by_more_than_one_at_any_point() -> None:
    merged = team_draft(A, B, 9, random.Random(1))
    for end in range(1, len(merged) + 1):
        picks = [t for _, t in merged[:end]]
        assert abs(picks.count(0) - picks.count(1)) <= 1


def test_an_item_both_rank_is_placed_once_by_the_team_that_picked_it_first() -> None:
    shared = ["x", "y", "z"]
    merged = team_draft(shared + A, shared + B, 10, random.Random(2))
    ids = [i for i, _ in merged]
    assert len(ids) == len(set(ids)) == 10
    assert ids[:3] == shared


def test_the_coin_decides_who_picks_first_about_half_of_the_time() -> None:
    rng = random.Random(3)
    firsts = [team_draft(A, B, 2, rng)[0][1] for _ in range(1000)]
    assert 400 < sum(firsts) < 600


def test_a_short_list_leaves_the_rest_to_the_other_team() -> None:
    merged = team_draft(["a0"], B, 5, random.Random(0))
    assert sorted(i for i, _ in merged) == ["a0", "b0", "b1", "b2", "b3"]
    assert [i for i, t in merged if t == 1] == ["b0", "b1", "b2", "b3"]
