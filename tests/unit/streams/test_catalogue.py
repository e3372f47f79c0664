"""Catalogue records: parsed into ItemInfo or rejected with a reason, never raising."""

from __future__ import annotations

import json

import pytest

from rtrank.streams.catalogue import Catalogue, ChangedItems, ItemInfo, parse_item
from rtrank.streams.validation import Limits, Rejection

LIMITS = Limits()
NOW = 1_700_000_000_000
DAY = 24 * 3600 * 1000


def raw(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_a_full_record_becomes_an_item_info() -> None:
    info = parse_item(
        b"i1",
        raw(item_id="i1", available=True, category="rpg", tags=["a"], boost=0.5, created_at=NOW),
        LIMITS,
    )
    assert info == ItemInfo("i1", True, "rpg", ("a",), 0.5, NOW)


def test_integer_item_ids_become_strings() -> None:
    assert parse_item(None, raw(item_id=7, available=False), LIMITS).item_id == "7"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"{nope", "not_json"),
        (b"\xff\xfe", "not_utf8"),
        (b"[1]", "not_object"),
        (raw(available=True), "missing_field"),
        (raw(item_id="i"), "missing_field"),
        (raw(item_id="i", available="yes"), "wrong_type"),
        (raw(item_id="i", available=True, tags="x"), "wrong_type"),
        (raw(item_id="i", available=True, boost="big"), "wrong_type"),
        (raw(item_id="i", available=True, boost=1e9), "boost_out_of_range"),
        (raw(item_id="i", available=True, created_at=12), "ts_out_of_range"),
        (raw(item_id="i", available=True, created_at="today"), "wrong_type"),
        (raw(item_id="", available=True), "empty_id"),
    ],
)
def test_malformed_records_are_rejected_with_a_reason(value: bytes, code: str) -> None:
    rejected = parse_item(None, value, LIMITS)
    assert isinstance(rejected, Rejection) and rejected.code == code


def test_a_key_that_is_not_the_item_id_is_rejected() -> None:
    rejected = parse_item(b"other", raw(item_id="i", available=True), LIMITS)
    assert isinstance(rejected, Rejection) and rejected.code == "key_mismatch"


def test_the_catalogue_reads_items_written_as_json() -> None:
    catalogue = Catalogue({"i": ItemInfo("i", available=False).to_json()})
    assert catalogue.get("i").available is False
    assert catalogue.get("unknown") is None


def test_fresh_items_are_the_young_available_ones_newest_first() -> None:
    catalogue = Catalogue(
        {
            "old": ItemInfo("old", created_at=NOW - 10_000).to_json(),
            "new": ItemInfo("new", created_at=NOW - 10).to_json(),
            "newer": ItemInfo("newer", created_at=NOW - 1).to_json(),
            "gone": ItemInfo("gone", available=False, created_at=NOW).to_json(),
            "undated": ItemInfo("undated").to_json(),
        }
    )
    assert [i.item_id for i in catalogue.fresh(NOW, 1000)] == ["newer", "new"]


def test_a_change_to_a_young_item_renews_the_fresh_list_at_once() -> None:
    catalogue = Catalogue({"n": ItemInfo("n", created_at=NOW).to_json()})
    assert [i.item_id for i in catalogue.fresh(NOW, 1000)] == ["n"]
    catalogue.apply(
        {
            "n": ItemInfo("n", available=False, created_at=NOW).to_json(),
            "m": ItemInfo("m", created_at=NOW - 1).to_json(),
        }
    )
    assert [i.item_id for i in catalogue.fresh(NOW, 1000)] == ["m"]


def test_a_change_to_an_old_item_keeps_the_fresh_list_made() -> None:
    catalogue = Catalogue({"n": ItemInfo("n", created_at=NOW).to_json()})
    made = catalogue.fresh(NOW, 1000)
    catalogue.apply(
        {"old": ItemInfo("old", created_at=NOW - 5000).to_json(), "u": ItemInfo("u").to_json()}
    )
    assert catalogue.fresh(NOW, 1000) is made


def test_a_fresh_list_is_made_again_after_fresh_cache_s_for_the_items_that_aged() -> None:
    catalogue = Catalogue({"n": ItemInfo("n", created_at=NOW).to_json()}, fresh_cache_s=3600)
    made = catalogue.fresh(NOW, 1000)
    assert catalogue.fresh(NOW + 999, 1000) is made
    assert catalogue.fresh(NOW + 3_600_000, 1000) == []


def test_an_item_dated_again_moves_into_or_out_of_the_fresh_list() -> None:
    catalogue = Catalogue({"a": ItemInfo("a", created_at=NOW - 5 * DAY).to_json()})
    assert catalogue.fresh(NOW, 1000) == []
    catalogue.apply({"a": ItemInfo("a", created_at=NOW - 10).to_json()})
    assert [i.item_id for i in catalogue.fresh(NOW, 1000)] == ["a"]
    catalogue.apply({"a": ItemInfo("a", created_at=NOW - 3 * DAY).to_json()})
    assert catalogue.fresh(NOW, 1000) == []


def test_fresh_lists_of_different_ages_are_kept_apart() -> None:
    catalogue = Catalogue(
        {
            "hour": ItemInfo("hour", created_at=NOW - 3_600_000).to_json(),
            "minute": ItemInfo("minute", created_at=NOW - 60_000).to_json(),
        }
    )
    assert [i.item_id for i in catalogue.fresh(NOW, 120_000)] == ["minute"]
    assert [i.item_id for i in catalogue.fresh(NOW, 2 * DAY)] == ["minute", "hour"]


def test_items_created_together_are_fresh_in_the_order_of_their_ids() -> None:
    catalogue = Catalogue({i: ItemInfo(i, created_at=NOW).to_json() for i in ("c", "a", "b")})
    assert [i.item_id for i in catalogue.fresh(NOW, 1000)] == ["a", "b", "c"]


def test_applied_changes_add_replace_and_remove_items_and_renew_fresh_ones() -> None:
    catalogue = Catalogue({"old": ItemInfo("old").to_json(), "gone": ItemInfo("gone").to_json()})
    assert catalogue.fresh(NOW, 1000) == []
    catalogue.apply(
        {
            "old": ItemInfo("old", available=False).to_json(),
            "gone": None,
            "n": ItemInfo("n", created_at=NOW).to_json(),
        }
    )
    assert catalogue.get("old").available is False
    assert catalogue.get("gone") is None
    assert [i.item_id for i in catalogue.fresh(NOW, 1000)] == ["n"]


def test_changed_items_hand_over_every_item_they_started_with_first() -> None:
    items = ChangedItems({"a": {"item_id": "a"}})
    assert items.take_changes() == {"a": {"item_id": "a"}}
    assert items.take_changes() == {}


def test_changed_items_report_each_kind_of_change_once() -> None:
    items = ChangedItems({"kept": 1, "popped": 2, "deleted": 3, "replaced": 4})
    items.take_changes()
    items["set"] = 5
    items.pop("popped")
    del items["deleted"]
    items.update([("replaced", 6), ("updated", 7)])
    items.setdefault("kept", 0)
    items.pop("never-there", None)
    assert items.take_changes() == {
        "set": 5,
        "popped": None,
        "deleted": None,
        "replaced": 6,
        "updated": 7,
        "never-there": None,
    }


def test_clearing_changed_items_removes_every_item() -> None:
    items = ChangedItems({"a": 1, "b": 2})
    items.take_changes()
    items.clear()
    assert items.take_changes() == {"a": None, "b": None}


def test_an_item_created_further_ahead_than_the_clock_skew_is_rejected() -> None:
    limits = Limits(max_clock_skew_ms=60_000)
    ahead = parse_item(None, raw(item_id="i", available=True, created_at=NOW + 61_000), limits,
                       now_ms=NOW)  # fmt: skip
    assert isinstance(ahead, Rejection) and ahead.code == "ts_in_future"


def test_an_item_created_a_little_ahead_of_the_clock_is_accepted() -> None:
    limits = Limits(max_clock_skew_ms=60_000)
    info = parse_item(None, raw(item_id="i", available=True, created_at=NOW + 59_000), limits,
                      now_ms=NOW)  # fmt: skip
    assert info.created_at == NOW + 59_000


def test_a_full_catalogue_copy_drops_the_item_least_recently_written() -> None:
    items = ChangedItems(max_items=3)
    for item in ["a", "b", "c"]:
        items[item] = {"item_id": item}
    items["a"] = {"item_id": "a", "available": False}  # written again: the newest now
    items["d"] = {"item_id": "d"}
    assert list(items) == ["c", "a", "d"]
    assert items.evicted == 1


def test_an_item_dropped_from_a_full_copy_leaves_the_model_process_copy_too() -> None:
    items = ChangedItems(max_items=2)
    copy = Catalogue({})
    items["a"], items["b"] = {"item_id": "a"}, {"item_id": "b"}
    copy.apply(items.take_changes())
    items["c"] = {"item_id": "c"}
    copy.apply(items.take_changes())
    assert sorted(copy.items) == ["b", "c"]


def test_changed_items_hand_over_at_most_a_limit_and_keep_the_rest_for_later() -> None:
    items = ChangedItems({f"i{n}": {"item_id": f"i{n}"} for n in range(5)})
    first = items.take_changes(limit=3)
    assert len(first) == 3 and items.pending == 2
    items["i0"] = {"item_id": "i0", "available": False}  # changed again meanwhile
    rest = items.take_changes()
    assert set(first) | set(rest) == {f"i{n}" for n in range(5)}
    assert rest["i0"] == {"item_id": "i0", "available": False}
    assert items.pending == 0 and items.take_changes() == {}


def test_the_catalogue_counts_its_boosted_items_through_every_change() -> None:
    catalogue = Catalogue({"a": ItemInfo("a", boost=0.5).to_json(), "b": ItemInfo("b").to_json()})
    assert catalogue.boosted == 1
    catalogue.apply({"b": ItemInfo("b", boost=-1.0).to_json(), "c": ItemInfo("c").to_json()})
    assert catalogue.boosted == 2
    catalogue.apply({"a": None, "b": ItemInfo("b").to_json()})
    assert catalogue.boosted == 0
