"""NaN and infinity never reach a served model: an update holding one is rejected whole,
and the online learner clips its gradients and skips a step whose loss or gradient is not
finite (so it never has one to publish)."""

from __future__ import annotations

import copy

import pytest
import torch

from rtrank.model.online import Example, OnlineConfig, OnlineLearner, clip_gradient
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.update_error import UpdateError
from rtrank.model.updates import apply_update
from rtrank.model.vocab import Vocabulary

ITEMS = [f"item-{n}" for n in range(100)]


def learner_of(**config: float) -> OnlineLearner:
    torch.manual_seed(0)
    vocab = Vocabulary(ITEMS)
    model = SASRec(SASRecConfig(num_items=len(vocab), max_len=8, dim=16, dropout=0.0))
    return OnlineLearner(model, vocab, 1, OnlineConfig(**config))


def examples(n: int = 32) -> list[Example]:
    return [Example((f"item-{i % 50}",), f"item-{(i + 1) % 50}") for i in range(n)]


def test_a_delta_holding_nan_is_rejected_and_the_served_model_unchanged() -> None:
    learner = learner_of()
    served, vocab = copy.deepcopy(learner.model), Vocabulary(ITEMS)
    before = copy.deepcopy(served.state_dict())
    learner.step(examples())
    delta = learner.publish(2, snapshot=False)
    delta.row_values[0, 0] = float("nan")
    with pytest.raises(UpdateError) as err:
        apply_update(served, vocab, 1, delta)
    assert err.value.reason == "non_finite"
    assert all(torch.equal(before[n], t) for n, t in served.state_dict().items())


def test_a_snapshot_holding_infinity_is_rejected() -> None:
    snapshot = learner_of().publish(2, snapshot=True)
    name = next(n for n, t in snapshot.state.items() if t.is_floating_point())
    snapshot.state[name].view(-1)[0] = float("inf")
    with pytest.raises(UpdateError) as err:
        apply_update(None, None, -1, snapshot)
    assert err.value.reason == "non_finite"


def test_clipping_scales_a_long_gradient_to_the_limit() -> None:
    grads = [torch.full((4, 4), 3.0), torch.full((2,), 4.0)]
    assert clip_gradient(grads, OnlineConfig(clip_grad_norm=1.0))
    norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))
    assert norm == pytest.approx(1.0)


def test_a_gradient_within_the_limit_is_left_as_it_is() -> None:
    grads = [torch.full((2,), 0.1)]
    assert clip_gradient(grads, OnlineConfig(clip_grad_norm=1.0))
    assert torch.equal(grads[0], torch.full((2,), 0.1))


def test_a_non_finite_gradient_is_refused_and_left_unscaled() -> None:
    grads = [torch.tensor([1.0, float("nan")])]
    assert not clip_gradient(grads, OnlineConfig(clip_grad_norm=1.0))


def test_a_clipped_step_moves_rows_less_than_an_unclipped_one() -> None:
    free, clipped = learner_of(clip_grad_norm=0.0), learner_of(clip_grad_norm=1e-6)
    start = free.model.item_emb.weight.detach().clone()
    for learner in (free, clipped):
        for _ in range(3):
            learner.step(examples())
    moved = [
        float((lr.model.item_emb.weight.detach() - start).abs().sum()) for lr in (free, clipped)
    ]
    assert moved[1] < moved[0]


def test_a_step_with_a_nan_loss_is_skipped_counted_and_changes_nothing() -> None:
    learner = learner_of()
    with torch.no_grad():
        learner.model.item_emb.weight[learner.vocab.row("item-3")] = float("nan")
    before = learner.model.item_emb.weight.detach().clone()
    assert learner.step([Example(("item-3",), "item-4")]) is None
    assert (learner.skipped, learner.steps) == (1, 0)
    assert torch.equal(learner.model.item_emb.weight.isnan(), before.isnan())
    after = learner.model.item_emb.weight.detach()
    assert torch.equal(after[~after.isnan()], before[~before.isnan()])


def test_a_step_with_a_nan_loss_on_a_trained_transformer_changes_nothing() -> None:
    learner = learner_of(dense_lr=1e-3)
    with torch.no_grad():
        learner.model.item_emb.weight[learner.vocab.row("item-3")] = float("inf")
    dense = {n: t.clone() for n, t in learner.model.state_dict().items() if "item_emb" not in n}
    assert learner.step([Example(("item-3",), "item-4")]) is None
    state = learner.model.state_dict()
    assert all(torch.equal(t, state[n]) for n, t in dense.items())
