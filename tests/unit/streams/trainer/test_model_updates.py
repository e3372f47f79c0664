"""Model updates on the wire: chunks under the size limit, checksums, and what a worker's
scorer accepts or rejects (it keeps serving what it has)."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
import torch

from rtrank.model.online import Example, OnlineConfig, OnlineLearner
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.update_error import UpdateError
from rtrank.model.updates import decode_update
from rtrank.model.vocab import Vocabulary
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.scorer.scoring import Scorer
from rtrank.streams.trainer.model_updates import MAGIC, Assembler, Chunk, parse_chunk, to_messages
from rtrank.streams.worker.online_eval import gains

ITEMS = [f"item-{n}" for n in range(2000)]
LIMIT = 64 * 1024


@pytest.fixture
def learner() -> OnlineLearner:
    torch.manual_seed(0)
    vocab = Vocabulary(ITEMS)
    model = SASRec(SASRecConfig(num_items=len(vocab), max_len=8, dim=32, dropout=0.0))
    return OnlineLearner(model, vocab, 1, OnlineConfig(rows_per_step=16))


def scorer_at_base(learner: OnlineLearner) -> Scorer:
    return Scorer(copy.deepcopy(learner.model), Vocabulary(learner.vocab.items()), 1, False)


def encode_chunk(chunk: Chunk) -> bytes:
    head = json.dumps(chunk.header).encode()
    return MAGIC + len(head).to_bytes(4, "big") + head + chunk.data


def assemble_all(messages: list[tuple[bytes, bytes]]):
    assembler, done = Assembler(), []
    for _, value in messages:
        update = assembler.add(parse_chunk(value))
        if update is not None:
            done.append(update)
    return done


def test_a_snapshot_bigger_than_the_limit_is_chunked_and_every_message_fits(learner) -> None:
    messages = to_messages(learner.publish(2, snapshot=True), LIMIT)
    assert len(messages) > 1
    assert all(len(value) <= LIMIT for _, value in messages)
    [snapshot] = assemble_all(messages)
    assert snapshot.version == 2 and snapshot.items == ITEMS


def test_chunks_carry_version_base_and_checksum(learner) -> None:
    learner.step([Example(("item-1",), "item-2")])
    [(key, value)] = to_messages(learner.publish(2, snapshot=False), LIMIT)
    header = parse_chunk(value).header
    assert key == b"2"
    assert (header["version"], header["base"], header["kind"]) == (2, 1, "delta")
    assert len(header["sha256"]) == 64


def test_a_flipped_payload_byte_fails_the_checksum(learner) -> None:
    [(_, value)] = to_messages(learner.publish(2, snapshot=False), LIMIT)
    broken = value[:-10] + bytes([value[-10] ^ 0xFF]) + value[-9:]
    with pytest.raises(UpdateError) as err:
        Assembler().add(parse_chunk(broken))
    assert err.value.reason == "corrupt"


def test_a_header_that_lies_about_the_version_is_corrupt(learner) -> None:
    [(_, value)] = to_messages(learner.publish(2, snapshot=False), LIMIT)
    chunk = parse_chunk(value)
    with pytest.raises(UpdateError) as err:
        Assembler().add(Chunk({**chunk.header, "version": 7}, chunk.data))
    assert err.value.reason == "corrupt"


@pytest.mark.parametrize(
    "value", [None, b"", b"hello", MAGIC + b"\x00\x00\x00\x05{bad}", MAGIC + b"\x00\x00\x00\x02{}"]
)
def test_messages_that_are_not_update_chunks_are_corrupt(value) -> None:
    with pytest.raises(UpdateError) as err:
        parse_chunk(value)
    assert err.value.reason == "corrupt"


def test_an_update_abandoned_mid_publish_is_dropped_and_later_ones_still_assemble(learner) -> None:
    half = to_messages(learner.publish(2, snapshot=True), LIMIT)[:2]
    whole = to_messages(learner.publish(3, snapshot=True), LIMIT)
    assert [u.version for u in assemble_all(half + whole)] == [3]


def test_the_scorer_serves_a_delta_with_new_items_and_recommends_them(learner) -> None:
    scorer = scorer_at_base(learner)
    planted = [Example((f"item-{n}", "new-a"), "new-b") for n in range(10)]
    learner.config = OnlineConfig(lr=1e-2, rows_per_step=16)
    for _ in range(40):
        learner.step(planted)
    [delta] = assemble_all(to_messages(learner.publish(2, snapshot=False), LIMIT))
    scorer.apply(delta)
    [items] = scorer.recommend([ScoreRequest(["item-3", "new-a"], ["item-3", "new-a"])], k=10)
    assert scorer.version == 2
    assert items[0][0] == "new-b"


def test_the_scorer_serves_the_rows_a_delta_changed(learner) -> None:
    scorer = scorer_at_base(learner)
    request = [ScoreRequest(["item-1", "item-2"], [])]
    scorer.recommend(request, k=10)
    learner.config = OnlineConfig(lr=1e-2, rows_per_step=16)
    for _ in range(20):
        learner.step([Example(("item-1", "item-2"), "item-7")])
    [delta] = assemble_all(to_messages(learner.publish(2, snapshot=False), LIMIT))
    scorer.apply(delta)
    trained = Scorer(copy.deepcopy(learner.model), Vocabulary(learner.vocab.items()), 2, False)
    [served] = scorer.recommend(request, k=10)
    assert [served] == trained.recommend(request, k=10)
    assert served[0][0] == "item-7"


def test_the_scorer_rejects_an_out_of_order_delta_and_keeps_its_version(learner) -> None:
    scorer = scorer_at_base(learner)
    learner.step([Example(("item-1",), "item-2")])
    learner.publish(2, snapshot=False)
    learner.step([Example(("item-1",), "item-3")])
    [later] = assemble_all(to_messages(learner.publish(3, snapshot=False), LIMIT))
    before = scorer.recommend([ScoreRequest(["item-1"], [])], k=10)
    with pytest.raises(UpdateError) as err:
        scorer.apply(later)
    assert err.value.reason == "out_of_order"
    assert scorer.version == 1
    assert scorer.recommend([ScoreRequest(["item-1"], [])], k=10) == before


def test_the_scorer_takes_a_newer_snapshot_whatever_it_served(learner) -> None:
    scorer = scorer_at_base(learner)
    learner.step([Example(("item-1",), "brand-new")])
    [snapshot] = assemble_all(to_messages(learner.publish(9, snapshot=True), LIMIT))
    scorer.apply(snapshot)
    assert scorer.version == 9 and "brand-new" in scorer.vocab


def test_checksum_is_sha256_of_the_payload_which_is_the_encoded_update(learner) -> None:
    update = learner.publish(2, snapshot=True)
    chunks = [parse_chunk(v) for _, v in to_messages(update, LIMIT)]
    payload = b"".join(c.data for c in chunks)
    assert hashlib.sha256(payload).hexdigest() == chunks[0].header["sha256"]
    decoded = decode_update(payload)  # as is: no compression to undo
    assert (decoded.version, decoded.items) == (update.version, update.items)
    assert json.loads(json.dumps(chunks[0].header)) == chunks[0].header


def test_a_chunk_of_an_unknown_wire_format_is_corrupt(learner) -> None:
    [(_, value)] = to_messages(learner.publish(2, snapshot=False), LIMIT)
    chunk = parse_chunk(value)
    with pytest.raises(UpdateError) as err:
        parse_chunk(encode_chunk(Chunk({**chunk.header, "format": 3}, chunk.data)))
    assert err.value.reason == "corrupt"


# --- online evaluation ------------------------------------------------------------------


def test_gains_count_a_hit_within_ten_and_discount_by_rank() -> None:
    assert gains(0) == (1.0, 1.0)
    assert gains(2) == pytest.approx((1.0, 0.5))
    assert gains(None) == gains(10) == (0.0, 0.0)
