"""Offline training learns planted transitions and keeps the best epoch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rtrank.model.checkpoint import load_checkpoint
from rtrank.model.evaluate import evaluate, make_eval_set, model_scorer
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.synthetic import generate
from rtrank.model.train import (
    TrainConfig,
    WeightAverage,
    bucketed_batches,
    make_dataset,
    replace_items,
    train,
    training_arrays,
)

SMALL = TrainConfig(epochs=8, batch_size=32, lr=5e-3, device="cpu", max_minutes=1.0, patience=3)


@pytest.fixture(scope="module")
def planted():
    """Users following planted item->item transitions with 5% noise."""
    data = generate(num_users=400, num_items=60, min_len=6, max_len=16, noise=0.05, seed=0)
    return make_dataset({u: [i for i, _ in evs] for u, evs in data.items()}, name="planted")


@pytest.fixture(scope="module")
def trained(planted):
    cfg = SASRecConfig(num_items=len(planted.vocab), dim=32, max_len=20, dropout=0.1)
    return train(planted, cfg, SMALL)


def test_model_learns_planted_transitions(planted, trained):
    m = evaluate(
        model_scorer(trained.model),
        make_eval_set(planted.split, "test", "full", len(planted.vocab)),
    )
    assert m.hit > 0.9


def test_history_has_one_validation_entry_per_epoch(trained):
    assert [h["epoch"] for h in trained.history] == list(range(1, len(trained.history) + 1))
    assert trained.best_epoch in [h["epoch"] for h in trained.history]
    assert trained.best_valid.ndcg == max(h["valid"]["ndcg@10"] for h in trained.history)


def test_same_seed_trains_the_same_model(planted):
    cfg = SASRecConfig(num_items=len(planted.vocab), dim=16, max_len=20)
    quick = TrainConfig(epochs=1, batch_size=64, device="cpu", refit_epochs=0)
    a, b = train(planted, cfg, quick), train(planted, cfg, quick)
    assert a.history[0]["loss"] == b.history[0]["loss"]


def test_best_epoch_is_written_as_a_checkpoint(planted, tmp_path):
    cfg = SASRecConfig(num_items=len(planted.vocab), dim=16, max_len=20)
    out = tmp_path / "best.safetensors"
    result = train(planted, cfg, TrainConfig(epochs=2, device="cpu"), out=str(out))
    ckpt = load_checkpoint(out)
    assert ckpt.vocab == planted.vocab
    assert ckpt.meta["extra"]["epoch"] == result.best_epoch


def test_zero_minute_budget_stops_before_training():
    data = make_dataset({"u": ["a", "b", "c", "d"]})
    cfg = SASRecConfig(num_items=len(data.vocab), dim=8)
    result = train(data, cfg, TrainConfig(epochs=5, max_minutes=0.0, device="cpu"))
    assert result.history == [] and result.best_valid is None


def test_training_arrays_shift_targets_by_one_and_left_pad():
    x, y, lengths = training_arrays({"u": [1, 2, 3, 4], "short": [9]}, max_len=5)
    assert x.tolist() == [[0, 0, 1, 2, 3]]
    assert y.tolist() == [[0, 0, 2, 3, 4]]
    assert lengths.tolist() == [3]


def test_bucketed_batches_cover_every_example_once():
    lengths = np.arange(100) % 7
    batches = bucketed_batches(lengths, batch_size=8, window=3, rng=np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(100))


def test_weight_average_moves_towards_the_weights_by_its_warm_up_decay():
    model = SASRec(SASRecConfig(num_items=5, dim=4, max_len=3))
    avg = WeightAverage(model, decay=0.99)
    before = model.item_emb.weight.detach().clone()
    with torch.no_grad():
        model.item_emb.weight.add_(1.0)
    avg.update()  # first step: decay min(0.99, 2/11)
    d = 2 / 11
    expected = d * before + (1 - d) * (before + 1.0)
    assert torch.allclose(avg.model.item_emb.weight, expected)


def test_training_with_weight_averaging_keeps_the_average_not_the_raw_weights(planted, tmp_path):
    cfg = SASRecConfig(num_items=len(planted.vocab), dim=16, max_len=20)
    out = tmp_path / "avg.safetensors"
    once = TrainConfig(epochs=1, device="cpu", refit_epochs=0)
    raw = train(planted, cfg, replace(once, ema_decay=0.0))
    avg = train(planted, cfg, replace(once, ema_decay=0.9), out=str(out))
    kept, saved = avg.model.state_dict(), load_checkpoint(out).model.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in kept.items())
    assert not torch.equal(kept["item_emb.weight"], raw.model.state_dict()["item_emb.weight"])
    valid = make_eval_set(planted.split, "valid", "sampled100", len(planted.vocab))
    assert evaluate(model_scorer(avg.model), valid).ndcg == avg.best_valid.ndcg


def test_replace_items_keeps_padding_and_swaps_about_the_given_share():
    torch.manual_seed(0)
    seqs = torch.cat([torch.zeros(200, 10, dtype=torch.long), torch.full((200, 40), 7)], dim=1)
    out = replace_items(seqs, 0.2, num_items=1000)
    assert (out[:, :10] == 0).all()
    assert ((out[:, 10:] >= 1) & (out[:, 10:] < 1000)).all()
    assert 0.17 < (out[:, 10:] != 7).float().mean().item() < 0.23


@pytest.fixture(scope="module")
def unseen_validation():
    """Planted transitions, but every user's validation item is "V", which the training
    part never holds: only a model that trained on validation items can predict it."""
    data = generate(num_users=300, num_items=200, min_len=6, max_len=12, noise=0.05, seed=2)
    seqs = {u: [i for i, _ in evs] for u, evs in data.items()}
    return make_dataset({u: s[:-1] + ["V", s[-1]] for u, s in seqs.items()})


def _valid_hit(model, data) -> float:
    valid = make_eval_set(data.split, "valid", "full", len(data.vocab))
    return evaluate(model_scorer(model), valid).hit


def test_refit_learns_the_validation_items_the_selection_never_trained_on(unseen_validation):
    cfg = SASRecConfig(num_items=len(unseen_validation.vocab), dim=32, max_len=20, dropout=0.1)
    result = train(unseen_validation, cfg, replace(SMALL, refit_epochs=3, refit_lr=5e-3))
    assert len(result.refit) == 3
    assert _valid_hit(result.selected, unseen_validation) < 0.2
    assert _valid_hit(result.model, unseen_validation) > 0.9


def test_no_refit_keeps_the_selected_model(planted):
    cfg = SASRecConfig(num_items=len(planted.vocab), dim=16, max_len=20)
    result = train(planted, cfg, TrainConfig(epochs=1, device="cpu", refit_epochs=0))
    assert result.selected is None and result.refit == []


def test_checkpoint_holds_the_refit_model(planted, tmp_path):
    cfg = SASRecConfig(num_items=len(planted.vocab), dim=16, max_len=20)
    out = tmp_path / "refit.safetensors"
    result = train(planted, cfg, TrainConfig(epochs=1, device="cpu", refit_epochs=1), out=str(out))
    ckpt = load_checkpoint(out)
    assert ckpt.meta["extra"]["refit_epochs"] == 1
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(ckpt.model.state_dict()[name], tensor), name


def test_a_checkpoint_records_that_its_model_ranks_held_out_items_better_than_chance(
    planted, tmp_path
):
    cfg = SASRecConfig(num_items=len(planted.vocab), dim=32, max_len=20, dropout=0.1)
    out = tmp_path / "trained.safetensors"
    train(planted, cfg, SMALL, out=str(out))
    reference = load_checkpoint(out).meta["extra"]["held_out_outranked"]
    assert 0.0 <= reference < 0.1  # planted transitions: ~0.5 would be chance
