"""A capped vocabulary: new items beyond the cap take the coldest rows, re-initialised, and the
old ids are forgotten alike by the trainer and by a worker applying its deltas (real torch)."""

from __future__ import annotations

import copy

import pytest
import torch

from rtrank.model.online import Example, OnlineConfig, OnlineLearner
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.update_error import UpdateError
from rtrank.model.updates import Delta, apply_delta, decode_update, encode_update
from rtrank.model.vocab import Vocabulary

ITEMS = [f"item-{n}" for n in range(1, 11)]  # rows 1..10
CAPPED = OnlineConfig(max_items=len(ITEMS))


def capped_learner_and_worker() -> tuple[OnlineLearner, SASRec, Vocabulary]:
    """A learner at its cap, and a worker's copy of the same version."""
    torch.manual_seed(0)
    vocab = Vocabulary(ITEMS)
    model = SASRec(SASRecConfig(num_items=len(vocab), max_len=8, dim=16, dropout=0.1))
    worker_model, worker_vocab = copy.deepcopy(model), Vocabulary(vocab.items())
    return OnlineLearner(model, vocab, 1, CAPPED), worker_model, worker_vocab


def same_weights(a: SASRec, b: SASRec) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_new_item_beyond_the_cap_takes_the_row_of_the_item_named_longest_ago() -> None:
    learner, _, _ = capped_learner_and_worker()
    named = [Example((f"item-{n}",), f"item-{n + 1}") for n in range(2, 10)]  # items 2..10
    learner.observe(named)
    learner.observe([Example(("item-3",), "new")])
    assert len(learner.vocab) == len(ITEMS) + 1  # no row added
    assert learner.vocab.row("new") == 1  # item-1 was never named
    assert "item-1" not in learner.vocab


def test_rows_named_by_the_same_examples_are_never_taken() -> None:
    learner, _, _ = capped_learner_and_worker()
    learner.observe([Example(("item-1",), "new")])
    assert learner.vocab.row("item-1") == 1
    assert learner.vocab.row("new") not in (None, 1)


def test_a_taken_row_starts_afresh_with_new_weights_and_no_adam_history() -> None:
    learner, _, _ = capped_learner_and_worker()
    learner.step([Example(("item-2",), "item-1")] * 4)  # item-1's row gets Adam moments
    assert learner._t[1] > 0
    learner.observe([Example(("item-5",), "item-6")])  # now item-1 is the coldest named row
    learner.observe([Example(("item-5",), "item-6")] + [Example(("item-7",), "item-8")])
    before = learner.model.item_emb.weight.detach().clone()
    unnamed = {learner.vocab.row(i) for i in ITEMS if i not in ("item-5", "item-6")}
    learner.observe([Example(("item-5",), f"new-{n}") for n in range(len(unnamed))])
    taken = 1  # item-1's row, trained above
    assert learner.vocab.item(taken).startswith("new-")
    assert not torch.equal(learner.model.item_emb.weight.detach()[taken], before[taken])
    assert learner._t[taken] == 0 and not learner._m[taken].any()


def test_a_worker_applying_the_delta_forgets_the_same_ids_and_serves_the_same_weights() -> None:
    learner, worker_model, worker_vocab = capped_learner_and_worker()
    learner.step([Example(("item-2", "item-3"), "new-a"), Example(("new-a",), "new-b")])
    delta = decode_update(encode_update(learner.publish(2, snapshot=False)))
    assert {item for _, item in delta.reused} == {"new-a", "new-b"} and delta.new_items == []
    apply_delta(worker_model, worker_vocab, 1, delta)
    assert worker_vocab == learner.vocab
    assert same_weights(worker_model, learner.model)


def test_a_replayed_example_whose_item_was_given_away_is_left_out_of_steps() -> None:
    learner, _, _ = capped_learner_and_worker()
    learner.step([Example(("item-2",), "item-1")])
    learner.observe([Example(("item-3",), f"new-{n}") for n in range(8)])  # takes 8 rows
    gone = [i for i in ITEMS if i not in learner.vocab]
    assert gone
    learner.buffer.recent.extend([Example((gone[0],), "item-3"), Example(("item-3",), gone[0])])
    assert learner.step([Example(("item-3",), "new-0")]) is not None


def test_an_uncapped_delta_is_encoded_as_before_without_reused_rows() -> None:
    learner, _, _ = capped_learner_and_worker()
    delta = learner.publish(2, snapshot=False)
    assert b'"reused"' not in encode_update(delta)
    assert decode_update(encode_update(delta)).reused == []


@pytest.mark.parametrize(
    "reused",
    [
        [(0, "pad")],  # padding is no item row
        [(11, "past")],  # no such row
        [(1, "item-2")],  # item-2 would name two rows
        [(1, "x"), (1, "y")],  # one row given twice
    ],
)
def test_a_delta_whose_reused_rows_do_not_fit_is_refused_and_changes_nothing(reused) -> None:
    _, worker_model, worker_vocab = capped_learner_and_worker()
    before = copy.deepcopy(worker_model)
    delta = Delta(2, 1, len(worker_vocab), [], {}, torch.zeros(0, dtype=torch.long),
                  torch.zeros(0, 16), reused=reused)  # fmt: skip
    with pytest.raises(UpdateError) as caught:
        apply_delta(worker_model, worker_vocab, 1, delta)
    assert caught.value.reason == "incompatible"
    assert worker_vocab.items() == ITEMS and same_weights(worker_model, before)
