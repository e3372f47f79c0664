"""The chunks an update reader holds while assembling are bounded: an update over the
bound is rejected as too_large and its chunks freed; abandoned ones make room."""

from __future__ import annotations

import json

import pytest
import torch

from rtrank.model.online import OnlineConfig, OnlineLearner
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.update_error import UpdateError
from rtrank.model.vocab import Vocabulary
from rtrank.streams.trainer.model_updates import Assembler, parse_chunk, to_messages

LIMIT = 8 * 1024


@pytest.fixture
def snapshot_messages() -> list[bytes]:
    """A snapshot of about 100 kB in chunks of 8 kB."""
    torch.manual_seed(0)
    vocab = Vocabulary([f"item-{n}" for n in range(500)])
    model = SASRec(SASRecConfig(num_items=len(vocab), max_len=8, dim=32, dropout=0.0))
    learner = OnlineLearner(model, vocab, 1, OnlineConfig())
    return [value for _, value in to_messages(learner.publish(2, snapshot=True), LIMIT)]


def payload_bytes(messages: list[bytes]) -> int:
    return sum(len(parse_chunk(m).data) for m in messages)


def test_an_update_within_the_bound_is_assembled(snapshot_messages) -> None:
    assembler = Assembler(max_bytes=payload_bytes(snapshot_messages))
    done = [assembler.add(parse_chunk(m)) for m in snapshot_messages]
    assert done[-1].version == 2 and assembler.held == 0


def test_an_update_over_the_bound_is_rejected_as_too_large(snapshot_messages) -> None:
    assembler = Assembler(max_bytes=payload_bytes(snapshot_messages) // 2)
    reasons = []
    for m in snapshot_messages:
        try:
            assert assembler.add(parse_chunk(m)) is None
        except UpdateError as e:
            reasons.append(e.reason)
    assert reasons == ["too_large"]  # rejected once; its later chunks are dropped unread
    assert assembler.held == 0


def test_an_update_declaring_too_many_chunks_is_rejected_at_its_first(snapshot_messages) -> None:
    assembler = Assembler(max_bytes=payload_bytes(snapshot_messages) // 2)
    with pytest.raises(UpdateError) as err:
        assembler.add(parse_chunk(snapshot_messages[0]))
    assert err.value.reason == "too_large" and assembler.held == 0


def test_an_abandoned_update_makes_room_for_the_next(snapshot_messages) -> None:
    half = len(snapshot_messages) // 2
    assembler = Assembler(max_bytes=payload_bytes(snapshot_messages) + LIMIT)
    for m in snapshot_messages[:half]:  # a trainer killed mid-publish
        assembler.add(parse_chunk(m))
    again = to_messages_again(snapshot_messages)
    done = [assembler.add(parse_chunk(m)) for m in again]
    assert done[-1].version == 2
    assert assembler.held == 0


def to_messages_again(messages: list[bytes]) -> list[bytes]:
    """The same update published again under a new id (as a restarted trainer would)."""
    out = []
    for m in messages:
        n = int.from_bytes(m[4:8], "big")
        header = {**json.loads(m[8 : 8 + n]), "id": "again"}
        head = json.dumps(header).encode()
        out.append(m[:4] + len(head).to_bytes(4, "big") + head + m[8 + n :])
    return out
