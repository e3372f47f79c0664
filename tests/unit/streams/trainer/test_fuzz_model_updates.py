"""Fuzzing the model-update decoders: every message is an update (or a chunk of one) or an
`UpdateError`; nothing else reaches the scorer's or the trainer's update reader."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.updates import (
    UPDATE_FORMAT,
    UpdateError,
    decode_update,
    encode_update,
    make_snapshot,
)
from rtrank.model.vocab import Vocabulary
from rtrank.streams.trainer.model_updates import MAGIC, Assembler, parse_chunk
from tests.unit.streams.fuzz_inputs import FUZZ, deep_nesting, hostile_records, json_texts

HEADER = {
    "format": 2,
    "id": "u",
    "kind": "snapshot",
    "version": 1,
    "base": None,
    "chunks": 1,
    "chunk": 0,
    "sha256": "0" * 64,
}
HEAD = {"kind": "delta", "version": 2, "base": 1, "vocab_len_before": 3, "new_items": []}


def chunk_bytes(header: bytes, data: bytes, claimed: int | None) -> bytes:
    n = len(header) if claimed is None else claimed
    return MAGIC + n.to_bytes(4, "big") + header + data


chunks = st.one_of(
    st.binary(max_size=100),
    st.builds(
        chunk_bytes,
        st.one_of(
            hostile_records(HEADER),
            json_texts.map(lambda t: t.encode("utf-8", "replace")),
            deep_nesting,
        ),
        st.binary(max_size=20),
        st.one_of(st.none(), st.integers(min_value=0, max_value=2**32 - 1)),
    ),
)


def safetensors_bytes(header: str, data: bytes) -> bytes:
    raw = header.encode("utf-8", "surrogatepass")
    return len(raw).to_bytes(8, "little") + raw + data


def metadata_header(head: str) -> str:
    return json.dumps({"__metadata__": {"format": UPDATE_FORMAT, "head": head}})


@pytest.fixture(scope="module")
def encoded() -> bytes:
    vocab = Vocabulary(["a", "b"])
    model = SASRec(SASRecConfig(num_items=len(vocab), max_len=4, dim=8, dropout=0.0))
    return encode_update(make_snapshot(model, vocab, 1))


payload_edits = st.tuples(
    st.integers(min_value=0, max_value=10_000), st.binary(min_size=0, max_size=8), st.booleans()
)


@FUZZ
@given(values=st.lists(chunks, min_size=1, max_size=3))
def test_every_update_message_is_a_chunk_or_an_update_error(values) -> None:
    assembler = Assembler()
    for value in values:
        try:
            assembler.add(parse_chunk(value))
        except UpdateError as e:
            assert e.reason and str(e)


@FUZZ
@given(
    payload=st.one_of(
        st.binary(max_size=200),
        st.builds(safetensors_bytes, json_texts, st.binary(max_size=40)),
        st.builds(safetensors_bytes, deep_nesting.map(bytes.decode), st.binary(max_size=40)),
        st.builds(
            safetensors_bytes,
            hostile_records(HEAD).map(bytes.decode).map(metadata_header),
            st.binary(max_size=40),
        ),
        st.builds(safetensors_bytes, json_texts.map(metadata_header), st.binary(max_size=40)),
    )
)
def test_every_update_payload_decodes_or_raises_update_error(payload) -> None:
    try:
        decode_update(payload)
    except UpdateError as e:
        assert e.reason == "corrupt"


@FUZZ
@given(edit=payload_edits)
def test_a_damaged_real_update_decodes_or_raises_update_error(encoded, edit) -> None:
    at, patch, cut = edit
    damaged = encoded[:at] + patch + (b"" if cut else encoded[at + len(patch) :])
    try:
        decode_update(damaged)
    except UpdateError as e:
        assert e.reason == "corrupt"


# The corpus: inputs the fuzzing found, each kept as a plain test.


def test_an_update_whose_safetensors_header_is_not_an_object_is_corrupt() -> None:
    with pytest.raises(UpdateError, match="corrupt"):
        decode_update(b"\x03\x00\x00\x00\x00\x00\x00\x00NaN")


def test_an_update_chunk_whose_header_nests_3000_deep_is_corrupt() -> None:
    header = b"[" * 3000 + b"]" * 3000
    with pytest.raises(UpdateError, match="corrupt"):
        parse_chunk(chunk_bytes(header, b"", None))
