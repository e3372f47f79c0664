"""Time-decayed popularity: recent events weigh more; half-life halves old counts."""

from __future__ import annotations

import pytest

from rtrank.streams.scorer.trending import Trending

T0 = 1_700_000_000_000
HOUR = 3_600_000


def test_an_event_counts_its_weight_at_its_own_time() -> None:
    t = Trending(HOUR)
    t.observe("a", T0, 2.0)
    assert t.score("a") == pytest.approx(2.0)


def test_counts_halve_after_one_half_life() -> None:
    t = Trending(HOUR)
    t.observe("a", T0)
    t.observe("b", T0 + HOUR)
    assert t.score("a") == pytest.approx(0.5)
    assert t.score("b") == pytest.approx(1.0)


def test_a_recent_item_outranks_an_older_more_frequent_one() -> None:
    t = Trending(HOUR)
    for _ in range(3):
        t.observe("old", T0)
    for _ in range(2):
        t.observe("new", T0 + 2 * HOUR)
    assert [i for i, _ in t.top(2)] == ["new", "old"]


def test_long_streams_rescale_without_changing_scores() -> None:
    t = Trending(1000)
    t.observe("a", T0)
    t.observe("b", T0 + 100_000)  # 100 half-lives later: rescaled
    assert t.score("b") == pytest.approx(1.0)
    assert t.score("a") == pytest.approx(0.0)


def test_unknown_items_have_zero_popularity() -> None:
    assert Trending(HOUR).score("x") == 0.0


def test_the_least_popular_items_are_forgotten_beyond_the_cap() -> None:
    t = Trending(HOUR, max_items=4)
    for n in range(5):
        t.observe(f"i{n}", T0, weight=float(n + 1))
    assert "i4" in dict(t.top(10)) and len(t) <= 4


def test_an_event_dated_in_the_future_counts_as_happening_now() -> None:
    t = Trending(HOUR, clock_ms=lambda: T0)
    t.observe("a", T0)
    t.observe("from-2099", 4_070_908_800_000)
    assert t.score("from-2099") == pytest.approx(1.0)
    assert t.score("a") == pytest.approx(1.0)


def test_an_event_dated_2099_does_not_make_its_item_the_only_trending_one() -> None:
    t = Trending(HOUR, clock_ms=lambda: T0 + HOUR)
    for n, item in enumerate(["a", "b", "c"]):
        for _ in range(5 - n):
            t.observe(item, T0 + HOUR)
    t.observe("from-2099", 4_070_908_800_000)
    top = t.top(4)
    assert [i for i, _ in top] == ["a", "b", "c", "from-2099"]
    assert all(score >= 1.0 for _, score in top)


def test_the_scores_of_many_items_are_those_counted_each_as_scored_alone() -> None:
    t = Trending(HOUR, clock_ms=lambda: T0 + 2 * HOUR)
    t.observe("a", T0, 2.0)
    t.observe("b", T0 + HOUR, 1.0)
    scores = t.scores(["a", "b", "never"])
    assert scores == {"a": pytest.approx(t.score("a")), "b": pytest.approx(t.score("b"))}
    assert scores["a"] == pytest.approx(1.0)
