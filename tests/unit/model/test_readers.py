"""Readers: every format gives the same records; bad lines are reported with their number."""

from __future__ import annotations

import json

import pytest

from rtrank.model.data import (
    DataError,
    LineError,
    Record,
    detect_format,
    iter_records,
    read_sequences,
)


def test_pairs_lines_become_string_id_records(write_file):
    path = write_file("d.txt", "1 10\n1 11\n2 10\n")
    assert list(iter_records(path, "pairs")) == [
        Record(1, "1", "10", None, None),
        Record(2, "1", "11", None, None),
        Record(3, "2", "10", None, None),
    ]


def test_sequences_line_yields_one_record_per_item_with_its_line_number(write_file):
    path = write_file("d.txt", "u1 a b c\nu2 d\n")
    assert [(r.line_no, r.user_id, r.item_id) for r in iter_records(path, "sequences")] == [
        (1, "u1", "a"),
        (1, "u1", "b"),
        (1, "u1", "c"),
        (2, "u2", "d"),
    ]


def test_csv_with_header_reads_optional_ts_and_event_type(write_file):
    path = write_file("d.csv", "user_id,item_id,ts,event_type\nu1,a,1000,view\nu1,b,,\n")
    assert list(iter_records(path, "csv")) == [
        Record(2, "u1", "a", 1000, "view"),
        Record(3, "u1", "b", None, None),
    ]


def test_tab_delimiter_is_sniffed(write_file):
    path = write_file("d.tsv", "item_id\tuser_id\nx\tu9\n")
    assert list(iter_records(path, "csv")) == [Record(2, "u9", "x", None, None)]


def test_jsonl_accepts_integer_ids_as_strings(write_file):
    path = write_file("d.jsonl", json.dumps({"user_id": 5, "item_id": 7, "ts": 12}) + "\n")
    assert list(iter_records(path, "jsonl")) == [Record(1, "5", "7", 12, None)]


def test_blank_lines_are_skipped(write_file):
    path = write_file("d.txt", "1 10\n\n  \n2 11\n")
    assert [r.line_no for r in iter_records(path, "pairs")] == [1, 4]


@pytest.mark.parametrize(
    ("fmt", "name", "text", "bad_line"),
    [
        ("pairs", "d.txt", "1 10\n1 10 extra\n", 2),
        ("sequences", "d.txt", "u1 a\nu2\n", 2),
        ("csv", "d.csv", "user_id,item_id\nu1,a\nu2\n", 3),
        ("csv", "d.csv", "user_id,item_id,ts\nu1,a,1\nu1,b,yesterday\n", 3),
        ("jsonl", "d.jsonl", '{"user_id": "u", "item_id": "a"}\n{"user_id": "u"}\n', 2),
        ("jsonl", "d.jsonl", '{"user_id": "u", "item_id": "a"}\nnot json\n', 2),
        (
            "jsonl",
            "d.jsonl",
            '{"user_id": "u", "item_id": "a"}\n{"user_id": [1], "item_id": "a"}\n',
            2,
        ),
    ],
)
def test_bad_line_is_reported_with_its_number_and_reading_goes_on(
    write_file, fmt, name, text, bad_line
):
    path = write_file(name, text + ("u9 z\n" if fmt in ("pairs", "sequences") else ""))
    out = list(iter_records(path, fmt))
    errors = [r for r in out if isinstance(r, LineError)]
    assert [e.line_no for e in errors] == [bad_line]
    assert errors[0].reason
    assert isinstance(out[0], Record)


def test_invalid_utf8_line_is_a_line_error(write_file):
    path = write_file("d.txt", b"1 10\n1 \xff\xfe\n2 11\n")
    out = list(iter_records(path, "pairs"))
    assert [type(r).__name__ for r in out] == ["Record", "LineError", "Record"]
    assert out[1].line_no == 2


def test_read_sequences_raises_naming_the_bad_line(write_file):
    path = write_file("d.txt", "1 10\n1 11\noops\n")
    with pytest.raises(DataError, match="line 3"):
        read_sequences(path, "pairs")


def test_read_sequences_orders_by_ts_when_present(write_file):
    path = write_file("d.csv", "user_id,item_id,ts\nu,late,300\nu,early,100\nu,mid,200\n")
    assert read_sequences(path, "csv") == {"u": ["early", "mid", "late"]}


def test_read_sequences_keeps_file_order_without_ts(write_file):
    path = write_file("d.txt", "u c\nv x\nu a\nu b\n")
    assert read_sequences(path, "pairs") == {"u": ["c", "a", "b"], "v": ["x"]}


def test_csv_without_user_and_item_header_is_a_file_error(write_file):
    path = write_file("d.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="header"):
        list(iter_records(path, "csv"))


def test_unknown_format_is_rejected(write_file):
    with pytest.raises(DataError, match="unknown format"):
        list(iter_records(write_file("d.txt", "1 2\n"), "parquet"))


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("d.jsonl", "{}\n", "jsonl"),
        ("d.tsv", "user_id\titem_id\n", "csv"),
        ("d.txt", '{"user_id": 1, "item_id": 2}\n', "jsonl"),
        ("d.txt", "user_id,item_id\nu,a\n", "csv"),
        ("d.txt", "1 2\n1 3\n", "pairs"),
        ("d.txt", "u a b c\nv d\n", "sequences"),
    ],
)
def test_auto_detects_format_from_extension_then_content(write_file, name, text, expected):
    assert detect_format(write_file(name, text)) == expected


def test_formats_agree_on_the_same_interactions(write_file):
    pairs = write_file("p.txt", "u a\nu b\nv c\n")
    seqs = write_file("s.txt", "u a b\nv c\n")
    csv_ = write_file("c.csv", "user_id,item_id\nu,a\nu,b\nv,c\n")
    jsonl = write_file(
        "j.jsonl",
        "".join(json.dumps({"user_id": u, "item_id": i}) + "\n" for u, i in ["ua", "ub", "vc"]),
    )
    expected = {"u": ["a", "b"], "v": ["c"]}
    assert all(read_sequences(p, "auto") == expected for p in (pairs, seqs, csv_, jsonl))


def test_shared_amazon_file_has_the_published_counts(amazon_games):
    seqs = read_sequences(amazon_games, "auto")
    assert len(seqs) == 31013
    assert len({i for s in seqs.values() for i in s}) == 23715
    assert sum(len(s) for s in seqs.values()) == 287107
