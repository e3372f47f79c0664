"""Plain lists (`rerank`'s path that looks up only the items it shows) as a specification:
wherever it applies, the list is the one the whole re-rank stage makes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtrank.streams.catalogue import ItemInfo
from rtrank.streams.scorer.rerank import Candidate, RerankConfig, keeps_model_order, rerank
from tests.unit.streams.fuzz_inputs import FUZZ

NOW = 1_700_000_000_000
DAY = 24 * 3600 * 1000
IDS = [f"i{n}" for n in range(12)]  # few ids: duplicates, seen and blocked items meet often


def cands(*scores: float) -> list[Candidate]:
    return [Candidate(f"i{n}", s) for n, s in enumerate(scores)]


@st.composite
def lists_to_make(draw):
    """Candidates best first (duplicates and equal scores included), a user's seen items,
    a catalogue without boosts, its fresh items, and rules plain lists apply to."""
    ids = draw(st.lists(st.sampled_from(IDS), min_size=0, max_size=15))
    n = len(ids)
    scores = sorted(
        draw(st.lists(st.sampled_from([-2.0, 0.0, 0.5, 1.0, 3.0]), min_size=n, max_size=n)),
        reverse=True,
    )
    candidates = [Candidate(i, s) for i, s in zip(ids, scores, strict=True)]
    infos = {
        i: ItemInfo(
            i,
            available=draw(st.booleans()),
            category=draw(st.sampled_from([None, "a", "b"])),
            created_at=NOW - draw(st.sampled_from([0, DAY, 30 * DAY])),
        )
        for i in draw(st.sets(st.sampled_from(IDS)))
    }
    fresh = sorted(
        (i for i in infos.values() if i.available and NOW - i.created_at <= 7 * DAY),
        key=lambda i: (-i.created_at, i.item_id),
    )
    seen = draw(st.dictionaries(st.sampled_from(IDS), st.sampled_from(["view", "buy"])))
    config = RerankConfig(
        k=draw(st.integers(1, 6)),
        blocked=frozenset(draw(st.sets(st.sampled_from(IDS), max_size=3))),
        repeatable_types=draw(st.sampled_from([frozenset(), frozenset({"view"})])),
        explore_slots=draw(st.integers(0, 2)),
        pinned={"i3": 9},  # a pin beyond the list's length is not shown
    )
    return candidates, infos, fresh, seen, config


@FUZZ
@given(lists_to_make())
def test_a_plain_list_is_the_list_the_whole_rerank_stage_makes(case) -> None:
    candidates, infos, fresh, seen, config = case
    assert keeps_model_order(config, candidates)
    made = {
        plain: rerank(
            candidates,
            config,
            seen=seen,
            lookup=infos.get,
            fresh=fresh,
            popularity={"i5": 2.0},
            now_ms=NOW,
            item_boosts=not plain,
        )
        for plain in (True, False)
    }
    assert made[True] == made[False]


def test_plain_lists_look_up_only_the_items_they_show_and_the_last_kept() -> None:
    looked_up: list[str] = []

    def lookup(item_id: str) -> ItemInfo | None:
        looked_up.append(item_id)
        return ItemInfo(item_id, available=item_id != "i8")

    candidates = cands(*[float(10 - n) for n in range(10)])
    out = rerank(candidates, RerankConfig(k=3), lookup=lookup, item_boosts=False)
    assert [i.item_id for i in out] == ["i0", "i1", "i2"]
    assert looked_up == ["i0", "i1", "i2", "i9"]


def test_a_catalogue_that_may_hold_boosts_is_looked_up_for_every_candidate() -> None:
    looked_up: list[str] = []

    def lookup(item_id: str) -> ItemInfo | None:
        looked_up.append(item_id)
        return ItemInfo(item_id, boost=5.0 if item_id == "i9" else 0.0)

    out = rerank(cands(*[float(10 - n) for n in range(10)]), RerankConfig(k=3), lookup=lookup)
    assert out[0].item_id == "i9"
    assert len(looked_up) == 10


@pytest.mark.parametrize(
    "config",
    [
        RerankConfig(lam=0.5),
        RerankConfig(max_per_category=2),
        RerankConfig(category_boosts={"a": 0.3}),
        RerankConfig(fresh_boost=0.2),
        RerankConfig(pinned={"i1": 0}),
    ],
    ids=["mmr", "category cap", "category boost", "fresh boost", "pinned item"],
)
def test_rules_that_can_reorder_the_candidates_keep_the_whole_stage(config) -> None:
    assert not keeps_model_order(config, cands(3.0, 2.0, 1.0))


@pytest.mark.parametrize(
    "scores",
    [(1.0, 2.0, 0.5), (3.0, math.nan, 1.0), (3.0, 1.0, -math.inf)],
    ids=["not best first", "nan", "infinite"],
)
def test_candidates_not_finite_and_best_first_keep_the_whole_stage(scores) -> None:
    assert not keeps_model_order(RerankConfig(), cands(*scores))
