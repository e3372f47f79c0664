"""The re-rank stage as a specification: candidates in -> rerank -> the list shown."""

from __future__ import annotations

import numpy as np

from rtrank.streams.catalogue import ItemInfo
from rtrank.streams.scorer.rerank import (
    Candidate,
    RerankConfig,
    exploration_order,
    explore,
    mmr,
    normalise,
    rerank,
    similarity_matrix,
)

NOW = 1_700_000_000_000
DAY = 24 * 3600 * 1000


def cands(*ids: str) -> list[Candidate]:
    """Candidates in model order with strictly decreasing scores."""
    return [Candidate(i, float(len(ids) - n)) for n, i in enumerate(ids)]


def ids(items) -> list[str]:
    return [i.item_id for i in items]


def catalogue(*infos: ItemInfo):
    by_id = {i.item_id: i for i in infos}
    return by_id.get


def test_without_rules_the_list_is_the_models_top_k() -> None:
    out = rerank(cands("a", "b", "c", "d"), RerankConfig(k=3))
    assert ids(out) == ["a", "b", "c"]


def test_a_duplicate_candidate_is_shown_once_at_its_first_place() -> None:
    candidates = [Candidate("a", 3.0), Candidate("b", 2.0), Candidate("a", 1.0, "trending")]
    out = rerank(candidates, RerankConfig(k=3))
    assert [(i.item_id, i.source) for i in out] == [("a", "model"), ("b", "model")]


def test_seen_items_are_filtered() -> None:
    out = rerank(cands("a", "b", "c"), RerankConfig(k=3), seen={"b": "view"})
    assert ids(out) == ["a", "c"]


def test_seen_items_may_repeat_when_their_event_type_allows_it() -> None:
    config = RerankConfig(k=3, repeatable_types=frozenset({"view"}))
    out = rerank(cands("a", "b", "c"), config, seen={"a": "view", "b": "purchase"})
    assert ids(out) == ["a", "c"]


def test_unavailable_items_are_filtered() -> None:
    lookup = catalogue(ItemInfo("b", available=False))
    assert ids(rerank(cands("a", "b", "c"), RerankConfig(k=3), lookup=lookup)) == ["a", "c"]


def test_items_unknown_to_the_catalogue_count_as_available() -> None:
    lookup = catalogue(ItemInfo("z"))
    assert ids(rerank(cands("a", "b"), RerankConfig(k=2), lookup=lookup)) == ["a", "b"]


def test_blocked_items_are_filtered() -> None:
    out = rerank(cands("a", "b", "c"), RerankConfig(k=3, blocked=frozenset({"a"})))
    assert ids(out) == ["b", "c"]


def test_a_category_boost_moves_its_items_up() -> None:
    lookup = catalogue(ItemInfo("c", category="promo"))
    config = RerankConfig(k=3, category_boosts={"promo": 2.0})
    assert ids(rerank(cands("a", "b", "c"), config, lookup=lookup)) == ["c", "a", "b"]


def test_a_category_penalty_moves_its_items_down() -> None:
    lookup = catalogue(ItemInfo("a", category="meh"))
    config = RerankConfig(k=3, category_boosts={"meh": -2.0})
    assert ids(rerank(cands("a", "b", "c"), config, lookup=lookup)) == ["b", "c", "a"]


def test_an_item_boost_moves_the_item_up() -> None:
    lookup = catalogue(ItemInfo("b", boost=5.0))
    assert ids(rerank(cands("a", "b", "c"), RerankConfig(k=3), lookup=lookup))[0] == "b"


def test_per_category_cap_holds() -> None:
    lookup = catalogue(*(ItemInfo(i, category="x") for i in "abcd"), ItemInfo("e", category="y"))
    out = rerank(
        cands("a", "b", "c", "d", "e", "f"), RerankConfig(k=4, max_per_category=2), lookup=lookup
    )
    assert ids(out) == ["a", "b", "e", "f"]


def test_per_category_cap_may_leave_the_list_short_rather_than_break_the_rule() -> None:
    lookup = catalogue(*(ItemInfo(i, category="x") for i in "abc"))
    out = rerank(cands("a", "b", "c"), RerankConfig(k=3, max_per_category=1), lookup=lookup)
    assert ids(out) == ["a"]


def test_pinned_items_take_their_position() -> None:
    out = rerank(cands("a", "b", "c"), RerankConfig(k=3, pinned={"p": 1}))
    assert ids(out) == ["a", "p", "b"]
    assert out[1].source == "pinned"


def test_a_pinned_item_that_is_unavailable_is_not_shown() -> None:
    lookup = catalogue(ItemInfo("p", available=False))
    out = rerank(cands("a", "b"), RerankConfig(k=2, pinned={"p": 0}), lookup=lookup)
    assert ids(out) == ["a", "b"]


def test_fresh_items_get_the_freshness_boost() -> None:
    lookup = catalogue(ItemInfo("c", created_at=NOW - DAY))
    config = RerankConfig(k=3, fresh_age_ms=2 * DAY, fresh_boost=2.0)
    assert ids(rerank(cands("a", "b", "c"), config, lookup=lookup, now_ms=NOW))[0] == "c"


def test_items_older_than_the_fresh_age_get_no_boost() -> None:
    lookup = catalogue(ItemInfo("c", created_at=NOW - 3 * DAY))
    config = RerankConfig(k=3, fresh_age_ms=2 * DAY, fresh_boost=2.0)
    assert ids(rerank(cands("a", "b", "c"), config, lookup=lookup, now_ms=NOW)) == ["a", "b", "c"]


def test_mmr_with_lambda_one_equals_plain_top_k() -> None:
    rng = np.random.default_rng(0)
    candidates = [Candidate(f"i{n}", float(s)) for n, s in enumerate(rng.normal(size=30))]
    candidates.sort(key=lambda c: -c.score)
    vectors = {c.item_id: rng.normal(size=8) for c in candidates}
    out = rerank(candidates, RerankConfig(k=10, lam=1.0), vectors=vectors)
    assert ids(out) == ids(candidates[:10])


def test_mmr_with_lower_lambda_skips_a_near_duplicate() -> None:
    vectors = {"a": [1.0, 0.0], "a2": [1.0, 0.01], "b": [0.0, 1.0]}
    candidates = [Candidate("a", 3.0), Candidate("a2", 2.9), Candidate("b", 2.0)]
    out = rerank(candidates, RerankConfig(k=2, lam=0.5), vectors=vectors)
    assert ids(out) == ["a", "b"]


def test_mmr_picks_by_relevance_minus_similarity_to_the_chosen() -> None:
    sim = similarity_matrix(cands("a", "b", "c"), {"a": [1, 0], "b": [1, 0], "c": [0, 1]})
    assert mmr([1.0, 0.9, 0.5], sim, k=3, lam=0.5) == [0, 2, 1]


def test_normalise_maps_scores_to_the_unit_interval() -> None:
    assert normalise([3.0, 1.0, 2.0]) == [1.0, 0.0, 0.5]


def test_exploration_slots_go_to_fresh_items_at_the_end() -> None:
    fresh = [ItemInfo("new1", created_at=NOW), ItemInfo("new2", created_at=NOW - 1)]
    out = rerank(cands("a", "b", "c", "d"), RerankConfig(k=3, explore_slots=1), fresh=fresh)
    assert ids(out) == ["a", "b", "new1"]
    assert out[-1].source == "explore"


def test_exploration_never_exceeds_its_slots() -> None:
    fresh = [ItemInfo(f"new{n}", created_at=NOW - n) for n in range(10)]
    out = rerank(cands("a", "b", "c", "d"), RerankConfig(k=4, explore_slots=2), fresh=fresh)
    assert sum(1 for i in out if i.source == "explore") == 2


def test_exploration_prefers_the_trending_new_item() -> None:
    fresh = [ItemInfo("new1", created_at=NOW), ItemInfo("new2", created_at=NOW - 1)]
    popularity = {"new2": 5.0}
    ordered = exploration_order(fresh, popularity)
    out = rerank(
        cands("a", "b"), RerankConfig(k=2, explore_slots=1), fresh=ordered, popularity=popularity
    )
    assert ids(out) == ["a", "new2"]


def test_exploration_order_is_most_popular_then_newest_then_by_id() -> None:
    fresh = [  # as the catalogue gives them: newest first, then by id
        ItemInfo("a", created_at=NOW),
        ItemInfo("b", created_at=NOW),
        ItemInfo("old", created_at=NOW - 9),
        ItemInfo("liked", created_at=NOW - 40),
        ItemInfo("hit", created_at=NOW - 50),
    ]
    ordered = exploration_order(fresh, {"hit": 2.0, "liked": 1.0, "old": 0.0})
    assert [i.item_id for i in ordered] == ["hit", "liked", "a", "b", "old"]


def test_exploration_takes_the_first_allowed_items_in_the_order_given() -> None:
    fresh = [
        ItemInfo("shown", created_at=NOW),
        ItemInfo("gone", available=False, created_at=NOW),
        ItemInfo("bought", created_at=NOW),
        ItemInfo("blocked", created_at=NOW),
        ItemInfo("viewed", created_at=NOW),
        ItemInfo("next", created_at=NOW),
        ItemInfo("last", created_at=NOW),
    ]
    config = RerankConfig(blocked=frozenset({"blocked"}), repeatable_types=frozenset({"view"}))
    seen = {"bought": "purchase", "viewed": "view"}
    picked = explore(fresh, {}, {"shown"}, seen, config, 2)
    assert [c.item_id for c in picked] == ["viewed", "next"]
    assert {c.source for c in picked} == {"explore"}


def test_unused_exploration_slots_go_back_to_the_model() -> None:
    out = rerank(cands("a", "b", "c"), RerankConfig(k=3, explore_slots=2), fresh=[])
    assert ids(out) == ["a", "b", "c"]


def test_keep_rest_appends_what_the_cap_left_out_instead_of_dropping_it() -> None:
    lookup = catalogue(*(ItemInfo(i, category="x") for i in "abc"))
    out = rerank(
        cands("a", "b", "c", "d"),
        RerankConfig(k=4, max_per_category=1),
        lookup=lookup,
        keep_rest=True,
    )
    assert ids(out) == ["a", "d", "b", "c"]
