"""The ranker around a real (small, random) model: cold start, explanations, requests."""

from __future__ import annotations

import time

import pytest
import torch

from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.vocab import Vocabulary
from rtrank.streams.catalogue import Catalogue, ItemInfo
from rtrank.streams.event_policy import EventPolicy
from rtrank.streams.records import Event
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.scorer.ranker import Ranker
from rtrank.streams.scorer.scoring import Scorer
from rtrank.streams.settings import Settings

T0 = 1_700_000_000_000
ITEMS = [f"i{n}" for n in range(40)]


@pytest.fixture
def scorer() -> Scorer:
    torch.manual_seed(0)
    vocab = Vocabulary(ITEMS)
    model = SASRec(SASRecConfig(num_items=len(vocab), max_len=10, dim=16, dropout=0.0))
    return Scorer(model, vocab, version=3, grows_with_stream=False)


def settings(**changes) -> Settings:
    return Settings(top_k=5, rerank_candidates=20, explore_slots=0).replace(**changes)


def lists_for(ranker: Ranker, scorer: Scorer, history: list[str]):
    request = ScoreRequest(history, history)
    top_n = scorer.recommend([request], ranker.candidates)
    return ranker.rerank_lists(scorer, [request], top_n)[0]


def test_a_user_with_history_gets_the_models_top_k_without_rules(scorer) -> None:
    ranker = Ranker(settings())
    history = ["i1", "i2", "i3"]
    plain = scorer.recommend([ScoreRequest(history, history)], 5)[0]
    assert [i.item_id for i in lists_for(ranker, scorer, history)] == [i for i, _ in plain]


def test_a_cold_user_gets_the_trending_items(scorer) -> None:
    ranker = Ranker(settings())
    ranker.observe(
        [
            Event(f"u{n}", item, "view", T0)
            for n, item in enumerate(["i7"] * 5 + ["i8"] * 3 + ["i9"] * 2)
        ]
    )
    out = lists_for(ranker, scorer, ["i1"])
    assert [i.item_id for i in out[:3]] == ["i7", "i8", "i9"]
    assert {i.source for i in out[:3]} == {"trending"}


def test_a_user_is_cold_up_to_the_limit_of_known_items_and_unknown_ones_do_not_count(
    scorer,
) -> None:
    ranker = Ranker(settings(cold_start_max_history=2))
    assert ranker.is_cold(scorer, ["i1", "new-a", "i2", "new-b", "new-c"])
    assert not ranker.is_cold(scorer, ["i1", "new-a", "i2", "i3"])
    assert ranker.is_cold(scorer, [])


def test_a_cold_list_is_filled_by_the_model_when_little_is_trending(scorer) -> None:
    ranker = Ranker(settings())
    ranker.observe([Event("u", "i7", "view", T0)])
    assert len(lists_for(ranker, scorer, ["i1"])) == 5


def test_purchases_weigh_more_in_popularity_than_views(scorer) -> None:
    ranker = Ranker(settings())
    ranker.observe(
        [
            Event("u", "i5", "view", T0),
            Event("u", "i5", "view", T0),
            Event("v", "i6", "purchase", T0),
        ]
    )
    assert lists_for(ranker, scorer, [])[0].item_id == "i6"


def test_unavailable_items_never_reach_the_list(scorer) -> None:
    history = ["i1", "i2", "i3"]
    first = lists_for(Ranker(settings()), scorer, history)[0].item_id
    catalogue = Catalogue({first: ItemInfo(first, available=False).to_json()})
    after = lists_for(Ranker(settings(), catalogue), scorer, history)
    assert first not in [i.item_id for i in after]


def test_explanations_name_one_to_three_history_items(scorer) -> None:
    history = ["i1", "i2", "i3", "i4"]
    out = lists_for(Ranker(settings(explain=True)), scorer, history)
    assert all(1 <= len(i.because) <= 3 and set(i.because) <= set(history) for i in out)


def test_explanations_are_off_by_default(scorer) -> None:
    out = lists_for(Ranker(settings()), scorer, ["i1", "i2", "i3"])
    assert all(i.because == () and "because" not in i.to_json() for i in out)


def test_rank_requests_order_exactly_the_callers_candidates(scorer) -> None:
    ranker = Ranker(settings())
    candidates = ["i5", "new-item", "i9", "i2"]
    ranked, filtered = ranker.rank_candidates(scorer, ["i1", "i2", "i3"], candidates)
    assert sorted(i.item_id for i in ranked) == sorted(candidates) and filtered == []
    assert ranked[-1].item_id == "new-item" and ranked[-1].source == "cold_start"


def test_rank_requests_report_unavailable_candidates_instead_of_dropping_them(scorer) -> None:
    ranker = Ranker(settings(), Catalogue({"i5": ItemInfo("i5", available=False).to_json()}))
    ranked, filtered = ranker.rank_candidates(scorer, ["i1", "i2"], ["i5", "i6"])
    assert [i.item_id for i in ranked] == ["i6"]
    assert filtered == [{"item_id": "i5", "reason": "unavailable"}]


def test_event_weights_and_sequence_types_come_from_the_settings() -> None:
    policy = EventPolicy.from_settings(Settings(sequence_event_types="click,purchase"))
    assert (policy.weight("view"), policy.weight("purchase"), policy.weight("other")) == (1, 8, 1)
    assert policy.enters_sequence("click") and not policy.enters_sequence("view")


def test_every_event_type_enters_the_sequence_by_default() -> None:
    assert EventPolicy.from_settings(Settings()).enters_sequence("anything")


def test_an_event_of_a_repeatable_type_does_not_make_its_item_seen() -> None:
    policy = EventPolicy.from_settings(Settings(repeat_event_types="view"))
    event = Event("u", "x", "view", T0)
    assert policy.seen_after(["a"], ["a", "x"], event) == ["a"]


def test_an_item_bought_before_stays_seen_after_a_view() -> None:
    policy = EventPolicy.from_settings(Settings(repeat_event_types="view"))
    event = Event("u", "x", "view", T0)
    assert policy.seen_after(["x", "a"], ["a", "x"], event) == ["a", "x"]


def test_without_repeatable_types_every_item_is_seen() -> None:
    policy = EventPolicy.from_settings(Settings())
    assert policy.seen_after([], ["x"], Event("u", "x", "view", T0)) == ["x"]


def test_the_trending_counters_track_at_most_the_configured_number_of_items(scorer) -> None:
    ranker = Ranker(settings(trending_max_items=10), Catalogue({}))
    ranker.observe([Event(f"u{n}", f"i{n % 40}", "view", T0 + n) for n in range(200)])
    assert 0 < len(ranker.trending) <= 10


def test_an_explored_item_made_unavailable_leaves_the_next_lists_at_once(scorer) -> None:
    now = int(time.time() * 1000)
    catalogue = Catalogue({"new": ItemInfo("new", created_at=now).to_json()})
    ranker = Ranker(settings(explore_slots=1), catalogue)
    history = ["i1", "i2", "i3"]
    assert lists_for(ranker, scorer, history)[-1].item_id == "new"
    catalogue.apply({"new": ItemInfo("new", available=False, created_at=now).to_json()})
    assert "new" not in [i.item_id for i in lists_for(ranker, scorer, history)]


def test_exploration_offers_the_fresh_item_trending_when_its_order_was_made(scorer) -> None:
    now = int(time.time() * 1000)
    fresh = {i: ItemInfo(i, created_at=now - 1).to_json() for i in ("new-a", "new-b")}
    ranker = Ranker(settings(explore_slots=1), Catalogue(fresh))
    ranker.observe([Event("u1", "new-b", "view", now)])
    assert lists_for(ranker, scorer, ["i1", "i2", "i3"])[-1].item_id == "new-b"


def test_an_item_boosted_in_the_catalogue_moves_up_the_list(scorer) -> None:
    history = ["i1", "i2", "i3"]
    last = lists_for(Ranker(settings()), scorer, history)[-1].item_id
    catalogue = Catalogue({last: ItemInfo(last, boost=2.0).to_json()})
    assert lists_for(Ranker(settings(), catalogue), scorer, history)[0].item_id == last
