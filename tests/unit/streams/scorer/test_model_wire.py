"""What crosses to the model process and back arrives as it was sent."""

from __future__ import annotations

from rtrank.streams.records import Event
from rtrank.streams.scorer import model_wire as wire
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.scorer.rerank import RankedItem


def test_requests_arrive_with_their_histories_and_exclusions_empty_ones_included():
    requests = [
        ScoreRequest(["a", "b b", "c"], ["c"]),
        ScoreRequest([], []),
        ScoreRequest(["é"], ["x", "y"]),
    ]
    assert wire.unpack_requests(wire.pack_requests(requests)) == requests


def test_requests_arrive_with_the_user_partition_and_event_count_the_encode_cache_keys_on():
    requests = [ScoreRequest(["a"], [], "", "user-1", 3, 41), ScoreRequest(["b"], [])]
    assert wire.unpack_requests(wire.pack_requests(requests)) == requests


def test_lists_of_plain_model_items_arrive_with_ids_and_scores_in_order():
    lists = [[RankedItem("a", 0.9), RankedItem("b", 0.5)], []]
    assert wire.unpack_lists(wire.pack_lists(lists)) == lists


def test_lists_with_other_sources_or_reasons_keep_them_per_item():
    lists = [
        [
            RankedItem("a", 0.9, "model", ("h1", "h2")),
            RankedItem("b", 0.0, "explore"),
            RankedItem("c", 0.4),
        ]
    ]
    assert wire.unpack_lists(wire.pack_lists(lists)) == lists


def test_events_arrive_with_what_popularity_counts_and_leave_extra_fields_behind():
    sent = [Event("u1", "i1", "view", 1_700_000_000_000, {"page": "home"})]
    assert wire.unpack_events(wire.pack_events(sent)) == [
        Event("u1", "i1", "view", 1_700_000_000_000)
    ]
