"""Vocabulary: external ids <-> rows, row 0 padding, append-only growth."""

from __future__ import annotations

import pytest

from rtrank.model.vocab import Vocabulary


def test_rows_start_at_one_and_len_counts_padding():
    v = Vocabulary(["a", "b"])
    assert (v.row("a"), v.row("b"), len(v)) == (1, 2, 3)


def test_add_is_idempotent():
    v = Vocabulary(["a"])
    assert v.add("a") == 1
    assert len(v) == 2


def test_growth_appends_without_changing_existing_rows():
    v = Vocabulary(["a", "b"])
    before = {i: v.row(i) for i in ("a", "b")}
    assert v.add("c") == 3
    assert {i: v.row(i) for i in ("a", "b")} == before


def test_growth_bumps_the_version_only_when_a_row_is_added():
    v = Vocabulary(["a"], version=4)
    v.add("a")
    assert v.version == 4
    v.add("b")
    assert v.version == 5


def test_unknown_ids_are_none_and_skipped_by_rows():
    v = Vocabulary(["a", "b"])
    assert v.row("zzz") is None
    assert v.rows(["b", "zzz", "a"]) == [2, 1]


def test_item_maps_a_row_back_and_rejects_padding():
    v = Vocabulary(["a"])
    assert v.item(1) == "a"
    with pytest.raises(IndexError):
        v.item(0)


def test_ids_maps_many_rows_back_in_order():
    v = Vocabulary(["a", "b", "c"])
    assert v.ids([3, 1, 2]) == ["c", "a", "b"]


def test_json_round_trip_keeps_every_row():
    v = Vocabulary(["x", "7", "é"])
    assert Vocabulary.from_json(v.to_json()) == v
    assert v.to_json() == '["x", "7", "é"]'


@pytest.mark.parametrize("text", ['{"a": 1}', '["a", "a"]', '["a", 3]', '[""]'])
def test_from_json_rejects_anything_but_a_list_of_distinct_ids(text):
    with pytest.raises(ValueError):
        Vocabulary.from_json(text)


def test_a_reassigned_row_names_its_new_item_and_the_old_id_is_forgotten() -> None:
    vocab = Vocabulary(["a", "b", "c"], version=4)
    assert vocab.reassign({2: "x"}) == ["b"]
    assert (vocab.row("x"), vocab.row("b"), "b" in vocab) == (2, None, False)
    assert vocab.items() == ["a", "x", "c"] and len(vocab) == 4
    assert vocab.version == 5


def test_rows_may_swap_their_items_in_one_reassignment() -> None:
    vocab = Vocabulary(["a", "b"])
    vocab.reassign({1: "b", 2: "a"})
    assert (vocab.row("a"), vocab.row("b")) == (2, 1)


def test_a_reassignment_that_would_name_an_id_twice_changes_nothing() -> None:
    vocab = Vocabulary(["a", "b"])
    with pytest.raises(ValueError):
        vocab.reassign({1: "b"})
    with pytest.raises(ValueError):
        vocab.reassign({0: "z"})  # padding is no item row
    assert vocab.items() == ["a", "b"] and vocab.row("a") == 1
