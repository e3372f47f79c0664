"""Hypothesis strategies for the bytes an outside producer can write, shared by the
``test_fuzz_*`` modules: arbitrary bytes, JSON-looking text with the values Python's `json`
mishandles (huge integers, ``NaN`` / ``Infinity``, ``1e999``, lone surrogate escapes, control
characters, repeated keys, deep nesting), and good records with one field made hostile.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from rtrank.streams.validation import Rejection

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written into the working tree; failures print their input
    suppress_health_check=[HealthCheck.too_slow],
)

SOURCE = SimpleNamespace(topic="t", partition=0, offset=0)

hostile_atoms = st.one_of(
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            "-1e999",
            "1e-999",
            "true",
            "null",
            '"\\ud800"',
            '"\\udfff x"',
            '"\\u0000"',
            '"a\\tb"',
            '"\\u007f"',
            '"\\u0085"',
            '""',
            '" "',
            "0",
            "-0",
            "1.5",
            "4070908800000",
            "1700000000000",
            "1.7e12",
        ]
    ),
    st.sampled_from([20, 101, 4300, 4301, 5000]).map(lambda n: "9" * n),
    st.sampled_from([19, 4301]).map(lambda n: "-" + "1" * n),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=20).map(json.dumps),
    st.text(max_size=20).map(lambda t: json.dumps(t, ensure_ascii=False)),
)


def _containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    keys = st.sampled_from(["user_id", "item_id", "ts", "a", "request_id", "", "\\ud800"])
    pairs = st.lists(st.tuples(keys, children), max_size=5)
    return st.one_of(
        st.lists(children, max_size=5).map(lambda xs: "[" + ",".join(xs) + "]"),
        pairs.map(lambda kv: "{" + ",".join(f'"{k}":{v}' for k, v in kv) + "}"),
    )


json_texts = st.recursive(hostile_atoms, _containers, max_leaves=20)

deep_nesting = st.tuples(
    st.sampled_from([1, 8, 9, 100, 999, 1000, 3000]), st.sampled_from("[{")
).map(lambda nd: (nd[1] * nd[0] + ("]" * nd[0] if nd[1] == "[" else "")).encode())


def hostile_records(good: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """``good`` serialised with fields replaced, added or repeated by hostile JSON text."""
    names = st.sampled_from([*good, "extra", "context", "candidates"])
    edits = st.dictionaries(names, json_texts, max_size=3)
    repeated = st.lists(names, max_size=2)

    def build(edit: dict[str, str], again: list[str]) -> bytes:
        fields = {k: json.dumps(v) for k, v in good.items()} | edit
        pairs = [f'"{k}":{v}' for k, v in fields.items()]
        pairs += [f'"{k}":{fields.get(k, "1")}' for k in again]
        return ("{" + ",".join(pairs) + "}").encode("utf-8", "surrogatepass")

    return st.builds(build, edits, repeated)


def raw_values(good: dict[str, Any]) -> st.SearchStrategy[bytes | None]:
    """Anything a record's value can be: none, arbitrary bytes, JSON-like text, deep
    nesting, a good record made hostile."""
    return st.one_of(
        st.none(),
        st.binary(max_size=200),
        json_texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
        deep_nesting,
        hostile_records(good),
    )


raw_keys = st.one_of(st.none(), st.binary(max_size=40), st.sampled_from([b"u1", b"i1", b"1"]))


def assert_rejected_with_a_reason(result: object) -> None:
    """A rejection has a code and a detail, and its DLQ headers can be written."""
    assert isinstance(result, Rejection)
    assert result.code and result.code.isidentifier()
    assert result.detail
    assert all(isinstance(v, bytes) for v in result.dead_letter_headers(SOURCE).values())


def assert_writable_id(text: object) -> None:
    """An accepted id can be a Kafka key and a JSON string."""
    assert isinstance(text, str) and text.strip()
    text.encode("utf-8")
